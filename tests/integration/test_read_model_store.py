"""The Redis read model applies each arena's events once and in version order."""

from __future__ import annotations

import uuid

import pytest
from flask import Flask

from arena.bootstrap import components
from arena.domain.envelope import EventEnvelope
from arena.readmodel.store import ArenaViews
from arena.readmodel.writer import EventOutOfOrder, Outcome, apply_event

pytestmark = pytest.mark.integration


def _created(arena_id: str, version: int = 1) -> EventEnvelope:
    return EventEnvelope(
        event_type="ArenaCreated",
        aggregate_id=arena_id,
        aggregate_version=version,
        occurred_at="2026-11-25T08:00:00+00:00",
        payload={
            "arenaId": arena_id,
            "name": "Store test",
            "status": "PENDING",
            "config": {"width": 8},
            "createdAt": "2026-11-25T08:00:00+00:00",
            "creator": {
                "playerId": "p1",
                "displayName": "Ada",
                "role": "ADMIN",
                "joinedAt": "2026-11-25T08:00:00+00:00",
            },
        },
        correlation_id="c",
        causation_id="c",
    )


def test_a_redelivered_event_is_a_no_op(app: Flask) -> None:
    views: ArenaViews = components(app).views
    arena_id = str(uuid.uuid4())
    event = _created(arena_id)

    assert apply_event(views, event) is Outcome.APPLIED
    first = views.get(arena_id)
    assert apply_event(views, event) is Outcome.DUPLICATE
    assert views.get(arena_id) == first


def test_an_event_ahead_of_its_predecessor_waits(app: Flask) -> None:
    views: ArenaViews = components(app).views
    arena_id = str(uuid.uuid4())

    with pytest.raises(EventOutOfOrder):
        apply_event(views, _created(arena_id, version=2))
    assert views.get(arena_id) is None
