"""A board as it is stored and carried: its canonical encoding (`Board.canonical_bytes`) in an
LZ4 frame, base64 inside JSON (a snapshot).

LZ4 because every tick decompresses its board and compresses the next on the write side, and
zlib cost several times the CPU for a modest saving in bytes (docs/benchmarks.md). A frame starts
with LZ4's magic number and a zlib stream never does, so boards and snapshots stored as zlib
streams before the switch still decode. Pure code like the simulation (the standard library,
numpy and lz4): the service layer seals each tick's board with it.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from dataclasses import dataclass

import lz4.frame

from arena.simulation.board import Board

LZ4_MAGIC = b"\x04\x22\x4d\x18"


@dataclass(frozen=True, slots=True)
class SealedBoard:
    """A board as the write model keeps it: its tick, hash and stored (compressed) bytes."""

    tick: int
    hash: str
    stored: bytes

    @property
    def text(self) -> str:
        """The stored bytes in base64: a snapshot as events and JSON carry it."""
        return base64.b64encode(self.stored).decode()


def seal(board: Board) -> SealedBoard:
    """The board's hash and stored form from one canonical encoding (a tick needs both)."""
    canonical = board.canonical_bytes()
    return SealedBoard(board.tick, hashlib.sha256(canonical).hexdigest(), _compress(canonical))


def encode(board: Board) -> bytes:
    return _compress(board.canonical_bytes())


def decode(stored: bytes) -> Board:
    """A board from `encode`'s bytes (or from a zlib stream stored before boards were LZ4)."""
    if stored[:4] == LZ4_MAGIC:
        return Board.from_canonical(lz4.frame.decompress(stored))
    return Board.from_canonical(zlib.decompress(stored))


def decode_text(text: str) -> Board:
    return decode(base64.b64decode(text, validate=True))


def _compress(canonical: bytes) -> bytes:
    stored: bytes = lz4.frame.compress(canonical)
    return stored
