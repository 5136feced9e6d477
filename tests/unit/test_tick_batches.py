"""How the scheduling pass splits the claimed arenas into tick tasks."""

from __future__ import annotations

from arena.persistence.tick_leases import Claim, batches


def test_claims_are_grouped_in_order_up_to_the_cells_of_a_batch() -> None:
    claims = [Claim(name, cells) for name, cells in [("a", 40), ("b", 40), ("c", 20), ("d", 90)]]
    assert batches(claims, 100) == [["a", "b", "c"], ["d"]]


def test_an_arena_larger_than_a_batch_goes_alone() -> None:
    claims = [Claim("small", 10), Claim("huge", 500), Claim("tiny", 1)]
    assert batches(claims, 100) == [["small"], ["huge"], ["tiny"]]


def test_no_claims_no_batches() -> None:
    assert batches([], 100) == []
