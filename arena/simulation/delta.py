"""What changed between two boards: per layer, the cells whose values differ, and how.

A layer's change is one of three kinds. For an integer layer, the new value minus the old
(wrapping). For a float layer, the new bits XOR the old; or, when every old and new value of
the changed cells lies on a grid of 1/`scale` (energy does: `rules.ENERGY_QUANTUM`), the
difference in steps of that grid, which the encoder keeps only if adding it back gives the new
bits exactly. Differences travel as signed integers of the narrowest width that holds them all:
a diffusing field moves each cell by a few milli-units a tick, an organism's energy by a few
hundred 1/1024ths, and 1 or 2 bytes instead of 4 halve what zlib squeezes, while repeated
differences (organisms alike) squeeze far better than random low bits of floats.

The wire form (`encode`, TickAdvanced schema 3) lists the changed layers in order, each with its
`count` of changed cells, whether it is `dense` (most cells changed: every cell is listed, in
order, and no indexes travel), the `width` of its values and its `scale` if any, and packs
every non-dense layer's flat cell indexes (little-endian int32, into the layer's C-order array;
antibiotic and resistance planes follow each other), then every layer's values, into one zlib
stream in base64: one compression per tick instead of two per layer, and the cell lists that
many organism layers share lie next to each other, where zlib finds the repeats. `decode` also
reads schema 1 and 2's form, a zlib stream per part in a map of layers (schema 1 without
`width`).

Invariant: `apply(old, diff(old, new))` is `new`, byte for byte.
"""

from __future__ import annotations

import base64
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from arena.simulation.board import ENERGY_QUANTUM, LAYERS, Board

DELTA_COMPRESSION = 1  # zlib level: every tick packs its delta; level 6 took 3x the CPU here
FLOAT_SCALES = {"energy": round(1 / ENERGY_QUANTUM)}  # float layers the rules keep on a grid
WIDTHS = (1, 2, 4, 8)


@dataclass(frozen=True, slots=True)
class Patch:
    """The changed cells of one layer (None: every cell) and each one's change: the difference
    of the layer's wrapped unsigned bits (integer layers), in steps of 1/`scale` (a float layer
    with a scale), or the bits that flipped (other float layers)."""

    cells: npt.NDArray[np.int32] | None
    changes: npt.NDArray[Any]
    scale: int | None = None


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
        changed = after != before
        if not changed.any():
            continue
        dense = np.count_nonzero(changed) * 2 > changed.size
        cells = None if dense else np.flatnonzero(changed).astype(np.int32)
        if not _counts(name):
            patches[name] = _float_patch(name, old[name].reshape(-1), new[name].reshape(-1), cells)
        elif cells is None:
            patches[name] = Patch(None, after - before)
        else:
            patches[name] = Patch(cells, after[cells] - before[cells])
    return Delta(new.tick, new.next_organism_id, list(new.owners), patches)


def _float_patch(
    name: str, before: npt.NDArray[Any], after: npt.NDArray[Any], cells: npt.NDArray[Any] | None
) -> Patch:
    """Steps of the layer's grid if they give the new values exactly, else the flipped bits."""
    old, new = (before, after) if cells is None else (before[cells], after[cells])
    scale = FLOAT_SCALES.get(name)
    if scale is not None:
        steps = np.rint((new.astype(np.float64) - old.astype(np.float64)) * scale)
        if np.abs(steps).max() < 2**31:
            differences = steps.astype(np.int32)
            if np.array_equal(_added(old, differences, scale).view(_unsigned(old)), _u(new)):
                return Patch(cells, differences, scale)
    return Patch(cells, _u(old) ^ _u(new))


def apply(board: Board, delta: Delta) -> Board:
    """`board` with the delta applied (a new board; `board` is unchanged)."""
    after = board.copy()
    after.tick = delta.tick
    after.next_organism_id = delta.next_organism_id
    after.owners = list(delta.owners)
    for name, patch in delta.patches.items():
        cells = slice(None) if patch.cells is None else patch.cells
        if patch.scale is not None:
            values = after[name].reshape(-1)  # a view of the copy: changed in place
            values[cells] = _added(values[cells], patch.changes, patch.scale)
            continue
        bits = _bits(after[name])
        if _counts(name):
            bits[cells] += patch.changes.astype(bits.dtype, copy=False)
        else:
            bits[cells] ^= patch.changes.astype(bits.dtype, copy=False)
    return after


def _added(values: npt.NDArray[Any], steps: npt.NDArray[Any], scale: int) -> npt.NDArray[Any]:
    """`values` moved by `steps` of 1/`scale`, summed in float64 and rounded to their dtype."""
    moved: npt.NDArray[Any] = (values.astype(np.float64) + steps / scale).astype(values.dtype)
    return moved


# --- the wire form ----------------------------------------------------------------------------


def encode(delta: Delta) -> dict[str, Any]:
    listed, cell_parts, value_parts = [], [], []
    for name, patch in delta.patches.items():
        values = _wire_values(name, patch)
        entry: dict[str, Any] = {
            "layer": name,
            "count": int(values.size),
            "dense": patch.cells is None,
            "width": values.dtype.itemsize,
        }
        if patch.scale is not None:
            entry["scale"] = patch.scale
        listed.append(entry)
        if patch.cells is not None:
            cell_parts.append(np.ascontiguousarray(patch.cells, "<i4").tobytes())
        value_parts.append(values.tobytes())
    data = zlib.compress(b"".join(cell_parts + value_parts), DELTA_COMPRESSION)
    return {
        "tick": delta.tick,
        "nextOrganismId": delta.next_organism_id,
        "owners": delta.owners,
        "layers": listed,
        "data": base64.b64encode(data).decode(),
    }


def _wire_values(name: str, patch: Patch) -> npt.NDArray[Any]:
    """Differences as the narrowest signed integers; flipped bits as they are."""
    if patch.scale is None and not _counts(name):
        return np.ascontiguousarray(patch.changes, _unsigned(patch.changes))
    differences = patch.changes.view(f"<i{patch.changes.dtype.itemsize}")  # wrapped → signed
    return differences.astype(f"<i{_narrowest_width(differences)}")


def decode(data: dict[str, Any]) -> Delta:
    layers = data["layers"]
    patches = (
        _decode_packed(layers, data["data"]) if isinstance(layers, list) else _decode_parts(layers)
    )
    return Delta(data["tick"], data["nextOrganismId"], list(data["owners"]), patches)


def _decode_packed(layers: list[dict[str, Any]], data: str) -> dict[str, Patch]:
    """Schema 3: the layers' cell lists, then their values, in one zlib stream."""
    raw = zlib.decompress(base64.b64decode(data, validate=True))
    offset, listed = 0, []
    for entry in layers:
        name, count = entry["layer"], entry["count"]
        if name not in LAYERS:
            raise ValueError(f"unknown layer {name!r}")
        if type(count) is not int or count <= 0:
            raise ValueError(f"layer {name!r}: count {count!r} is not a number of cells")
        cells = None
        if not entry["dense"]:
            cells = _take(raw, "<i4", count, offset, name)
            offset += cells.nbytes
        listed.append((entry, count, cells))
    patches = {}
    for entry, count, cells in listed:
        name, scale = entry["layer"], entry.get("scale")
        changes = _take(raw, _packed_dtype(name, entry["width"], scale), count, offset, name)
        offset += changes.nbytes
        patches[name] = Patch(cells, changes, scale)
    if offset != len(raw):
        raise ValueError(f"{len(raw) - offset} byte(s) of data after the last layer's values")
    return patches


def _take(raw: bytes, dtype: Any, count: int, offset: int, name: str) -> npt.NDArray[Any]:
    if offset + count * np.dtype(dtype).itemsize > len(raw):
        raise ValueError(f"layer {name!r}: the data ends before its {count} cells")
    return np.frombuffer(raw, dtype, count, offset).copy()


def _packed_dtype(name: str, width: Any, scale: Any) -> np.dtype[Any]:
    """The dtype a schema-3 layer's values travel in, if the layer can hold them."""
    itemsize = np.dtype(LAYERS[name][0]).itemsize
    if scale is not None:
        if name not in FLOAT_SCALES or type(scale) is not int or scale <= 0:
            raise ValueError(f"layer {name!r}: scale {scale!r} is not supported")
        if type(width) is not int or width not in WIDTHS or width > 4:
            raise ValueError(f"layer {name!r}: width {width!r} is not supported")
        return np.dtype(f"<i{width}")
    if not _counts(name):
        if width != itemsize:
            raise ValueError(f"layer {name!r}: width {width!r} is not supported")
        return np.dtype(f"<u{itemsize}")
    return np.dtype(_wire_dtype(name, width))


def _decode_parts(layers: dict[str, Any]) -> dict[str, Patch]:
    """Schemas 1 and 2: per layer, its cells and changes each in a zlib stream of their own."""
    patches = {}
    for name, patch in layers.items():
        if name not in LAYERS:
            raise ValueError(f"unknown layer {name!r}")
        cells = None if patch["cells"] is None else _unpack(patch["cells"], "<i4")
        changes = _unpack(patch["flips"], _wire_dtype(name, patch.get("width")))
        if cells is not None and cells.size != changes.size:
            raise ValueError(f"layer {name!r}: {cells.size} cells but {changes.size} values")
        patches[name] = Patch(cells, changes)
    return patches


def _narrowest_width(differences: npt.NDArray[Any]) -> int:
    """Bytes of the narrowest signed integer that holds every difference (at most their own)."""
    low, high = (int(differences.min()), int(differences.max())) if differences.size else (0, 0)
    return next(
        width
        for width in WIDTHS
        if width == differences.dtype.itemsize
        or np.iinfo(f"i{width}").min <= low <= high <= np.iinfo(f"i{width}").max
    )


def _wire_dtype(name: str, width: Any) -> str:
    """An integer layer's differences: signed of `width` bytes, or (no width: schema 1) the
    layer's unsigned; a float layer's flipped bits: the layer's unsigned."""
    itemsize = np.dtype(LAYERS[name][0]).itemsize
    if width is None:
        return f"<u{itemsize}"
    if not _counts(name) or type(width) is not int or width not in WIDTHS or width > itemsize:
        raise ValueError(f"layer {name!r}: width {width!r} is not supported")
    return f"<i{width}"


def _counts(name: str) -> bool:
    """An integer layer: its changes are differences, not bit flips."""
    return LAYERS[name][0][1] in "iu"


def _unsigned(values: npt.NDArray[Any]) -> str:
    return f"<u{values.dtype.itemsize}"


def _u(values: npt.NDArray[Any]) -> npt.NDArray[Any]:
    return values.view(_unsigned(values))


def _bits(layer: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """The layer's cells, flat, as unsigned integers of their size (a view, not a copy)."""
    return layer.reshape(-1).view(_unsigned(layer))


def _unpack(text: str, dtype: str) -> npt.NDArray[Any]:
    return np.frombuffer(zlib.decompress(base64.b64decode(text, validate=True)), dtype).copy()
