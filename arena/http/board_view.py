"""The dish as the queries show it: the board (organisms as objects, fields as arrays), one
organism, a genome, the leaderboard and the metrics of a recent window.

Field layers travel as little-endian arrays, zlib-compressed and base64-encoded (`dtype`,
`shape` and, for nutrients and antibiotics, the `scale`: milli-units per unit), so a 256 x 256
board stays a few hundred KiB; organisms are listed one object each, with their genome.
"""

from __future__ import annotations

import base64
import zlib
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from arena.simulation.board import ANTIBIOTICS, ENCODING, KIND_NAMES, Board
from arena.simulation.genome import GENES, Genome, signature
from arena.simulation.rules import FIELD_SCALE, fitness

TOP_GENOMES = 5


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


def organisms(board: Board, where: np.ndarray | None = None) -> list[dict[str, Any]]:
    """The organisms (in `where`, a mask of cells, if given), in cell order."""
    ys, xs = np.nonzero(board.occupied() if where is None else board.occupied() & where)
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


def organism_body(board: Board, organism_id: int) -> dict[str, Any] | None:
    found = organisms(board, board["organism_id"] == organism_id)
    if not found:
        return None
    (one,) = found
    y, x = one["y"], one["x"]
    return one | {
        "tick": board.tick,
        "fitness": round(float(fitness(board)[y, x]), 4),
        "lineage": {
            "parentId": one["parentId"],
            "generation": one["generation"],
            "mutations": one["mutations"],
        },
    }


def genome_body(board: Board, wanted: str) -> dict[str, Any] | None:
    carriers = [o for o in organisms(board) if o["genome"]["signature"] == wanted]
    if not carriers:
        return None
    genes = {key: value for key, value in carriers[0]["genome"].items() if key != "signature"}
    return {
        "signature": wanted,
        "kind": carriers[0]["kind"],
        "genes": genes,
        "liveOrganisms": len(carriers),
        "tick": board.tick,
    }


def leaderboard_body(board: Board, players: list[dict[str, Any]], top: int) -> dict[str, Any]:
    listed = organisms(board)
    scores = fitness(board)
    for entry in listed:
        entry["fitness"] = round(float(scores[entry["y"], entry["x"]]), 4)
    ranked = sorted(listed, key=lambda entry: (-entry["fitness"], entry["id"]))[:top]
    names = {player["playerId"]: player["displayName"] for player in players}
    per_player: dict[str, dict[str, Any]] = {}
    for entry in listed:
        standing = per_player.setdefault(
            entry["owner"],
            {
                "playerId": entry["owner"],
                "displayName": names.get(entry["owner"]),
                "organisms": 0,
                "biomass": 0.0,
            },
        )
        standing["organisms"] += 1
        standing["biomass"] += entry["energy"]
    players_ranked = sorted(per_player.values(), key=lambda p: (-p["biomass"], p["playerId"]))
    for standing in players_ranked:
        standing["biomass"] = round(standing["biomass"], 4)
    return {
        "tick": board.tick,
        "entries": [
            {
                "rank": rank,
                "organismId": entry["id"],
                "fitness": entry["fitness"],
                "kind": entry["kind"],
                "genomeSignature": entry["genome"]["signature"],
                "owner": entry["owner"],
            }
            for rank, entry in enumerate(ranked, start=1)
        ],
        "players": players_ranked,
    }


def metrics_body(
    board: Board, recent: list[dict[str, Any]], window_seconds: int, now: datetime
) -> dict[str, Any]:
    """Births and deaths per second over the window, from the recorded ticks advanced in it."""
    since = now - timedelta(seconds=window_seconds)
    inside = [entry for entry in recent if datetime.fromisoformat(entry["at"]) >= since]
    births = sum(entry["stats"]["births"] for entry in inside)
    deaths = sum(entry["stats"]["deaths"] for entry in inside)
    mutations = sum(entry["stats"]["mutations"] for entry in inside)
    genomes = Counter(o["genome"]["signature"] for o in organisms(board))
    return {
        "tick": board.tick,
        "windowSeconds": window_seconds,
        "ticksInWindow": len(inside),
        "organismCount": board.organism_count(),
        "birthsPerSec": round(births / window_seconds, 4),
        "deathsPerSec": round(deaths / window_seconds, 4),
        "mutationRateObserved": round(mutations / (births * len(GENES)), 6) if births else 0.0,
        "topGenomes": [
            {"signature": signature_, "liveOrganisms": count}
            for signature_, count in genomes.most_common(TOP_GENOMES)
        ],
    }
