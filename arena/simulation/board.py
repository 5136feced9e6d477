"""The board of one arena: numpy layers over a `height x width` grid, one organism per cell at most.

Every organism attribute is a layer of its own, indexed by cell, so each rule of a tick is a
handful of whole-grid array operations and a delta is simply the cells that changed per layer.
An empty cell has `organism_id == 0` and `kind == EMPTY`; its other organism layers hold zeros.

Invariant: `canonical_bytes()` is the one encoding of a board's whole state. The board hash is its
SHA-256, the stored (compressed) board is it (`arena.stored_board`), and
`Board.from_canonical(board.canonical_bytes())` equals the board.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import struct
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

EMPTY, BACTERIA, FUNGI, PHAGE = 0, 1, 2, 3
KIND_NAMES = {BACTERIA: "BACTERIA", FUNGI: "FUNGI", PHAGE: "PHAGE"}
KIND_CODES = {name: code for code, name in KIND_NAMES.items()}
ANTIBIOTICS = ("A", "B", "C")
NO_OWNER = -1
# The `owners` entry of organisms whose player has left the arena (no player id is empty).
NOBODY = ""
ENCODING = "petri-board/1"  # the canonical encoding's name and version (docs/simulation.md)

Layer = npt.NDArray[Any]

# Layer name → dtype (little-endian, fixed width) and whether it has one plane per antibiotic.
LAYERS: dict[str, tuple[str, bool]] = {
    "nutrients": ("<i4", False),  # milli-units (rules.FIELD_SCALE)
    "antibiotic": ("<i4", True),  # milli-units
    "temperature": ("<f4", False),
    "organism_id": ("<i8", False),
    "kind": ("<i1", False),
    "owner": ("<i2", False),
    "energy": ("<f4", False),
    "generation": ("<i4", False),
    "parent_id": ("<i8", False),
    "born_tick": ("<i4", False),
    "offspring": ("<i4", False),
    "mutations": ("<i4", False),
    "growth_rate": ("<f4", False),
    "resistance": ("<f4", True),
    "optimum_temperature": ("<f4", False),
}
# The rules keep energy on this grid, rounded down: exact in float32 up to 2**14, and a tick
# changes it by whole steps, which a delta carries as small integers.
ENERGY_QUANTUM = 2**-10
# The `owner` layer holds indexes 0, 1, 2…: this many owners at once, an index being reused once
# no organism holds it.
MAX_OWNERS = int(np.iinfo(LAYERS["owner"][0]).max) + 1
# Organism ids are the `organism_id` layer's: none is larger.
MAX_ORGANISM_ID = int(np.iinfo(LAYERS["organism_id"][0]).max)
ORGANISM_LAYERS = tuple(
    name for name in LAYERS if name not in ("nutrients", "antibiotic", "temperature")
)


@dataclass(slots=True, eq=False)
class Board:
    """One arena's state after `tick` ticks. Mutable: the step works on a copy."""

    tick: int
    width: int
    height: int
    next_organism_id: int  # ids are 1, 2, 3… per arena, never reused
    owners: list[str]  # player ids (or NOBODY); the `owner` layer holds indexes into this list
    layers: dict[str, Layer]

    @classmethod
    def empty(cls, width: int, height: int, temperature: float) -> Board:
        layers = {
            name: np.zeros(_shape(name, width, height), dtype)
            for name, (dtype, _) in LAYERS.items()
        }
        layers["owner"][:] = NO_OWNER
        layers["temperature"][:] = temperature
        return cls(0, width, height, 1, [], layers)

    def __getitem__(self, name: str) -> Layer:
        return self.layers[name]

    def copy(self) -> Board:
        return dataclasses.replace(
            self, owners=list(self.owners), layers={n: a.copy() for n, a in self.layers.items()}
        )

    def occupied(self) -> npt.NDArray[np.bool_]:
        mask: npt.NDArray[np.bool_] = self.layers["kind"] != EMPTY
        return mask

    def organism_count(self) -> int:
        return int(np.count_nonzero(self.occupied()))

    def owner_index(self, player_id: str) -> int | None:
        """The player's index in `owners`: on first use appended, or, once `owners` holds the
        MAX_OWNERS the `owner` layer can tell apart, one that no organism holds taken over (the
        count is a pass over the grid, paid only then). None if every index holds organisms."""
        if player_id in self.owners:
            return self.owners.index(player_id)
        if len(self.owners) < MAX_OWNERS:
            self.owners.append(player_id)
            return len(self.owners) - 1
        held = np.bincount(self.layers["owner"][self.occupied()], minlength=len(self.owners))
        unheld = np.flatnonzero(held == 0)
        if unheld.size == 0:
            return None
        index = int(unheld[0])
        self.owners[index] = player_id
        return index

    def release_departed(self, present: Collection[str]) -> None:
        """Hand the organisms of owners not `present` (players who left) to NOBODY, so that the
        indexes holding organisms are at most one per player present, plus NOBODY's.

        A departed owner's entry becomes NOBODY, and every NOBODY entry's organisms go to the
        first one's index: the others hold none, free to be reused, and the grid is passed over
        only in a tick after someone left."""
        departed, nobodies = [], []
        for index, owner in enumerate(self.owners):
            if owner == NOBODY:
                nobodies.append(index)
            elif owner not in present:
                departed.append(index)
        if not departed:
            return
        moved = departed + nobodies
        table = np.arange(len(self.owners), dtype=LAYERS["owner"][0])
        table[moved] = min(moved)
        for index in departed:
            self.owners[index] = NOBODY
        occupied = self.occupied()
        layer = self.layers["owner"]
        layer[occupied] = table[layer[occupied]]

    def clear(self, cells: npt.NDArray[np.bool_]) -> None:
        """Remove the organisms in `cells`."""
        for name in ORGANISM_LAYERS:
            layer = self.layers[name]
            if layer.ndim == 3:
                layer[:, cells] = 0
            else:
                layer[cells] = NO_OWNER if name == "owner" else 0

    # --- the canonical encoding ---------------------------------------------------------------

    def header(self) -> dict[str, Any]:
        return {
            "encoding": ENCODING,
            "tick": self.tick,
            "width": self.width,
            "height": self.height,
            "nextOrganismId": self.next_organism_id,
            "owners": self.owners,
        }

    def canonical_bytes(self) -> bytes:
        """A length-prefixed JSON header (sorted keys, no spaces), then every layer in `LAYERS`
        order as C-order little-endian bytes."""
        header = json.dumps(self.header(), sort_keys=True, separators=(",", ":")).encode()
        parts = [struct.pack("<I", len(header)), header]
        parts += [
            np.ascontiguousarray(self.layers[name], LAYERS[name][0]).tobytes() for name in LAYERS
        ]
        return b"".join(parts)

    def hash(self) -> str:
        return hashlib.sha256(self.canonical_bytes()).hexdigest()

    @classmethod
    def from_canonical(cls, data: bytes) -> Board:
        (length,) = struct.unpack_from("<I", data)
        header = json.loads(data[4 : 4 + length])
        if header.get("encoding") != ENCODING:
            raise ValueError(f"not a {ENCODING} board: {header.get('encoding')!r}")
        width, height = header["width"], header["height"]
        offset, layers = 4 + length, {}
        for name, (dtype, _) in LAYERS.items():
            shape = _shape(name, width, height)
            count = int(np.prod(shape))
            layers[name] = np.frombuffer(data, dtype, count, offset).reshape(shape).copy()
            offset += count * np.dtype(dtype).itemsize
        if offset != len(data):
            raise ValueError(f"{len(data) - offset} trailing byte(s) after the layers")
        return cls(
            header["tick"], width, height, header["nextOrganismId"], header["owners"], layers
        )

    def same_as(self, other: Board) -> bool:
        return self.canonical_bytes() == other.canonical_bytes()


def _shape(name: str, width: int, height: int) -> tuple[int, ...]:
    planes = LAYERS[name][1]
    return (len(ANTIBIOTICS), height, width) if planes else (height, width)
