"""The dish as the queries show it: the board (organisms as objects, fields as arrays), one
organism, a genome, the leaderboard and the dish's stats over a recent window.

Field layers travel as little-endian arrays, zlib-compressed and base64-encoded (`dtype`,
`shape` and, for nutrients and antibiotics, the `scale`: milli-units per unit), so a 256 x 256
board stays a few hundred KiB; organisms are listed one object each, with their genome.
"""

from __future__ import annotations

import base64
import json
import uuid
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import numpy as np

from arena.simulation.board import ANTIBIOTICS, ENCODING, KIND_NAMES, Board
from arena.simulation.genome import GENES, Genome, signature
from arena.simulation.rules import FIELD_SCALE, fitness

TOP_GENOMES = 5
ORGANISMS_PER_PIECE = 1000  # organism objects built at once while a board goes out as JSON


def board_json(board: Board, view: dict[str, Any], **extra: Any) -> Iterator[str]:
    """The whole board (its fields, and every organism as an object) `| extra`, as JSON text in
    pieces: the organisms' objects are built ORGANISMS_PER_PIECE at a time, so however many
    there are, only that many are held."""
    body = _board_head(board, view) | extra
    body["layers"] = {"organisms": ARRAY} | body["layers"]
    ys, xs = np.nonzero(board.occupied())

    def pieces() -> Iterator[tuple[str]]:
        for at in range(0, len(ys), ORGANISMS_PER_PIECE):
            cells = slice(at, at + ORGANISMS_PER_PIECE)
            listed = _organisms_at(board, ys[cells], xs[cells])
            yield (json.dumps(listed, separators=(",", ":"))[1:-1],)

    return json_pieces(body, pieces())


class _Array:
    """Stands in a body for JSON text sent in pieces: `json_pieces`' array, `json_spliced`'s
    value."""


ARRAY = _Array()


def json_spliced(body: dict[str, Any], value: Iterable[str]) -> Iterator[str]:
    """`body` as JSON text, in pieces, with the JSON text `value` (itself in pieces, built only
    as it goes out) where `ARRAY` stands."""
    marker = f"array-{uuid.uuid4().hex}"
    text = json.dumps(body, separators=(",", ":"), default=partial(_stand_in, marker))
    before, after = text.split(f'"{marker}"')
    yield before
    yield from value
    yield after


def _stand_in(marker: str, value: object) -> str:
    if value is not ARRAY:  # anything else unknown to JSON fails here, before a byte goes out
        raise TypeError(f"not JSON: {type(value).__name__}")
    return marker


def json_pieces(body: dict[str, Any], elements: Iterable[Iterable[str]]) -> Iterator[str]:
    """`body` as JSON text, in pieces: where `ARRAY` stands, the array of `elements`, each the
    JSON text of one or more of its items, itself in pieces; an element is built only once the
    one before it has gone out."""

    def array() -> Iterator[str]:
        yield "["
        for index, element in enumerate(elements):
            if index:
                yield ","
            yield from element
        yield "]"

    return json_spliced(body, array())


def _board_head(board: Board, view: dict[str, Any]) -> dict[str, Any]:
    return {
        "arenaId": view["id"],
        "version": view["version"],
        "tick": board.tick,
        "width": board.width,
        "height": board.height,
        "encoding": ENCODING,
        "layers": {
            "nutrients": _field(board["nutrients"], FIELD_SCALE),
            "antibiotic": _field(board["antibiotic"], FIELD_SCALE) | {"planes": list(ANTIBIOTICS)},
            "temperature": _field(board["temperature"], None),
        },
        "boardHash": board.hash(),
        "stats": view.get("stats"),
    }


def organisms(board: Board, where: np.ndarray | None = None) -> list[dict[str, Any]]:
    """The organisms (in `where`, a mask of cells, if given), in cell order."""
    return _organisms_at(
        board, *np.nonzero(board.occupied() if where is None else board.occupied() & where)
    )


def _organisms_at(board: Board, ys: np.ndarray, xs: np.ndarray) -> list[dict[str, Any]]:
    """The organisms of these cells, in their order."""
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
                "genome": _genome_json(kind, genome),
            }
        )
    return listed


def _genome_json(kind: int, genome: Genome) -> dict[str, Any]:
    return {
        "growthRate": round(genome.growth_rate, 4),
        "resistance": dict(zip(ANTIBIOTICS, (round(r, 4) for r in genome.resistance), strict=True)),
        "optimumTemperature": round(genome.optimum_temperature, 3),
        "signature": signature(kind, genome),
    }


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


def _distinct_genomes(board: Board) -> Iterator[tuple[int, Genome, int]]:
    """Each distinct genome of the live organisms (kind and exact gene values), in the order of
    its first carrier's cell, with how many carry it: numpy over the gene layers, so a caller
    signs each distinct genome once rather than each organism, and holds no object per organism."""
    ys, xs = np.nonzero(board.occupied())
    rows = np.column_stack(
        [
            board["kind"][ys, xs].astype(np.float64),
            board["growth_rate"][ys, xs].astype(np.float64),
            board["resistance"][:, ys, xs].T.astype(np.float64),
            board["optimum_temperature"][ys, xs].astype(np.float64),
        ]
    )
    distinct, first, counts = np.unique(rows, axis=0, return_index=True, return_counts=True)
    order = np.argsort(first, kind="stable")
    for start in range(0, len(order), ORGANISMS_PER_PIECE):
        piece = order[start : start + ORGANISMS_PER_PIECE]
        for row, count in zip(distinct[piece].tolist(), counts[piece].tolist(), strict=True):
            yield int(row[0]), Genome(row[1], (row[2], row[3], row[4]), row[5]), count


def genome_body(board: Board, wanted: str) -> dict[str, Any] | None:
    carried = [
        (kind, genome, count)
        for kind, genome, count in _distinct_genomes(board)
        if signature(kind, genome) == wanted
    ]
    if not carried:
        return None
    kind, genome, _ = carried[0]  # the first carrier's, in cell order
    genes = {key: value for key, value in _genome_json(kind, genome).items() if key != "signature"}
    return {
        "signature": wanted,
        "kind": KIND_NAMES[kind],
        "genes": genes,
        "liveOrganisms": sum(count for _, _, count in carried),
        "tick": board.tick,
    }


def leaderboard_body(board: Board, players: list[dict[str, Any]], top: int) -> dict[str, Any]:
    """numpy over the layers: objects only for the `top` organisms and each player."""
    ys, xs = np.nonzero(board.occupied())
    scores = np.round(fitness(board)[ys, xs].astype(np.float64), 4)
    ranked = np.lexsort((board["organism_id"][ys, xs], -scores))[:top]
    leaders = _organisms_at(board, ys[ranked], xs[ranked])
    owners = board["owner"][ys, xs].astype(np.intp)
    counts = np.bincount(owners)
    biomass = np.bincount(owners, weights=np.round(board["energy"][ys, xs].astype(np.float64), 4))
    names = {player["playerId"]: player["displayName"] for player in players}
    standings = [
        {
            "playerId": board.owners[owner],
            "displayName": names.get(board.owners[owner]),
            "organisms": int(counts[owner]),
            "biomass": round(float(biomass[owner]), 4),
        }
        for owner in np.nonzero(counts)[0].tolist()
    ]
    return {
        "tick": board.tick,
        "entries": [
            {
                "rank": rank,
                "organismId": leader["id"],
                "fitness": round(float(scores[cell]), 4),
                "kind": leader["kind"],
                "genomeSignature": leader["genome"]["signature"],
                "owner": leader["owner"],
            }
            for rank, (cell, leader) in enumerate(zip(ranked.tolist(), leaders, strict=True), 1)
        ],
        "players": sorted(standings, key=lambda p: (-p["biomass"], p["playerId"])),
    }


def stats_body(
    board: Board, recent: list[dict[str, Any]], window_seconds: int, now: datetime
) -> dict[str, Any]:
    """Births and deaths per second over the window, from the recorded ticks advanced in it."""
    since = now - timedelta(seconds=window_seconds)
    inside = [entry for entry in recent if datetime.fromisoformat(entry["at"]) >= since]
    births = sum(entry["stats"]["births"] for entry in inside)
    deaths = sum(entry["stats"]["deaths"] for entry in inside)
    mutations = sum(entry["stats"]["mutations"] for entry in inside)
    genomes: Counter[str] = Counter()  # in the order of each signature's first carrier's cell
    for kind, genome, count in _distinct_genomes(board):
        genomes[signature(kind, genome)] += count
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
