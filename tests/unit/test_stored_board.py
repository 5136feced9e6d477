"""The stored form of a board: an LZ4 frame of the canonical encoding; zlib streams still read."""

from __future__ import annotations

import hashlib
import zlib

import lz4.frame

from arena.simulation.board import BACTERIA, Board
from arena.stored_board import LZ4_MAGIC, decode, decode_text, seal


def _board() -> Board:
    board = Board.empty(6, 4, 37.0)
    board["kind"][2, 3], board["organism_id"][2, 3], board["energy"][2, 3] = BACTERIA, 1, 5.5
    board.tick, board.next_organism_id = 3, 2
    return board


def test_a_sealed_board_is_its_canonical_encoding_in_an_lz4_frame_and_its_hash() -> None:
    board = _board()
    sealed = seal(board)
    assert sealed.stored.startswith(LZ4_MAGIC)
    assert lz4.frame.decompress(sealed.stored) == board.canonical_bytes()
    assert sealed.hash == hashlib.sha256(board.canonical_bytes()).hexdigest() == board.hash()
    assert (sealed.tick, decode(sealed.stored).same_as(board)) == (3, True)
    assert decode_text(sealed.text).same_as(board)


def test_a_board_stored_as_a_zlib_stream_before_boards_were_lz4_still_decodes() -> None:
    board = _board()
    assert decode(zlib.compress(board.canonical_bytes(), 1)).same_as(board)
