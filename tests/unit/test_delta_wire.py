"""The delta's wire form (docs/simulation.md, "Encodings"): one zlib stream per delta (schema 3),
integer differences in the narrowest signed width, energy in steps of its grid, other floats as
bits; and the deltas of TickAdvanced schemas 1 and 2 still readable."""

from __future__ import annotations

import base64
import zlib

import numpy as np
import pytest

from arena.simulation import delta
from arena.simulation.board import ENERGY_QUANTUM, Board


def _changed(change: dict[str, list[float]]) -> tuple[Board, Board]:
    """A 4 x 4 board, and a copy whose first cells in each named layer moved by these numbers."""
    before = Board.empty(4, 4, 30.0)
    before["nutrients"][:] = 70_000
    before["organism_id"][:] = 2**40
    before["energy"][:] = 1.5
    after = before.copy()
    for name, moves in change.items():
        flat = after[name].reshape(-1)
        flat[: len(moves)] += np.array(moves, flat.dtype)
    return before, after


def _round_trip(before: Board, after: Board) -> dict:
    wire = delta.encode(delta.diff(before, after))
    assert delta.apply(before, delta.decode(wire)).canonical_bytes() == after.canonical_bytes()
    return wire


def _entry(wire: dict, name: str) -> dict:
    return next(entry for entry in wire["layers"] if entry["layer"] == name)


def _listing(name: str, count: int, width: int, dense: bool = False, **scale: int) -> dict:
    return {"layer": name, "count": count, "dense": dense, "width": width, **scale}


def _values(wire: dict, name: str) -> list:
    return delta.decode(wire).patches[name].changes.tolist()


@pytest.mark.parametrize(
    ("moves", "width"),
    [([-3, 5, 127], 1), ([-128, 7, 1], 1), ([-129, 2, 3], 2), ([300, -2], 2), ([40_000, -1], 4)],
)
def test_integer_differences_travel_in_the_narrowest_signed_width(moves, width) -> None:
    wire = _round_trip(*_changed({"nutrients": moves}))
    assert _entry(wire, "nutrients") == _listing("nutrients", len(moves), width)
    assert _values(wire, "nutrients") == moves


def test_an_eight_byte_layer_narrows_too_and_a_wide_jump_keeps_all_eight() -> None:
    assert _entry(_round_trip(*_changed({"organism_id": [1, 2]})), "organism_id")["width"] == 1
    assert _entry(_round_trip(*_changed({"organism_id": [2**40, 2]})), "organism_id")["width"] == 8


def test_float_layers_travel_as_the_bits_that_flipped() -> None:
    before = Board.empty(4, 4, 30.0)
    after = before.copy()
    after["temperature"][0, 0] = 31.5
    wire = _round_trip(before, after)
    assert _entry(wire, "temperature") == _listing("temperature", 1, 4)
    flipped = np.float32(30.0).view("<u4") ^ np.float32(31.5).view("<u4")
    assert _values(wire, "temperature") == [flipped]


def test_energy_on_its_grid_travels_as_small_steps() -> None:
    moves = [-0.099609375, 0.5, 3 * ENERGY_QUANTUM]  # 102, 512 and 3 steps of 1/1024
    wire = _round_trip(*_changed({"energy": moves}))
    assert _entry(wire, "energy") == _listing("energy", 3, 2, scale=1024)
    assert _values(wire, "energy") == [-102, 512, 3]


def test_energy_off_its_grid_falls_back_to_bits_and_still_round_trips() -> None:
    wire = _round_trip(*_changed({"energy": [0.1, 0.5]}))
    assert "scale" not in _entry(wire, "energy") and _entry(wire, "energy")["width"] == 4


def test_a_layer_whose_every_cell_changed_lists_no_cells() -> None:
    before, after = _changed({"nutrients": [-1] * 16, "kind": [1]})
    wire = _round_trip(before, after)
    assert _entry(wire, "nutrients") == _listing("nutrients", 16, 1, dense=True)
    raw = zlib.decompress(base64.b64decode(wire["data"]))
    assert len(raw) == 4 + 1 + 16  # kind's one cell index, its value, then nutrients' values


def test_every_layer_shares_one_zlib_stream() -> None:
    wire = _round_trip(*_changed({"nutrients": [5], "kind": [1], "owner": [1], "energy": [0.5]}))
    assert [entry["layer"] for entry in wire["layers"]] == ["nutrients", "kind", "owner", "energy"]
    raw = zlib.decompress(base64.b64decode(wire["data"]))
    assert len(raw) == 4 * 4 + 1 + 1 + 1 + 2  # four cell indexes, then one value of each


def _schema_2(name: str, cells: list[int], changes: np.ndarray, width: int | None) -> dict:
    """A delta as TickAdvanced schemas 1 (no width) and 2 carried it."""

    def packed(values: np.ndarray) -> str:
        return base64.b64encode(zlib.compress(values.tobytes())).decode()

    patch = {"cells": packed(np.array(cells, "<i4")), "flips": packed(changes)}
    if width is not None:
        patch["width"] = width
    return {"tick": 0, "nextOrganismId": 1, "owners": [], "layers": {name: patch}}


def test_schema_2_and_schema_1_deltas_still_decode() -> None:
    before, after = _changed({"nutrients": [-3, 5], "energy": [0.1]})
    wire = _schema_2("nutrients", [0, 1], np.array([-3, 5], "<i2"), 2)
    energy = before["energy"][0, :1].view("<u4") ^ after["energy"][0, :1].view("<u4")
    wire["layers"]["energy"] = _schema_2("energy", [0], energy, None)["layers"]["energy"]
    assert delta.apply(before, delta.decode(wire)).canonical_bytes() == after.canonical_bytes()

    schema_1 = _schema_2("nutrients", [0, 1], np.array([-3, 5], "<i4").view("<u4"), None)
    before, after = _changed({"nutrients": [-3, 5]})
    assert delta.apply(before, delta.decode(schema_1)).canonical_bytes() == after.canonical_bytes()


@pytest.mark.parametrize(
    ("name", "width"),
    [("nutrients", 8), ("nutrients", 3), ("nutrients", True), ("kind", 2), ("temperature", 2)],
)
def test_a_width_the_layer_cannot_hold_is_refused(name, width) -> None:
    before = Board.empty(4, 4, 30.0)
    after = before.copy()
    after[name].reshape(-1)[0] = 1
    wire = delta.encode(delta.diff(before, after))
    _entry(wire, name)["width"] = width
    with pytest.raises(ValueError, match="width"):
        delta.decode(wire)
    legacy = _schema_2(name, [0], np.zeros(1, "<u4"), width)
    with pytest.raises(ValueError, match="width"):
        delta.decode(legacy)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"scale": 1000, "layer": "nutrients"}, "scale"),
        ({"layer": "colour"}, "unknown layer"),
        ({"count": 0}, "count"),
        ({"count": 4}, "ends before"),
    ],
)
def test_a_malformed_entry_is_refused(change, match) -> None:
    wire = delta.encode(delta.diff(*_changed({"nutrients": [5, 6]})))
    wire["layers"][0].update(change)
    with pytest.raises(ValueError, match=match):
        delta.decode(wire)


def test_data_past_the_last_layer_is_refused() -> None:
    wire = delta.encode(delta.diff(*_changed({"nutrients": [5]})))
    raw = zlib.decompress(base64.b64decode(wire["data"])) + b"\0"
    wire["data"] = base64.b64encode(zlib.compress(raw)).decode()
    with pytest.raises(ValueError, match="after the last"):
        delta.decode(wire)
