"""The delta's wire form (docs/simulation.md, "Encodings"): integer differences in the narrowest
signed width, float changes as bits, and patches of TickAdvanced schema 1 still readable."""

from __future__ import annotations

import base64
import zlib

import numpy as np
import pytest

from arena.simulation import delta
from arena.simulation.board import Board


def _changed(change: dict[str, list[int]]) -> tuple[Board, Board]:
    """A 4 x 4 board, and a copy whose first cells in each named layer moved by these numbers."""
    before = Board.empty(4, 4, 30.0)
    before["nutrients"][:] = 70_000
    before["organism_id"][:] = 2**40
    after = before.copy()
    for name, moves in change.items():
        flat = after[name].reshape(-1)
        flat[: len(moves)] += np.array(moves, flat.dtype)
    return before, after


def _values(wire: dict, name: str, dtype: str) -> np.ndarray:
    packed = wire["layers"][name]["flips"]
    return np.frombuffer(zlib.decompress(base64.b64decode(packed)), dtype)


@pytest.mark.parametrize(
    ("moves", "width"),
    [([-3, 5, 127], 1), ([-128, 7, 1], 1), ([-129, 2, 3], 2), ([300, -2], 2), ([40_000, -1], 4)],
)
def test_integer_differences_travel_in_the_narrowest_signed_width(moves, width) -> None:
    before, after = _changed({"nutrients": moves})
    wire = delta.encode(delta.diff(before, after))
    assert wire["layers"]["nutrients"]["width"] == width
    assert _values(wire, "nutrients", f"<i{width}").tolist() == moves
    assert delta.apply(before, delta.decode(wire)).canonical_bytes() == after.canonical_bytes()


def test_an_eight_byte_layer_narrows_too_and_a_wide_jump_keeps_all_eight() -> None:
    before, after = _changed({"organism_id": [1, 2]})
    assert delta.encode(delta.diff(before, after))["layers"]["organism_id"]["width"] == 1
    before, after = _changed({"organism_id": [2**40, 2]})
    wire = delta.encode(delta.diff(before, after))
    assert wire["layers"]["organism_id"]["width"] == 8
    assert delta.apply(before, delta.decode(wire)).canonical_bytes() == after.canonical_bytes()


def test_float_layers_travel_as_the_bits_that_flipped() -> None:
    before = Board.empty(4, 4, 30.0)
    after = before.copy()
    after["temperature"][0, 0] = 31.5
    wire = delta.encode(delta.diff(before, after))
    assert "width" not in wire["layers"]["temperature"]
    flipped = np.float32(30.0).view("<u4") ^ np.float32(31.5).view("<u4")
    assert _values(wire, "temperature", "<u4").tolist() == [flipped]


def test_a_schema_1_patch_without_width_still_decodes() -> None:
    before, after = _changed({"nutrients": [-3, 5]})
    wire = delta.encode(delta.diff(before, after))
    differences = np.array([-3, 5], "<i4").view("<u4")
    wire["layers"]["nutrients"] = {
        "cells": wire["layers"]["nutrients"]["cells"],
        "flips": base64.b64encode(zlib.compress(differences.tobytes())).decode(),
    }
    assert delta.apply(before, delta.decode(wire)).canonical_bytes() == after.canonical_bytes()


@pytest.mark.parametrize(
    ("name", "width"),
    [("nutrients", 8), ("nutrients", 3), ("nutrients", True), ("kind", 2), ("energy", 4)],
)
def test_a_width_the_layer_cannot_hold_is_refused(name, width) -> None:
    before = Board.empty(4, 4, 30.0)
    after = before.copy()
    after[name].reshape(-1)[0] = 1
    wire = delta.encode(delta.diff(before, after))
    wire["layers"][name]["width"] = width
    with pytest.raises(ValueError, match="width"):
        delta.decode(wire)
