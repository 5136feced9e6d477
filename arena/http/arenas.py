"""The arena collection: create (a command) and the queries, which read Redis only."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Response, current_app, url_for
from flask.views import MethodView
from flask_smorest import Blueprint, abort

from arena.http.docs import command_doc
from arena.http.execution import credentials, run
from arena.http.schemas import (
    ArenaOpenedSchema,
    ArenaPageSchema,
    ArenaViewSchema,
    CreateArenaSchema,
    PageQuerySchema,
)
from arena.persistence.idempotency import Reply
from arena.readmodel.store import ArenaViews
from arena.services.commands import CreateArena
from arena.services.handlers import Outcome

blp = Blueprint("arenas", __name__, url_prefix="/api/v1/arenas", description="Arenas")


def _views() -> ArenaViews:
    return current_app.extensions["arena_views"]


def _opened(outcome: Outcome) -> Reply:
    body = {"id": outcome.arena.id, "version": outcome.arena.version}
    return Reply(201, body | credentials(outcome))


@blp.route("")
class Arenas(MethodView):
    @blp.arguments(CreateArenaSchema)
    @blp.response(201, ArenaOpenedSchema)
    @command_doc(blp, authenticated=False)
    def post(self, body: dict[str, Any]) -> Response:
        """Create an arena; its creator joins as ADMIN and gets a bearer token."""
        response = run(CreateArena(body["name"], body["displayName"], body["config"]), _opened)
        response.headers["Location"] = url_for(
            "arenas.ArenaById", arena_id=response.get_json()["id"]
        )
        return response

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
