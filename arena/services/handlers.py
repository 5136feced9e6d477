"""Command handlers: load the aggregate, let it decide, return what the caller needs to know.

Handlers do not commit: the command bus commits, so a handler's changes, its outbox events and the
idempotency record of its reply share one transaction, and a lost race re-runs the whole handler.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from arena.domain.config import ArenaConfig
from arena.domain.errors import Unauthenticated
from arena.domain.model import Arena, Player, SubmittedAction, TickOutcome
from arena.services.commands import (
    AdvanceArenas,
    ChangeStatus,
    Command,
    CreateArena,
    JoinArena,
    RemovePlayer,
    SubmitAction,
    UpdateConfig,
)
from arena.services.results import (
    ActionAccepted,
    ArenaChanged,
    ArenaOpened,
    PlayerAdmitted,
    Result,
    TickMade,
    TicksMade,
)
from arena.services.unit_of_work import UnitOfWork
from arena.simulation import delta
from arena.simulation.board import Board
from arena.simulation.rules import DueAction, Rules, step
from arena.stored_board import SealedBoard, seal


def _now() -> datetime:
    return datetime.now(UTC)


def _actor(arena: Arena, token_hash: str) -> Player:
    player = arena.player_with_token_hash(token_hash)
    if player is None:
        raise Unauthenticated("The bearer token is not valid for this arena.")
    return player


def _changed(arena: Arena) -> ArenaChanged:
    return ArenaChanged(arena.id, arena.version, arena.status.value)


def create_arena(uow: UnitOfWork, command: CreateArena) -> ArenaOpened:
    arena, creator = Arena.create(
        name=command.name,
        creator_display_name=command.display_name,
        config=ArenaConfig.from_dict(command.config),
        now=_now(),
    )
    uow.arenas.add(arena)
    return ArenaOpened(arena.id, arena.version, creator)


def join_arena(uow: UnitOfWork, command: JoinArena) -> PlayerAdmitted:
    arena = uow.arenas.get(command.arena_id)
    newcomer = arena.join(command.display_name, _now())
    return PlayerAdmitted(arena.id, arena.version, newcomer)


def remove_player(uow: UnitOfWork, command: RemovePlayer) -> ArenaChanged:
    arena = uow.arenas.get(command.arena_id)
    arena.remove_player(_actor(arena, command.actor_token_hash), command.player_id, _now())
    return _changed(arena)


def change_status(uow: UnitOfWork, command: ChangeStatus) -> ArenaChanged:
    arena = uow.arenas.get(command.arena_id)
    arena.transition(command.transition, _actor(arena, command.actor_token_hash), _now())
    return _changed(arena)


def update_config(uow: UnitOfWork, command: UpdateConfig) -> ArenaChanged:
    arena = uow.arenas.get(command.arena_id)
    actor = _actor(arena, command.actor_token_hash)
    follow_up = arena.update_config(actor, command.changes, _now())
    if follow_up is not None:  # a new temperature for a dish that has ticked: its next tick
        _queue(uow, arena, actor, follow_up)
    return _changed(arena)


def _queue(uow: UnitOfWork, arena: Arena, actor: Player, action: SubmittedAction) -> None:
    due = DueAction(action.action_id, actor.id, action.action_type, action.payload)
    uow.pending_actions.add(arena.id, due, action.apply_at_tick)


def submit_action(uow: UnitOfWork, command: SubmitAction) -> ActionAccepted:
    arena = uow.arenas.get(command.arena_id)
    actor = _actor(arena, command.actor_token_hash)
    action = arena.submit_action(
        actor, command.action_type, command.payload, command.apply_at_tick, _now()
    )
    _queue(uow, arena, actor, action)
    return ActionAccepted(arena.id, arena.version, action.action_id, action.apply_at_tick)


def advance_arenas(uow: UnitOfWork, command: AdvanceArenas) -> TicksMade:
    """The next tick of each arena that is due: its board, its due actions, the step and the
    tick's events, all in the unit's one transaction (a command that changed one of the arenas
    meanwhile makes the bus run them all again on the new versions). Loads and stores go a
    statement for all the arenas, not one each."""
    now = _now()
    arenas = uow.arenas.get_many(list(command.arena_ids))
    due = [arena for arena in arenas if arena.tick_due(now)]
    boards = uow.boards.get_many([arena.id for arena in due])
    actions = uow.pending_actions.due_many({arena.id: arena.tick + 1 for arena in due})
    skipped = {arena.id: arena.ticks_to_skip(now, command.max_catch_up) for arena in due}
    uow.boards.put_many(
        {
            arena.id: _tick(
                arena, boards.get(arena.id), actions.get(arena.id, []), now, command.max_catch_up
            )
            for arena in due
        }
    )
    uow.pending_actions.settle_many({arena.id: arena.tick for arena in due})
    advanced = {arena.id for arena in due}
    return TicksMade(
        tuple(
            TickMade(
                arena.id,
                arena.version,
                arena.tick,
                advanced=arena.id in advanced,
                another_due=arena.id in advanced and arena.tick_due(now),
                skipped=skipped.get(arena.id, 0),
            )
            for arena in arenas
        )
    )


def _tick(
    arena: Arena, board: Board | None, actions: list[DueAction], now: datetime, max_catch_up: int
) -> SealedBoard:
    """Step the arena's board once and record the tick on the arena: the board it stores."""
    config = arena.config
    before = board or Board.empty(config.width, config.height, config.temperature.value)
    rules = Rules(config.seed, config.diffusion_rate, config.mutation_rate, config.max_organisms)
    made = step(before, actions, rules, present={player.id for player in arena.players})
    sealed = seal(made.board)
    outcome = TickOutcome(
        stats=made.stats.to_json(),
        delta=delta.encode(delta.diff(before, made.board)),
        board_hash=sealed.hash,
        applied=made.applied,
        rejected=made.rejected,
        snapshot=sealed.text if arena.takes_snapshot_at(sealed.tick) else None,
    )
    arena.record_tick(outcome, now, max_catch_up=max_catch_up)
    return sealed


# Each command's type → its handler (the bus's dispatch; events have their own in the read model).
COMMAND_HANDLERS: dict[type[Any], Callable[[UnitOfWork, Any], Result]] = {
    CreateArena: create_arena,
    JoinArena: join_arena,
    RemovePlayer: remove_player,
    ChangeStatus: change_status,
    UpdateConfig: update_config,
    SubmitAction: submit_action,
    AdvanceArenas: advance_arenas,
}


def handler_for(command: Command) -> Callable[[UnitOfWork, Any], Result]:
    return COMMAND_HANDLERS[type(command)]
