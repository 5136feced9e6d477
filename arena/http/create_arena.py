"""Creating an arena: the one command that needs no arena and no token."""

from __future__ import annotations

from typing import Any

from flask import Response, url_for
from flask.views import MethodView
from flask_smorest import Blueprint

from arena.http.docs import command_doc
from arena.http.execution import credentials, run
from arena.http.rate_limits import Limited
from arena.http.schemas import ArenaOpenedSchema, CreateArenaSchema
from arena.services.commands import CreateArena
from arena.services.idempotency import Reply
from arena.services.results import ArenaOpened

blp = Blueprint("arenas", __name__, url_prefix="/api/v1/arenas", description="Arenas")


def _opened(opened: ArenaOpened) -> Reply:
    return Reply(
        201, {"id": opened.arena_id, "version": opened.version} | credentials(opened.creator)
    )


@blp.route("")
class ArenaCreation(MethodView):
    @blp.arguments(CreateArenaSchema())
    @blp.response(201, ArenaOpenedSchema)
    @command_doc(blp, authenticated=False, limited=Limited.CREATE)
    def post(self, body: dict[str, Any]) -> Response:
        """Create an arena; its creator joins as ADMIN and gets a bearer token."""
        response = run(CreateArena(body["name"], body["displayName"], body["config"]), _opened)
        response.headers["Location"] = url_for(
            "arena_queries.ArenaById", arena_id=response.get_json()["id"]
        )
        return response
