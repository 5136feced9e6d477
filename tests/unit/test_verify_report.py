"""Which event `flask verify` looks up for each lagging arena."""

from __future__ import annotations

from arena.readmodel.verify import Divergence, first_missing_versions


def test_a_view_behind_lacks_the_version_after_its_own() -> None:
    found = [
        Divergence("a", "status", "FINISHED", "PAUSED"),
        Divergence("a", "version", 12, 8),
    ]

    assert first_missing_versions(found) == {"a": 9}


def test_an_arena_without_a_view_lacks_its_first_event() -> None:
    assert first_missing_versions([Divergence("b", "view", "present", None)]) == {"b": 1}


def test_a_view_ahead_or_equal_in_version_lacks_nothing() -> None:
    found = [
        Divergence("c", "version", 3, 5),
        Divergence("d", "players", [("p", "Ada", "ADMIN")], []),
    ]

    assert first_missing_versions(found) == {}
