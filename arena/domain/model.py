"""The Arena aggregate: the consistency boundary every arena command goes through.

Each accepted command records exactly one event, and a tick one event per due action plus its
`TickAdvanced` (and, every `snapshotEveryTicks`, a `SnapshotTaken`); each event bumps `version`
by one, so an arena's events are numbered 1, 2, 3… with no gaps; the persistence layer turns
them into outbox rows.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, TypedDict

from arena.domain.actions import ActionType, validated_payload
from arena.domain.config import ArenaConfig
from arena.domain.errors import (
    Conflict,
    IllegalTransition,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from arena.domain.events import (
    ActionApplied,
    ActionRejected,
    ActionSubmitted,
    ArenaConfigUpdated,
    ArenaCreated,
    ArenaPaused,
    ArenaResumed,
    ArenaStarted,
    ArenaStopped,
    DomainEvent,
    PlayerJoined,
    PlayerLeft,
    PlayerSnapshot,
    SnapshotTaken,
    TickAdvanced,
)

NAME_LENGTH = (3, 80)
_NOT_TEXT = frozenset({"Cc", "Cs"})  # Unicode categories: control characters, lone surrogates
DISPLAY_NAME_LENGTH = (1, 40)
# The board keeps ticks in int32 layers (`born_tick`, docs/simulation.md): none comes later.
MAX_TICK = 2**31 - 1


class ArenaStatus(enum.StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    FINISHED = "FINISHED"


class PlayerRole(enum.StrEnum):
    ADMIN = "ADMIN"
    PLAYER = "PLAYER"


class _EventHeader(TypedDict):
    """What every event of this arena's next version starts with."""

    aggregate_id: str
    version: int
    occurred_at: datetime


class _TransitionEvent(Protocol):
    def __call__(
        self, header: _EventHeader, status: str, tick: int, at: datetime
    ) -> DomainEvent: ...


@dataclass(frozen=True, slots=True)
class _Transition:
    allowed_from: frozenset[ArenaStatus]
    target: ArenaStatus
    event: _TransitionEvent


_TRANSITIONS: dict[str, _Transition] = {
    "start": _Transition(
        frozenset({ArenaStatus.PENDING}),
        ArenaStatus.RUNNING,
        lambda header, status, tick, at: ArenaStarted(
            **header, status=status, tick=tick, started_at=at
        ),
    ),
    "pause": _Transition(
        frozenset({ArenaStatus.RUNNING}),
        ArenaStatus.PAUSED,
        lambda header, status, tick, at: ArenaPaused(
            **header, status=status, tick=tick, paused_at=at
        ),
    ),
    "resume": _Transition(
        frozenset({ArenaStatus.PAUSED}),
        ArenaStatus.RUNNING,
        lambda header, status, tick, at: ArenaResumed(
            **header, status=status, tick=tick, resumed_at=at
        ),
    ),
    "stop": _Transition(
        frozenset({ArenaStatus.PENDING, ArenaStatus.RUNNING, ArenaStatus.PAUSED}),
        ArenaStatus.FINISHED,
        lambda header, status, tick, at: ArenaStopped(
            **header, status=status, tick=tick, finished_at=at
        ),
    ),
}
TRANSITION_COMMANDS = tuple(_TRANSITIONS)
_CONFIGURABLE = frozenset({ArenaStatus.PENDING, ArenaStatus.PAUSED})
_ACCEPTING_ACTIONS = frozenset({ArenaStatus.RUNNING, ArenaStatus.PAUSED})


def hash_token(token: str) -> str:
    """Tokens are kept only as a SHA-256 digest; being random, they need no salt or stretching."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(slots=True)
class Player:
    id: str
    display_name: str
    role: PlayerRole
    joined_at: datetime
    token_hash: str

    def snapshot(self) -> PlayerSnapshot:
        return PlayerSnapshot(self.id, self.display_name, self.role.value, self.joined_at)


@dataclass(frozen=True, slots=True)
class NewPlayer:
    """A player just admitted, with the one copy of its bearer token that ever leaves the domain."""

    player: Player
    token: str


@dataclass(frozen=True, slots=True)
class SubmittedAction:
    action_id: str
    apply_at_tick: int
    action_type: str
    payload: dict[str, Any]  # canonical for its type


@dataclass(frozen=True, slots=True)
class TickOutcome:
    """What the simulation made of the arena's next tick, as plain values (the domain does not
    run the simulation; the service layer does, and hands the outcome here to be recorded)."""

    stats: dict[str, Any]  # organismCount, births, deaths, mutations, avgFitness
    delta: dict[str, Any]
    board_hash: str
    applied: list[str]  # action ids, in submission order
    rejected: list[tuple[str, str]]  # (action id, reason)
    snapshot: str | None  # the board, encoded, when this tick takes a snapshot


@dataclass(slots=True)
class Arena:
    id: str
    name: str
    status: ArenaStatus
    config: ArenaConfig
    created_at: datetime
    players: list[Player] = field(default_factory=list)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    tick: int = 0
    version: int = 0
    next_tick_at: datetime | None = None  # when RUNNING: when the next tick is due
    events: list[DomainEvent] = field(default_factory=list, repr=False)

    @classmethod
    def create(
        cls, *, name: str, creator_display_name: str, config: ArenaConfig, now: datetime
    ) -> tuple[Arena, NewPlayer]:
        """Open a PENDING arena whose creator joins as its first ADMIN."""
        name = _checked_length("name", name, NAME_LENGTH)
        creator = _new_player(creator_display_name, PlayerRole.ADMIN, now)
        arena = cls(
            id=str(uuid.uuid4()),
            name=name,
            status=ArenaStatus.PENDING,
            config=config,
            created_at=now,
            players=[creator.player],
        )
        arena._record(
            ArenaCreated(
                **arena._next_event(now),
                arena_id=arena.id,
                name=arena.name,
                status=arena.status.value,
                config=config.to_dict(),
                created_at=now,
                creator=creator.player.snapshot(),
            )
        )
        return arena, creator

    # --- who is asking -------------------------------------------------------------------------

    def player_with_token_hash(self, token_hash: str) -> Player | None:
        return next(
            (p for p in self.players if secrets.compare_digest(p.token_hash, token_hash)), None
        )

    def player(self, player_id: str) -> Player:
        found = next((p for p in self.players if p.id == player_id), None)
        if found is None:
            raise NotFound(f"Player {player_id} is not in arena {self.id}.")
        return found

    # --- players -------------------------------------------------------------------------------

    def join(self, display_name: str, now: datetime) -> NewPlayer:
        self._refuse_if_finished("join")
        if len(self.players) >= self.config.max_players:
            raise Conflict(f"The arena is full ({self.config.max_players} players).")
        # Whoever joins an arena left without an admin takes that role, so it stays governable.
        role = PlayerRole.PLAYER if self._admins() else PlayerRole.ADMIN
        newcomer = _new_player(display_name, role, now)
        wanted = newcomer.player.display_name.casefold()
        if any(p.display_name.casefold() == wanted for p in self.players):
            raise Conflict(f"The display name {newcomer.player.display_name!r} is taken here.")
        self.players.append(newcomer.player)
        joined = newcomer.player.snapshot()
        self._record(
            PlayerJoined(
                **self._next_event(now),
                player_id=joined.player_id,
                display_name=joined.display_name,
                role=joined.role,
                joined_at=joined.joined_at,
            )
        )
        return newcomer

    def remove_player(self, actor: Player, player_id: str, now: datetime) -> None:
        """A player leaves (actor is that player) or an admin removes them."""
        self._refuse_if_finished("leave")
        leaving = self.player(player_id)
        if actor.id != leaving.id and actor.role is not PlayerRole.ADMIN:
            raise PermissionDenied("Only an admin can remove another player.")
        if self._admins() == [leaving] and len(self.players) > 1:
            raise Conflict("The last admin cannot leave while other players remain.")
        self.players.remove(leaving)
        self._record(
            PlayerLeft(
                **self._next_event(now),
                player_id=leaving.id,
                display_name=leaving.display_name,
                role=leaving.role.value,
                removed_by=None if actor.id == leaving.id else actor.id,
                left_at=now,
            )
        )

    # --- lifecycle ------------------------------------------------------------------------------

    def transition(self, command: str, actor: Player, now: datetime) -> None:
        """Start, pause, resume or stop (admins only)."""
        transition = _TRANSITIONS[command]
        _require_admin(actor, command)
        if self.status not in transition.allowed_from:
            raise IllegalTransition(f"Cannot {command} an arena that is {self.status.value}.")
        self.status = transition.target
        if self.status is ArenaStatus.RUNNING and self.started_at is None:
            self.started_at = now
        running = self.status is ArenaStatus.RUNNING
        self.next_tick_at = now + self.tick_period if running else None
        if self.status is ArenaStatus.FINISHED:
            self.finished_at = now
        self._record(transition.event(self._next_event(now), self.status.value, self.tick, now))

    def update_config(
        self, actor: Player, changes: dict[str, Any], now: datetime
    ) -> SubmittedAction | None:
        """Change some settings (camelCase keys; temperature may be partial) while not running.

        The dish's temperature comes from the config when it is made (at the first tick); after
        that only a SET_TEMPERATURE changes it, so a new temperature for a dish that has ticked
        is also submitted as one, for the next tick (returned: its action is to be queued).

        The grid (width, height) is the stored board's once the dish has ticked, so it may
        change only before the first tick: a Conflict after."""
        _require_admin(actor, "change the config")
        if self.status not in _CONFIGURABLE:
            raise IllegalTransition(
                f"The config can change only while PENDING or PAUSED, not {self.status.value}."
            )
        if not changes:
            raise ValidationFailed({"body": "name at least one setting to change"})
        current = self.config.to_dict()
        merged = dict(current)
        for name, value in changes.items():
            both_objects = isinstance(value, dict) and isinstance(current.get(name), dict)
            merged[name] = current[name] | value if both_objects else value
        config = ArenaConfig.from_dict(merged)
        if config.max_players < len(self.players):
            raise ValidationFailed(
                {"maxPlayers": f"must be at least the {len(self.players)} players present"}
            )
        grid = (self.config.width, self.config.height)
        if self.tick > 0 and (config.width, config.height) != grid:
            raise Conflict(
                f"The grid cannot change once the dish has ticked (tick {self.tick}): it stays "
                f"{grid[0]} x {grid[1]}."
            )
        changed = sorted(name for name, value in config.to_dict().items() if value != current[name])
        if not changed:
            return None  # nothing differs: no change, no event, same version
        self.config = config
        self._record(
            ArenaConfigUpdated(
                **self._next_event(now), changes=changed, config=config.to_dict(), updated_at=now
            )
        )
        if "temperature" not in changed or self.tick == 0:
            return None
        temperature = {"temperature": config.to_dict()["temperature"]}
        return self.submit_action(actor, ActionType.SET_TEMPERATURE, temperature, None, now)

    # --- actions --------------------------------------------------------------------------------

    def submit_action(
        self,
        actor: Player,
        action_type: ActionType | str,
        payload: dict[str, Any],
        apply_at_tick: int | None,
        now: datetime,
    ) -> SubmittedAction:
        if action_type not in ActionType.__members__:
            raise ValidationFailed({"type": f"must be one of {', '.join(ActionType)}"})
        action_type = ActionType(action_type)
        if self.status not in _ACCEPTING_ACTIONS:
            raise IllegalTransition(
                f"Actions are accepted while RUNNING or PAUSED, not {self.status.value}."
            )
        tick = self.tick + 1 if apply_at_tick is None else apply_at_tick
        if tick <= self.tick:
            raise ValidationFailed(
                {"applyAtTick": f"must be greater than the current tick {self.tick}"}
            )
        if tick > MAX_TICK:
            raise ValidationFailed({"applyAtTick": f"must be at most {MAX_TICK}"})
        canonical = validated_payload(action_type, payload, self.config)
        action = SubmittedAction(str(uuid.uuid4()), tick, action_type.value, canonical)
        self._record(
            ActionSubmitted(
                **self._next_event(now),
                action_id=action.action_id,
                player_id=actor.id,
                action_type=action_type.value,
                apply_at_tick=tick,
                action_payload=canonical,
                submitted_at=now,
            )
        )
        return action

    # --- ticks ----------------------------------------------------------------------------------

    @property
    def tick_period(self) -> timedelta:
        return timedelta(milliseconds=self.config.tick_millis)

    def tick_due(self, now: datetime) -> bool:
        return (
            self.status is ArenaStatus.RUNNING
            and self.next_tick_at is not None
            and self.next_tick_at <= now
        )

    def takes_snapshot_at(self, tick: int) -> bool:
        return tick % self.config.snapshot_every_ticks == 0

    def ticks_to_skip(self, now: datetime, max_catch_up: int) -> int:
        """How many ticks the next one leaves out: every one it is behind, once that is
        `max_catch_up` or more (see `record_tick`)."""
        assert self.next_tick_at is not None
        behind = (now - self.next_tick_at) // self.tick_period
        return behind if behind >= max_catch_up else 0

    def record_tick(self, outcome: TickOutcome, now: datetime, *, max_catch_up: int) -> None:
        """Record the next tick: its due actions' fates, the tick, and a snapshot when due.

        Ticks keep their cadence (the next is due one period after this one was), so an arena
        a little behind catches up tick by tick. One `max_catch_up` periods behind or more skips
        ahead instead: the next tick is due a period from `now`, and `ticksSkipped` says how
        many were left out. The tick number itself always grows by one.
        """
        if not self.tick_due(now):
            raise IllegalTransition(f"No tick is due for an arena that is {self.status.value}.")
        assert self.next_tick_at is not None
        skipped = self.ticks_to_skip(now, max_catch_up)
        start = now if skipped else self.next_tick_at
        self.next_tick_at = start + self.tick_period
        self.tick += 1
        for action_id in outcome.applied:
            self._record(
                ActionApplied(**self._next_event(now), action_id=action_id, tick=self.tick)
            )
        for action_id, reason in outcome.rejected:
            self._record(
                ActionRejected(
                    **self._next_event(now), action_id=action_id, tick=self.tick, reason=reason
                )
            )
        self._record(
            TickAdvanced(
                **self._next_event(now),
                tick=self.tick,
                stats=outcome.stats | {"ticksSkipped": skipped},
                delta=outcome.delta,
                board_hash=outcome.board_hash,
                advanced_at=now,
            )
        )
        if outcome.snapshot is not None:
            self._record(
                SnapshotTaken(
                    **self._next_event(now),
                    tick=self.tick,
                    board=outcome.snapshot,
                    board_hash=outcome.board_hash,
                )
            )

    # --- bookkeeping ----------------------------------------------------------------------------

    def collect_events(self) -> list[DomainEvent]:
        """Hand over the events recorded since the last call (the unit of work writes them)."""
        collected, self.events = self.events, []
        return collected

    def _admins(self) -> list[Player]:
        return [p for p in self.players if p.role is PlayerRole.ADMIN]

    def _refuse_if_finished(self, what: str) -> None:
        if self.status is ArenaStatus.FINISHED:
            raise IllegalTransition(f"Cannot {what} a FINISHED arena.")

    def _next_event(self, now: datetime) -> _EventHeader:
        return {"aggregate_id": self.id, "version": self.version + 1, "occurred_at": now}

    def _record(self, event: DomainEvent) -> None:
        """The one place the version moves: each event is exactly the next version."""
        assert event.version == self.version + 1, (event, self.version)
        self.version = event.version
        self.events.append(event)


def _require_admin(actor: Player, what: str) -> None:
    if actor.role is not PlayerRole.ADMIN:
        raise PermissionDenied(f"Only an admin can {what}.")


def _new_player(display_name: str, role: PlayerRole, now: datetime) -> NewPlayer:
    display_name = _checked_length("displayName", display_name, DISPLAY_NAME_LENGTH)
    token = secrets.token_urlsafe(32)
    player = Player(str(uuid.uuid4()), display_name, role, now, hash_token(token))
    return NewPlayer(player, token)


def _checked_length(field_name: str, value: str, bounds: tuple[int, int]) -> str:
    """A name as people read it: trimmed, within `bounds`, and text (no control characters, no
    lone surrogates, which no database column or UTF-8 encoder would take)."""
    value = value.strip()
    low, high = bounds
    if not low <= len(value) <= high:
        raise ValidationFailed({field_name: f"length must be between {low} and {high}"})
    if any(unicodedata.category(character) in _NOT_TEXT for character in value):
        raise ValidationFailed({field_name: "must not contain control characters"})
    return value
