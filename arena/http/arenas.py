"""Arena routes: commands go through the unit of work; queries read Redis only."""

from __future__ import annotations

import uuid
from typing import Any

from flask import current_app, request, url_for
from flask.views import MethodView
from flask_smorest import Blueprint, abort

from arena.extensions import db
from arena.http.schemas import (
    ArenaOpenedSchema,
    ArenaPageSchema,
    ArenaViewSchema,
    CreateArenaSchema,
    PageQuerySchema,
)
from arena.persistence.unit_of_work import UnitOfWork
from arena.readmodel.store import ArenaViews
from arena.services import CreateArena, create_arena

blp = Blueprint("arenas", __name__, url_prefix="/api/v1/arenas", description="Arenas")


def _unit_of_work() -> UnitOfWork:
    """Correlate all events of one request; a client may pass its own correlation id."""
    request_id = str(uuid.uuid4())
    correlation_id = request.headers.get("X-Correlation-ID", request_id)[:64]
    return UnitOfWork(db.session, correlation_id=correlation_id, causation_id=request_id)


def _views() -> ArenaViews:
    return current_app.extensions["arena_views"]


@blp.route("")
class Arenas(MethodView):
    @blp.arguments(CreateArenaSchema)
    @blp.response(201, ArenaOpenedSchema)
    def post(self, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        """Create an arena; its creator joins as ADMIN and gets a bearer token."""
        command = CreateArena(body["name"], body["displayName"], body["config"])
        with _unit_of_work() as uow:
            opened = create_arena(uow, command)
        location = url_for("arenas.ArenaById", arena_id=opened.arena_id)
        return {
            "id": opened.arena_id,
            "version": opened.version,
            "player": {
                "id": opened.player_id,
                "token": opened.player_token,
                "role": opened.player_role,
            },
        }, {"Location": location}

    @blp.arguments(PageQuerySchema, location="query")
    @blp.response(200, ArenaPageSchema)
    def get(self, query: dict[str, int]) -> dict[str, Any]:
        """List arenas from the read model, newest first."""
        items, total = _views().newest_first(limit=query["limit"], offset=query["offset"])
        return {"items": items, "total": total, **query}


@blp.route("/<uuid:arena_id>")
class ArenaById(MethodView):
    @blp.response(200, ArenaViewSchema)
    @blp.alt_response(404, description="No such arena in the read model (yet)")
    def get(self, arena_id: uuid.UUID) -> dict[str, Any]:
        """One arena's view from the read model."""
        view = _views().get(str(arena_id))
        if view is None:
            abort(404, message=f"Arena {arena_id} not found.")
        return view
