"""Commands on one arena: players, lifecycle, config and actions. Each needs a bearer token."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint

from arena.domain.actions import ActionType
from arena.domain.model import TRANSITION_COMMANDS
from arena.http.docs import command_doc
from arena.http.execution import bearer_token_hash, credentials, run
from arena.http.rate_limits import Limited
from arena.http.schemas import (
    ActionAcceptedSchema,
    ConfigChangesSchema,
    JoinArenaSchema,
    PlayerJoinedSchema,
    StatusChangedSchema,
    SubmitActionSchema,
    VersionSchema,
)
from arena.services.commands import (
    ChangeStatus,
    JoinArena,
    RemovePlayer,
    SubmitAction,
    UpdateConfig,
)
from arena.services.idempotency import Reply
from arena.services.results import ActionAccepted, ArenaChanged, PlayerAdmitted

blp = Blueprint(
    "arena_commands", __name__, url_prefix="/api/v1/arenas", description="Arena commands"
)


def _version(changed: ArenaChanged) -> Reply:
    return Reply(200, {"version": changed.version})


def _joined(admitted: PlayerAdmitted) -> Reply:
    return Reply(201, {"version": admitted.version} | credentials(admitted.player))


def _status(changed: ArenaChanged) -> Reply:
    return Reply(200, {"status": changed.status, "version": changed.version})


def _accepted(accepted: ActionAccepted) -> Reply:
    body = {
        "actionId": accepted.action_id,
        "applyAtTick": accepted.apply_at_tick,
        "version": accepted.version,
    }
    return Reply(202, body)


@blp.route("/<uuid:arena_id>/players")
class Players(MethodView):
    @blp.arguments(JoinArenaSchema())
    @blp.response(201, PlayerJoinedSchema)
    @command_doc(blp, authenticated=False, limited=Limited.JOIN)
    def post(self, body: dict[str, Any], arena_id: uuid.UUID) -> Response:
        """Join an arena as a PLAYER; answers the new player's bearer token."""
        return run(JoinArena(str(arena_id), body["displayName"]), _joined)


@blp.route("/<uuid:arena_id>/players/<uuid:player_id>")
class PlayerById(MethodView):
    @blp.response(200, VersionSchema)
    @command_doc(blp)
    def delete(self, arena_id: uuid.UUID, player_id: uuid.UUID) -> Response:
        """Leave the arena (your own id), or, as an admin, remove a player."""
        command = RemovePlayer(str(arena_id), str(player_id), bearer_token_hash())
        return run(command, _version)


def _transition_view(transition: str) -> type[MethodView]:
    class Transition(MethodView):
        @blp.response(200, StatusChangedSchema)
        @command_doc(blp)
        def post(self, arena_id: uuid.UUID) -> Response:
            return run(ChangeStatus(str(arena_id), transition, bearer_token_hash()), _status)

    Transition.post.__doc__ = f"{transition.title()} the arena (admins only)."
    Transition.__name__ = f"{transition.title()}Arena"
    return Transition


for _transition in TRANSITION_COMMANDS:
    blp.route(f"/<uuid:arena_id>/{_transition}")(_transition_view(_transition))


@blp.route("/<uuid:arena_id>/config")
class Config(MethodView):
    @blp.arguments(ConfigChangesSchema())
    @blp.response(200, VersionSchema)
    @command_doc(blp)
    def patch(self, changes: dict[str, Any], arena_id: uuid.UUID) -> Response:
        """Change some settings while PENDING or PAUSED (admins only)."""
        return run(UpdateConfig(str(arena_id), changes, bearer_token_hash()), _version)


@blp.route("/<uuid:arena_id>/actions")
class Actions(MethodView):
    @blp.arguments(SubmitActionSchema())
    @blp.response(202, ActionAcceptedSchema)
    @command_doc(blp)
    def post(self, body: dict[str, Any], arena_id: uuid.UUID) -> Response:
        """Submit an action to take effect at a future tick (players of a RUNNING/PAUSED arena)."""
        command = SubmitAction(
            arena_id=str(arena_id),
            action_type=ActionType(body["type"]),
            payload=body["payload"],
            apply_at_tick=body.get("applyAtTick"),
            actor_token_hash=bearer_token_hash(),
        )
        return run(command, _accepted)
