"""One arena ticked by hand on PostgreSQL and projected by hand into Redis: the real tick path's
events without workers (the e2e tests run those)."""

from __future__ import annotations

from typing import Any

import psycopg
from flask import Flask
from flask.testing import FlaskClient

from arena.bootstrap import components
from arena.domain.envelope import EventEnvelope
from arena.readmodel.writer import apply_events
from arena.services.commands import AdvanceArenas
from arena.services.results import TicksMade
from tests.support.api import arena_path, create_arena, drive, join

CONFIG = {"width": 12, "height": 10, "seed": 7, "snapshotEveryTicks": 4, "tickMillis": 3_600_000}


class Dish:
    """One arena, ticked by hand and projected by hand."""

    def __init__(self, app: Flask, client: FlaskClient, sql: psycopg.Connection) -> None:
        self.app, self.client, self.sql = app, client, sql
        self.id, self.ada = create_arena(client, name="Queried dish", config=CONFIG)
        self.bob = join(client, self.id, "Bob")
        drive(client, self.id, self.ada, "start")
        self.projected = 0

    def act(self, who: Any, body: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post(arena_path(self.id, "/actions"), headers=who.auth, json=body)
        assert response.status_code == 202, response.get_data(as_text=True)
        return response.get_json()

    def tick(self, count: int = 1) -> None:
        for _ in range(count):
            self.sql.execute(
                "UPDATE arenas SET next_tick_at = now() - interval '1 second' WHERE id = %s",
                (self.id,),
            )
            with self.app.app_context():
                made = components().bus.handle(AdvanceArenas((self.id,), max_catch_up=5))
            assert isinstance(made, TicksMade) and [t.advanced for t in made.ticks] == [True]
        self.project()

    def project(self) -> None:
        rows = self.sql.execute(
            "SELECT envelope::text FROM outbox WHERE aggregate_id = %s AND aggregate_version > %s"
            " ORDER BY aggregate_version",
            (self.id, self.projected),
        ).fetchall()
        envelopes = [EventEnvelope.from_json(text) for (text,) in rows]
        with self.app.app_context():
            apply_events(components().views, envelopes)
        self.projected += len(envelopes)

    def get(self, suffix: str, **query: Any) -> Any:
        return self.client.get(arena_path(self.id, suffix), query_string=query)

    def written(self) -> tuple[int, str, bytes]:
        row = self.sql.execute(
            "SELECT tick, board_hash, board FROM arena_boards WHERE arena_id = %s", (self.id,)
        ).fetchone()
        assert row is not None
        return row[0], row[1], bytes(row[2])


def seeded_dish(app: Flask, client: FlaskClient, sql: psycopg.Connection) -> Dish:
    """A started 12 x 10 dish, fed everywhere, with two bacteria and a fungus of Bob's and a
    phage of Ada's due at the first tick."""
    seeded = Dish(app, client, sql)
    everywhere = {"area": {"x": 0, "y": 0, "width": 12, "height": 10}, "amount": 9.0}
    seeded.act(seeded.ada, {"type": "ADD_NUTRIENTS", "payload": everywhere})
    for x, kind in ((2, "BACTERIA"), (5, "BACTERIA"), (9, "FUNGI")):
        payload = {"kind": kind, "position": {"x": x, "y": 5}}
        seeded.act(seeded.bob, {"type": "SPAWN_ORGANISM", "payload": payload})
    seeded.act(
        seeded.ada,
        {"type": "SPAWN_ORGANISM", "payload": {"kind": "PHAGE", "position": {"x": 6, "y": 5}}},
    )
    return seeded
