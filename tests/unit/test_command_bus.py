"""The command bus over an in-memory unit of work: one commit per command, retries from a
fresh load after a lost race, replies replayed under an Idempotency-Key, refusals keep nothing."""

from __future__ import annotations

import pytest

from arena.domain.errors import Conflict, IllegalTransition, NotFound, Unauthenticated
from arena.domain.model import hash_token
from arena.services.bus import MAX_ATTEMPTS, CommandBus
from arena.services.commands import ChangeStatus, CreateArena, JoinArena
from arena.services.idempotency import IdempotencyKey, IdempotencyKeyReused, Reply
from arena.services.results import ArenaChanged, ArenaOpened, PlayerAdmitted, Result
from arena.services.unit_of_work import Provenance
from tests.support.fakes import FakeUnitsOfWork

CREATE = CreateArena("Petri", "Ada", {"seed": 1})


def render(result: Result) -> Reply:
    return Reply(200, {"version": result.version})


class Kept(list[Result]):
    """A renderer that keeps each result it renders."""

    def __call__(self, result: Result) -> Reply:
        self.append(result)
        return render(result)


@pytest.fixture
def units() -> FakeUnitsOfWork:
    return FakeUnitsOfWork()


@pytest.fixture
def pauses() -> list[float]:
    return []


@pytest.fixture
def bus(units: FakeUnitsOfWork, pauses: list[float]) -> CommandBus:
    return CommandBus(units, pause=pauses.append)


def opened(bus: CommandBus) -> ArenaOpened:
    kept = Kept()
    bus.execute(CREATE, kept)
    [result] = kept
    assert isinstance(result, ArenaOpened)
    return result


def started_by(admin: ArenaOpened) -> ChangeStatus:
    return ChangeStatus(admin.arena_id, "start", hash_token(admin.creator.token))


def test_a_command_commits_its_one_event_and_answers_with_the_rendered_reply(bus, units):
    arena = opened(bus)
    provenance = Provenance.new("flow-1")

    reply = bus.execute(started_by(arena), render, provenance=provenance)

    assert reply == Reply(200, {"version": 2})
    assert [(p, e.type, e.version) for p, e in units.committed.events[1:]] == [
        (provenance, "ArenaStarted", 2)
    ]
    assert units.committed.arenas[arena.arena_id].status.value == "RUNNING"


def test_each_handler_answers_its_own_result_type(bus):
    arena = opened(bus)
    kept = Kept()

    bus.execute(JoinArena(arena.arena_id, "Bo"), kept)
    bus.execute(started_by(arena), kept)

    admitted, changed = kept
    assert isinstance(admitted, PlayerAdmitted) and admitted.player.player.display_name == "Bo"
    assert changed == ArenaChanged(arena.arena_id, 3, "RUNNING")


@pytest.mark.parametrize(
    ("command", "refusal"),
    [
        (lambda arena: ChangeStatus(arena.arena_id, "pause", hash_token(arena.creator.token)),
         IllegalTransition),
        (lambda arena: ChangeStatus(arena.arena_id, "start", hash_token("not a token")),
         Unauthenticated),
        (lambda arena: JoinArena("no-such-arena", "Bo"), NotFound),
    ],
)  # fmt: skip
def test_a_refused_command_keeps_nothing_not_even_its_idempotency_key(bus, units, command, refusal):
    arena = opened(bus)
    before = (list(units.committed.events), units.committed.arenas[arena.arena_id].version)

    with pytest.raises(refusal):
        bus.execute(command(arena), render, idempotency_key=IdempotencyKey("", "k", "print"))

    assert (units.committed.events, units.committed.arenas[arena.arena_id].version) == before
    assert units.committed.replies == {}


def test_a_lost_race_is_run_again_on_a_fresh_load_with_the_same_provenance(bus, units, pauses):
    arena = opened(bus)
    rival = JoinArena(arena.arena_id, "Rival")
    raced: list[bool] = []

    def a_rival_commits_first() -> None:
        if not raced:
            raced.append(True)
            units.before_commit = lambda: None
            bus.execute(rival, render)  # commits version 2 while our command holds version 1
            units.before_commit = a_rival_commits_first

    units.before_commit = a_rival_commits_first
    provenance = Provenance.new()

    reply = bus.execute(JoinArena(arena.arena_id, "Bo"), render, provenance=provenance)

    assert reply == Reply(200, {"version": 3})
    joined = [
        e.payload["displayName"] for _, e in units.committed.events if e.type == "PlayerJoined"
    ]
    assert joined == ["Rival", "Bo"]
    assert units.opened.count(provenance) == 2
    assert len(pauses) == 1


def test_a_command_that_keeps_losing_gives_up_with_a_conflict_and_writes_nothing(
    bus, units, pauses
):
    arena = opened(bus)
    written = len(units.committed.events)

    def a_rival_always_commits_first() -> None:
        units.committed.arenas[arena.arena_id].version += 1

    units.before_commit = a_rival_always_commits_first

    with pytest.raises(Conflict):
        bus.execute(started_by(arena), render)

    assert len(units.committed.events) == written
    assert len(pauses) == MAX_ATTEMPTS


def test_a_key_seen_before_replays_the_first_reply_and_runs_nothing(bus, units):
    arena = opened(bus)
    key = IdempotencyKey("", "retry-me", "same request")
    first = bus.execute(JoinArena(arena.arena_id, "Bo"), render, idempotency_key=key)
    written = len(units.committed.events)

    again = bus.execute(JoinArena(arena.arena_id, "Bo"), render, idempotency_key=key)

    assert (first.replayed, again) == (False, Reply(first.status, first.body, replayed=True))
    assert len(units.committed.events) == written


def test_a_key_sent_with_another_request_is_refused_and_runs_nothing(bus, units):
    arena = opened(bus)
    bus.execute(
        JoinArena(arena.arena_id, "Bo"), render, idempotency_key=IdempotencyKey("", "k", "a")
    )
    written = len(units.committed.events)

    with pytest.raises(IdempotencyKeyReused):
        bus.execute(
            JoinArena(arena.arena_id, "Cy"), render, idempotency_key=IdempotencyKey("", "k", "b")
        )

    assert len(units.committed.events) == written
