"""The board as `GET /arenas/{id}/board` shows it: organisms as objects, fields as arrays.

Field layers travel as little-endian arrays, zlib-compressed and base64-encoded (`dtype`,
`shape` and, for nutrients and antibiotics, the `scale`: milli-units per unit), so a 256 x 256
board stays a few hundred KiB; organisms are listed one object each, with their genome.
"""

from __future__ import annotations

import base64
import zlib
from typing import Any

import numpy as np

from arena.simulation.board import ANTIBIOTICS, ENCODING, KIND_NAMES, Board
from arena.simulation.genome import Genome, signature
from arena.simulation.rules import FIELD_SCALE


def board_body(board: Board, view: dict[str, Any]) -> dict[str, Any]:
    return {
        "arenaId": view["id"],
        "version": view["version"],
        "tick": board.tick,
        "width": board.width,
        "height": board.height,
        "encoding": ENCODING,
        "layers": {
            "organisms": organisms(board),
            "nutrients": _field(board["nutrients"], FIELD_SCALE),
            "antibiotic": _field(board["antibiotic"], FIELD_SCALE) | {"planes": list(ANTIBIOTICS)},
            "temperature": _field(board["temperature"], None),
        },
        "boardHash": board.hash(),
        "stats": view.get("stats"),
    }


def organisms(board: Board) -> list[dict[str, Any]]:
    ys, xs = np.nonzero(board.occupied())
    columns = {
        name: board[name][ys, xs].tolist()
        for name in (
            "organism_id",
            "kind",
            "owner",
            "energy",
            "generation",
            "parent_id",
            "born_tick",
            "offspring",
            "mutations",
            "growth_rate",
            "optimum_temperature",
        )
    }
    resistance = board["resistance"][:, ys, xs].T.tolist()
    listed = []
    for index, (y, x) in enumerate(zip(ys.tolist(), xs.tolist(), strict=True)):
        kind = columns["kind"][index]
        genome = Genome(
            columns["growth_rate"][index],
            tuple(resistance[index]),
            columns["optimum_temperature"][index],
        )
        listed.append(
            {
                "id": columns["organism_id"][index],
                "x": x,
                "y": y,
                "kind": KIND_NAMES[kind],
                "owner": board.owners[columns["owner"][index]],
                "energy": round(columns["energy"][index], 4),
                "generation": columns["generation"][index],
                "parentId": columns["parent_id"][index] or None,
                "bornTick": columns["born_tick"][index],
                "offspring": columns["offspring"][index],
                "mutations": columns["mutations"][index],
                "genome": {
                    "growthRate": round(genome.growth_rate, 4),
                    "resistance": dict(
                        zip(ANTIBIOTICS, (round(r, 4) for r in genome.resistance), strict=True)
                    ),
                    "optimumTemperature": round(genome.optimum_temperature, 3),
                    "signature": signature(kind, genome),
                },
            }
        )
    return listed


def _field(layer: np.ndarray, scale: int | None) -> dict[str, Any]:
    data = base64.b64encode(zlib.compress(np.ascontiguousarray(layer).tobytes(), 6)).decode()
    described: dict[str, Any] = {"dtype": layer.dtype.str, "shape": list(layer.shape), "data": data}
    if scale is not None:
        described["scale"] = scale
    return described
