"""Property: random command sequences through the API agree with a tiny model of the rules.

For each example a fresh arena is opened and a random sequence of (command, actor) steps is sent
through the test client. A small model (status, players and roles, a few config values, version)
predicts each step's status code; the API must agree step by step, accepted commands must map one
to one, in order, onto the arena's outbox events, versions must run 1..N, and at the end the rows in
PostgreSQL must equal the model. A "retry" step re-sends the previous request with its
Idempotency-Key: a success must replay unchanged, a refusal is simply judged again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from tests.support.api import (
    Member,
    arena_path,
    arena_row,
    assert_versions_contiguous,
    create_arena,
    new_key,
    players,
    sha256,
)

pytestmark = pytest.mark.integration

TRANSITIONS = {
    # command → (statuses it is allowed from, target status, event)
    "start": ({"PENDING"}, "RUNNING", "ArenaStarted"),
    "pause": ({"RUNNING"}, "PAUSED", "ArenaPaused"),
    "resume": ({"PAUSED"}, "RUNNING", "ArenaResumed"),
    "stop": ({"PENDING", "RUNNING", "PAUSED"}, "FINISHED", "ArenaStopped"),
}
NAMES = ["Ada", "ada", "Bo", " BO ", "Cy", "Dee", "eve", "Eve"]
INITIAL_CONFIG = {"width": 6, "height": 4, "maxPlayers": 4, "tickMillis": 500}


@dataclass
class ModelPlayer:
    member: Member
    role: str


@dataclass
class Model:
    """What the rules say the arena is; `known` is everyone who ever had a token."""

    creator: Member
    status: str = "PENDING"
    present: list[ModelPlayer] = field(default_factory=list)
    known: list[Member] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=lambda: dict(INITIAL_CONFIG))
    events: list[str] = field(default_factory=lambda: ["ArenaCreated"])

    def __post_init__(self) -> None:
        self.present.append(ModelPlayer(self.creator, "ADMIN"))
        self.known.append(self.creator)

    @property
    def version(self) -> int:
        return len(self.events)

    def someone(self, index: int) -> Member:
        """Anyone who ever had a token (present or gone)."""
        return self.known[index % len(self.known)]

    def actor(self, index: int) -> Member:
        """Mostly a present player; indices 8 and 9 (or an empty arena) pick anyone."""
        if index < 8 and self.present:
            return self.present[index % len(self.present)].member
        return self.someone(index)

    def seat(self, member: Member) -> ModelPlayer | None:
        return next((p for p in self.present if p.member.id == member.id), None)

    def admins(self) -> list[ModelPlayer]:
        return [p for p in self.present if p.role == "ADMIN"]


# --- steps --------------------------------------------------------------------------------------

# An actor index picks a present player (8 in 10) or anyone who ever had a token (2 in 10).
actors = st.integers(min_value=0, max_value=9)
targets = st.integers(min_value=0, max_value=7)  # anyone who ever had a token
cells = st.integers(min_value=0, max_value=8)
sides = st.integers(min_value=1, max_value=5)
config_changes = st.dictionaries(
    st.sampled_from(list(INITIAL_CONFIG)),
    st.integers(min_value=1, max_value=8),
    min_size=1,
    max_size=2,
).map(  # tickMillis is at least 50
    lambda changes: {
        name: value * 100 if name == "tickMillis" else value for name, value in changes.items()
    }
)
_joins = st.tuples(st.just("join"), st.sampled_from(NAMES))
_transitions = st.tuples(st.just("transition"), st.sampled_from(list(TRANSITIONS)), actors)
_configs = st.tuples(st.just("config"), actors, config_changes)
_spawns = st.tuples(st.just("action"), actors, cells, cells)
_nutrients = st.tuples(st.just("nutrients"), actors, cells, cells, sides, sides)
steps = st.one_of(  # repeated branches weigh more
    _joins,
    _joins,
    st.tuples(st.just("leave"), actors),
    st.tuples(st.just("remove"), actors, targets),
    _transitions,
    _transitions,
    st.tuples(st.just("transition"), st.just("start"), st.just(0)),  # reach RUNNING often
    _configs,
    _configs,
    _spawns,
    _spawns,
    _nutrients,
    _nutrients,
    st.tuples(st.just("retry")),
)


# A resolved step names its players (Members), not indices, so a retry repeats it exactly.
Step = tuple[Any, ...]


def _resolve(model: Model, step: Step) -> Step:
    kind = step[0]
    if kind in {"leave", "action", "nutrients"}:
        return (kind, model.actor(step[1]), *step[2:])
    if kind == "remove":
        return (kind, model.actor(step[1]), model.someone(step[2]))
    if kind == "transition":
        return (kind, step[1], model.actor(step[2]))
    if kind == "config":
        return (kind, model.actor(step[1]), step[2])
    return step


def _request(arena_id: str, step: Step) -> tuple[str, str, Any, dict[str, str]]:
    kind = step[0]
    if kind == "join":
        return "POST", arena_path(arena_id, "/players"), {"displayName": step[1]}, {}
    if kind == "leave":
        return "DELETE", arena_path(arena_id, f"/players/{step[1].id}"), None, step[1].auth
    if kind == "remove":
        return "DELETE", arena_path(arena_id, f"/players/{step[2].id}"), None, step[1].auth
    if kind == "transition":
        return "POST", arena_path(arena_id, f"/{step[1]}"), None, step[2].auth
    if kind == "config":
        return "PATCH", arena_path(arena_id, "/config"), step[2], step[1].auth
    if kind == "nutrients":
        area = dict(zip(("x", "y", "width", "height"), step[2:], strict=True))
        body = {"type": "ADD_NUTRIENTS", "payload": {"area": area, "amount": 1.5}}
    else:
        assert kind == "action"
        position = {"x": step[2], "y": step[3]}
        body = {"type": "SPAWN_ORGANISM", "payload": {"kind": "FUNGI", "position": position}}
    return "POST", arena_path(arena_id, "/actions"), body, step[1].auth


def _predict(model: Model, step: Step) -> tuple[int, str | None]:
    """The status code the rules give `step`, and the event it records (if any)."""
    kind = step[0]
    if kind == "join":
        name = step[1].strip().casefold()
        if model.status == "FINISHED":
            return 409, None
        if len(model.present) >= model.config["maxPlayers"]:
            return 409, None
        if any(p.member.name.casefold() == name for p in model.present):
            return 409, None
        return 201, "PlayerJoined"
    if kind in {"leave", "remove"}:
        seat = model.seat(step[1])
        if seat is None:
            return 401, None
        if model.status == "FINISHED":
            return 409, None
        leaving = model.seat(step[1] if kind == "leave" else step[2])
        if leaving is None:
            return 404, None
        if seat is not leaving and seat.role != "ADMIN":
            return 403, None
        if model.admins() == [leaving] and len(model.present) > 1:
            return 409, None
        return 200, "PlayerLeft"
    if kind == "transition":
        seat = model.seat(step[2])
        allowed_from, _, event = TRANSITIONS[step[1]]
        if seat is None:
            return 401, None
        if seat.role != "ADMIN":
            return 403, None
        return (200, event) if model.status in allowed_from else (409, None)
    if kind == "config":
        seat = model.seat(step[1])
        if seat is None:
            return 401, None
        if seat.role != "ADMIN":
            return 403, None
        if model.status not in {"PENDING", "PAUSED"}:
            return 409, None
        merged = model.config | step[2]
        if merged["maxPlayers"] < len(model.present):
            return 422, None
        return 200, (None if merged == model.config else "ArenaConfigUpdated")
    assert kind in {"action", "nutrients"}
    if model.seat(step[1]) is None:
        return 401, None
    if model.status not in {"RUNNING", "PAUSED"}:
        return 409, None
    x, y, width, height = (*step[2:4], *(step[4:6] or (1, 1)))
    inside = x + width <= model.config["width"] and y + height <= model.config["height"]
    return (202, "ActionSubmitted") if inside else (422, None)


def _apply(model: Model, step: Step, event: str | None, reply: dict[str, Any]) -> None:
    """Change the model as an accepted `step` changed the arena."""
    kind = step[0]
    if kind == "join":
        role = "PLAYER" if model.admins() else "ADMIN"
        player = reply["player"]
        assert player["role"] == role
        member = Member(player["id"], player["token"], role, step[1].strip())
        model.present.append(ModelPlayer(member, role))
        model.known.append(member)
    elif kind in {"leave", "remove"}:
        leaving = model.seat(step[1] if kind == "leave" else step[2])
        assert leaving is not None
        model.present.remove(leaving)
    elif kind == "transition":
        model.status = TRANSITIONS[step[1]][1]
    elif kind == "config":
        model.config |= step[2]
    if event is not None:
        model.events.append(event)


@dataclass(frozen=True)
class Sent:
    step: Step
    headers: dict[str, str]
    status: int
    reply: Any


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sequence=st.lists(steps, min_size=2, max_size=30))
@example(  # actions against a grid that changes while PAUSED
    sequence=[
        ("transition", "start", 0),
        ("action", 0, 5, 3),
        ("retry",),
        ("nutrients", 0, 4, 0, 3, 1),
        ("transition", "pause", 0),
        ("config", 0, {"width": 3, "height": 3}),
        ("action", 0, 5, 3),
        ("retry",),
        ("nutrients", 0, 0, 0, 3, 3),
        ("transition", "resume", 0),
        ("transition", "stop", 0),
        ("action", 0, 0, 0),
    ]
)
@example(  # the last admin, an emptied arena, and an admin by joining
    sequence=[
        ("join", "Bo"),
        ("join", " BO "),
        ("leave", 0),
        ("transition", "start", 1),
        ("remove", 1, 0),
        ("remove", 0, 1),
        ("leave", 0),
        ("retry",),
        ("transition", "start", 9),
        ("join", "Cy"),
        ("join", "Ada"),
        ("transition", "start", 0),
    ]
)
@example(  # full arena, maxPlayers below the head count, a PATCH that changes nothing
    sequence=[
        ("config", 0, {"maxPlayers": 2}),
        ("join", "Bo"),
        ("join", "Cy"),
        ("config", 0, {"maxPlayers": 1}),
        ("config", 0, {"width": 6}),
        ("retry",),
        ("config", 1, {"width": 5}),
    ]
)
def test_random_command_sequences_agree_with_the_model(
    client: FlaskClient, sql: psycopg.Connection, sequence: list[Step]
) -> None:
    arena_id, creator = create_arena(client, config=INITIAL_CONFIG)
    model = Model(creator)
    last: Sent | None = None

    for number, drawn in enumerate(sequence):
        if drawn[0] == "retry":
            if last is None:
                continue
            step, headers = last.step, last.headers  # same request, same Idempotency-Key
        else:
            step = _resolve(model, drawn)
            headers = {"Idempotency-Key": new_key()}
        where = f"step {number} {drawn!r} → {step[0]}"
        method, path, body, auth = _request(arena_id, step)
        headers = auth | headers
        response = client.open(path, method=method, json=body, headers=headers)
        reply = response.get_json()
        event(f"{'retried ' if drawn[0] == 'retry' else ''}{step[0]} → {response.status_code}")

        if drawn[0] == "retry" and 200 <= last.status < 300:
            # A success is remembered: replayed as it was, nothing new recorded.
            assert response.status_code == last.status, where
            assert response.headers.get("Idempotent-Replayed") == "true", where
            assert reply == last.reply, where
            continue
        # A first attempt, or the retry of a refusal (refusals are not remembered).
        expected, recorded_event = _predict(model, step)
        assert response.status_code == expected, f"{where}: {response.get_data(as_text=True)}"
        assert "Idempotent-Replayed" not in response.headers, where
        if 200 <= expected < 300:
            _apply(model, step, recorded_event, reply)
            assert reply["version"] == model.version, where
        else:
            assert response.mimetype == "application/problem+json", where
        last = Sent(step, headers, response.status_code, reply)

    # The outbox: one event per accepted command that changed something, in order, 1..N.
    recorded = assert_versions_contiguous(sql, arena_id)
    assert [event.type for event in recorded] == model.events
    # The rows: status, players and config are what the model says.
    row = arena_row(sql, arena_id)
    assert row is not None
    assert (row.status, row.version) == (model.status, model.version)
    assert {name: row.config[name] for name in INITIAL_CONFIG} == model.config
    assert players(sql, arena_id) == [
        (p.member.id, p.member.name, p.role, sha256(p.member.token)) for p in model.present
    ]
