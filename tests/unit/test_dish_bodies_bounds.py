"""The dish's queries at bounded memory (issue 23, item 4): a board goes out as JSON in pieces,
and the leaderboard, stats and genome are read from the layers with numpy, building no
object per organism; each answers what the objects of every organism would."""

from __future__ import annotations

import json
import tracemalloc
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from arena.http.dish_bodies import (
    ARRAY,
    board_json,
    genome_body,
    json_pieces,
    leaderboard_body,
    organisms,
    stats_body,
)
from arena.simulation.board import Board
from arena.simulation.rules import fitness
from harness.boards import PLAYERS, crowded

VIEW = {"id": "arena-1", "version": 7, "stats": {"organismCount": 1}}


def peak_bytes(action: Callable[[], Any]) -> int:
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_board_in_pieces_is_the_board_as_one_object() -> None:
    board = crowded(40, distinct_genomes=30)
    streamed = json.loads("".join(board_json(board, VIEW, stats=None)))
    assert streamed["layers"]["organisms"] == json.loads(json.dumps(organisms(board)))
    assert len(streamed["layers"]["organisms"]) == 1600
    assert streamed["stats"] is None and streamed["tick"] == board.tick


def test_an_empty_board_in_pieces_lists_no_organisms() -> None:
    board = Board.empty(5, 4, 37.0)
    assert json.loads("".join(board_json(board, VIEW)))["layers"]["organisms"] == []


def test_a_crowded_board_goes_out_in_pieces_holding_a_few_organisms_at_a_time() -> None:
    board = crowded(128, distinct_genomes=16_384)  # 16,384 organisms, each its own genome
    whole = peak_bytes(lambda: json.dumps(organisms(board)))
    sent = peak_bytes(lambda: sum(len(piece) for piece in board_json(board, VIEW)))
    assert sent < whole / 4
    assert sent < 6 * 1024 * 1024


def _by_objects(board: Board, top: int, wanted: str) -> dict[str, Any]:
    """The answers as the objects of every organism give them."""
    listed = organisms(board)
    scores = fitness(board)
    for entry in listed:
        entry["fitness"] = round(float(scores[entry["y"], entry["x"]]), 4)
    ranked = sorted(listed, key=lambda entry: (-entry["fitness"], entry["id"]))[:top]
    biomass: Counter[str] = Counter()
    for entry in listed:
        biomass[entry["owner"]] += entry["energy"]
    carriers = [o for o in listed if o["genome"]["signature"] == wanted]
    return {
        "leaders": [(e["id"], e["fitness"], e["genome"]["signature"]) for e in ranked],
        "organisms": Counter(entry["owner"] for entry in listed),
        "biomass": {owner: round(total, 4) for owner, total in biomass.items()},
        "genomes": Counter(o["genome"]["signature"] for o in listed).most_common(5),
        "carriers": (len(carriers), carriers[0]["genome"] if carriers else None),
    }


@pytest.mark.parametrize("distinct", [1, 7, 2500])
def test_leaderboard_stats_and_genome_answer_what_every_organisms_object_gives(
    distinct: int,
) -> None:
    board = crowded(50, distinct_genomes=distinct)
    leaders = leaderboard_body(board, PLAYERS, 20)
    wanted = leaders["entries"][3]["genomeSignature"]
    expected = _by_objects(board, 20, wanted)

    assert [
        (e["organismId"], e["fitness"], e["genomeSignature"]) for e in leaders["entries"]
    ] == expected["leaders"]
    assert {p["playerId"]: p["organisms"] for p in leaders["players"]} == expected["organisms"]
    assert {p["playerId"]: p["biomass"] for p in leaders["players"]} == pytest.approx(
        expected["biomass"], abs=1e-3
    )
    assert {p["displayName"] for p in leaders["players"]} == {p["displayName"] for p in PLAYERS}
    stats = stats_body(board, [], 60, datetime.now(UTC))
    assert [(g["signature"], g["liveOrganisms"]) for g in stats["topGenomes"]] == expected[
        "genomes"
    ]
    genome = genome_body(board, wanted)
    assert genome is not None
    count, genes = expected["carriers"]
    assert genome["liveOrganisms"] == count
    assert genome["genes"] == {k: v for k, v in genes.items() if k != "signature"}
    assert genome_body(board, "ffffffffffffffff") is None


def test_leaderboard_stats_and_genome_build_no_object_per_organism() -> None:
    board = crowded(128, distinct_genomes=8)  # 16,384 organisms
    objects = peak_bytes(lambda: organisms(board))
    for query in (
        lambda: leaderboard_body(board, PLAYERS, 100),
        lambda: stats_body(board, [], 60, datetime.now(UTC)),
        lambda: genome_body(board, "ffffffffffffffff"),
    ):
        assert peak_bytes(query) < objects / 4


def test_a_body_with_a_value_json_does_not_know_fails_before_its_first_piece() -> None:
    pieces = json_pieces({"when": object(), "items": ARRAY}, [["1"], ["2"]])
    with pytest.raises(TypeError, match="not JSON: object"):
        next(pieces)
    assert "".join(json_pieces({"items": ARRAY}, [["1"], ["2"]])) == '{"items":[1,2]}'
