"""Query routes: they read the Redis read model only, never PostgreSQL.

Single-arena answers carry the view's version in `X-Read-Model-Version` (and the body). With
`?minVersion=N` — the version a command answered — they wait a few seconds for the view to catch
up, so a client can read its own writes; if it does not, they answer 503 with the version reached.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Response, current_app, jsonify
from flask.views import MethodView
from flask_smorest import Blueprint, abort

from arena.http.problems import problem
from arena.http.schemas import (
    ArenaFeedSchema,
    ArenaPageSchema,
    ArenaPlayersSchema,
    ArenaViewSchema,
    FeedQuerySchema,
    PageQuerySchema,
    ProblemSchema,
    ReadQuerySchema,
)
from arena.readmodel.projector import View
from arena.readmodel.store import ArenaViews

blp = Blueprint(
    "arena_queries", __name__, url_prefix="/api/v1/arenas", description="Arena queries (Redis)"
)

VERSION_HEADER = "X-Read-Model-Version"
RETRY_AFTER_SECONDS = "1"


def _views() -> ArenaViews:
    return current_app.extensions["arena_views"]


def _view_or_refusal(arena_id: uuid.UUID, min_version: int | None) -> View | Response:
    """The view (having reached `min_version`, if given), or the problem to answer instead."""
    if min_version is None:
        view = _views().get(str(arena_id))
    else:
        wait = current_app.extensions["settings"].read_wait_seconds
        view = _views().wait_for(str(arena_id), min_version, wait)
    if view is None and min_version is None:
        abort(404, message=f"Arena {arena_id} not found.")
    if view is None or (min_version is not None and view["version"] < min_version):
        return _behind(arena_id, view["version"] if view else 0, min_version)
    return view


def _behind(arena_id: uuid.UUID, reached: int, wanted: int | None) -> Response:
    response = problem(
        503,
        f"The read model has version {reached} of arena {arena_id}, not yet {wanted}.",
        slug="read-model-behind",
        extra={"currentVersion": reached},
    )
    response.headers[VERSION_HEADER] = str(reached)
    response.headers["Retry-After"] = RETRY_AFTER_SECONDS
    return response


def _versioned(body: dict[str, Any], version: int) -> Response:
    response = jsonify(body)
    response.headers[VERSION_HEADER] = str(version)
    return response


_BEHIND = {
    "schema": ProblemSchema,
    "content_type": "application/problem+json",
    "description": "`minVersion` not reached within the wait; `currentVersion` says how far it got",
}


@blp.route("")
class ArenaList(MethodView):
    @blp.arguments(PageQuerySchema, location="query")
    @blp.response(200, ArenaPageSchema)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """Arenas newest first; filter by `status`, search names with `q`."""
        items, total = _views().page(
            limit=query["limit"],
            offset=query["offset"],
            status=query.get("status"),
            query=query.get("q"),
        )
        return {"items": items, "total": total, "limit": query["limit"], "offset": query["offset"]}


@blp.route("/<uuid:arena_id>")
class ArenaById(MethodView):
    @blp.arguments(ReadQuerySchema, location="query")
    @blp.response(200, ArenaViewSchema, headers={VERSION_HEADER: {"schema": {"type": "integer"}}})
    @blp.alt_response(404, description="No such arena in the read model (yet)")
    @blp.alt_response(503, **_BEHIND)
    def get(self, query: dict[str, int], arena_id: uuid.UUID) -> Response:
        """One arena's view."""
        view = _view_or_refusal(arena_id, query.get("minVersion"))
        if isinstance(view, Response):
            return view
        return _versioned(view, view["version"])


@blp.route("/<uuid:arena_id>/players")
class ArenaPlayers(MethodView):
    @blp.arguments(ReadQuerySchema, location="query")
    @blp.response(200, ArenaPlayersSchema)
    @blp.alt_response(404, description="No such arena in the read model (yet)")
    @blp.alt_response(503, **_BEHIND)
    def get(self, query: dict[str, int], arena_id: uuid.UUID) -> Response:
        """The players of an arena, with their roles."""
        view = _view_or_refusal(arena_id, query.get("minVersion"))
        if isinstance(view, Response):
            return view
        body = {"arenaId": view["id"], "version": view["version"], "players": view["players"]}
        return _versioned(body, view["version"])


@blp.route("/<uuid:arena_id>/events")
class ArenaFeed(MethodView):
    @blp.arguments(FeedQuerySchema, location="query")
    @blp.response(200, ArenaFeedSchema)
    @blp.alt_response(404, description="No such arena in the read model (yet)")
    @blp.alt_response(503, **_BEHIND)
    def get(self, query: dict[str, int], arena_id: uuid.UUID) -> Response:
        """The arena's most recent events, newest first (a bounded feed)."""
        view = _view_or_refusal(arena_id, query.get("minVersion"))
        if isinstance(view, Response):
            return view
        events = _views().feed(str(arena_id), query["limit"])
        body = {"arenaId": view["id"], "version": view["version"], "events": events}
        return _versioned(body, view["version"])
