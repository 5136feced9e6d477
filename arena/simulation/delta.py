"""What changed between two boards: per layer, the cells whose values differ.

The wire form (`encode`/`decode`) is JSON-ready. Per changed layer: the flat cell indexes (into
the layer's C-order array; antibiotic and resistance planes follow each other) as little-endian
int32, or none when most cells changed (then every cell is listed, in order: "dense"); and for
those cells the change: for integer layers the new value minus the old (wrapping), for float
layers the new bits XOR the old. Float changes travel as unsigned integers of the layer's item
size; integer differences as signed integers of the narrowest width that holds them all, named
by the patch's `width` (a diffusing field moves each cell by a few milli-units a tick: 2 bytes
instead of 4 halve what zlib has to squeeze, and it squeezes them a fifth smaller). A patch
without `width` (TickAdvanced schema 1) holds its integer differences at the layer's item size.
Each part is zlib-compressed, then base64-encoded.

Invariant: `apply(old, diff(old, new))` is `new`, byte for byte.
"""

from __future__ import annotations

import base64
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from arena.simulation.board import LAYERS, Board

DELTA_COMPRESSION = 1  # zlib level: every tick packs its delta; level 6 took 3x the CPU here


@dataclass(frozen=True, slots=True)
class Patch:
    """The changed cells of one layer (None: every cell) and, for each, its change."""

    cells: npt.NDArray[np.int32] | None
    flips: npt.NDArray[Any]


@dataclass(frozen=True, slots=True)
class Delta:
    tick: int
    next_organism_id: int
    owners: list[str]
    patches: dict[str, Patch]  # only layers with changed cells


def diff(old: Board, new: Board) -> Delta:
    patches = {}
    for name in LAYERS:
        before, after = _bits(old[name]), _bits(new[name])
        flips = after - before if _counts(name) else before ^ after
        cells = np.flatnonzero(flips).astype(np.int32)
        if cells.size * 2 > flips.size:
            patches[name] = Patch(None, flips)
        elif cells.size:
            patches[name] = Patch(cells, flips[cells])
    return Delta(new.tick, new.next_organism_id, list(new.owners), patches)


def apply(board: Board, delta: Delta) -> Board:
    """`board` with the delta applied (a new board; `board` is unchanged)."""
    after = board.copy()
    after.tick = delta.tick
    after.next_organism_id = delta.next_organism_id
    after.owners = list(delta.owners)
    for name, patch in delta.patches.items():
        bits = _bits(after[name])  # a view of the copy: changed in place
        cells = slice(None) if patch.cells is None else patch.cells
        if _counts(name):
            bits[cells] += patch.flips
        else:
            bits[cells] ^= patch.flips
    return after


def encode(delta: Delta) -> dict[str, Any]:
    return {
        "tick": delta.tick,
        "nextOrganismId": delta.next_organism_id,
        "owners": delta.owners,
        "layers": {name: _encode_patch(name, patch) for name, patch in delta.patches.items()},
    }


def decode(data: dict[str, Any]) -> Delta:
    patches = {}
    for name, patch in data["layers"].items():
        if name not in LAYERS:
            raise ValueError(f"unknown layer {name!r}")
        cells = None if patch["cells"] is None else _unpack(patch["cells"], "<i4")
        flips = _unpack(patch["flips"], _wire_dtype(name, patch.get("width")))
        flips = flips.astype(_wire_dtype(name, None), copy=False)  # signed → wrapping unsigned
        if cells is not None and cells.size != flips.size:
            raise ValueError(f"layer {name!r}: {cells.size} cells but {flips.size} values")
        patches[name] = Patch(cells, flips)
    return Delta(data["tick"], data["nextOrganismId"], list(data["owners"]), patches)


def _encode_patch(name: str, patch: Patch) -> dict[str, Any]:
    cells = None if patch.cells is None else _pack(patch.cells, "<i4")
    if not _counts(name):
        return {"cells": cells, "flips": _pack(patch.flips, _wire_dtype(name, None))}
    differences = patch.flips.view(f"<i{patch.flips.dtype.itemsize}")  # wrapped → signed
    width = _narrowest_width(differences)
    return {"cells": cells, "width": width, "flips": _pack(differences, f"<i{width}")}


def _narrowest_width(differences: npt.NDArray[Any]) -> int:
    """Bytes of the narrowest signed integer that holds every difference (at most their own)."""
    low, high = (int(differences.min()), int(differences.max())) if differences.size else (0, 0)
    return next(
        width
        for width in (1, 2, 4, 8)
        if width == differences.dtype.itemsize
        or np.iinfo(f"i{width}").min <= low <= high <= np.iinfo(f"i{width}").max
    )


def _wire_dtype(name: str, width: Any) -> str:
    """The dtype a patch's changes travel in: signed of `width` bytes, or the layer's unsigned."""
    itemsize = np.dtype(LAYERS[name][0]).itemsize
    if width is None:
        return f"<u{itemsize}"
    if not _counts(name) or type(width) is not int or width not in (1, 2, 4, 8) or width > itemsize:
        raise ValueError(f"layer {name!r}: width {width!r} is not supported")
    return f"<i{width}"


def _counts(name: str) -> bool:
    """An integer layer: its changes are differences, not bit flips."""
    return LAYERS[name][0][1] in "iu"


def _bits(layer: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """The layer's cells, flat, as unsigned integers of their size (a view, not a copy)."""
    return layer.reshape(-1).view(f"<u{layer.dtype.itemsize}")


def _pack(values: npt.NDArray[Any], dtype: str) -> str:
    raw = np.ascontiguousarray(values, dtype).tobytes()
    return base64.b64encode(zlib.compress(raw, DELTA_COMPRESSION)).decode()


def _unpack(text: str, dtype: str) -> npt.NDArray[Any]:
    return np.frombuffer(zlib.decompress(base64.b64decode(text, validate=True)), dtype).copy()
