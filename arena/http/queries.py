"""Query routes: they read the Redis read model only, never PostgreSQL.

Single-arena answers carry the view's version in `X-Read-Model-Version` (and the body). With
`?minVersion=N` — the version a command answered — they wait a few seconds for the view to catch
up, so a client can read its own writes; if it does not, they answer 503 with the version reached.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from typing import Any

from flask import Response, jsonify
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import Schema

from arena.bootstrap import components
from arena.http.board_view import board_body
from arena.http.problems import problem
from arena.http.schemas import (
    ArenaFeedSchema,
    ArenaPageSchema,
    ArenaPlayersSchema,
    ArenaViewSchema,
    BoardSchema,
    FeedQuerySchema,
    PageQuerySchema,
    ProblemSchema,
    ReadQuerySchema,
)
from arena.readmodel.boards import read_board
from arena.readmodel.projector import View
from arena.readmodel.store import ArenaViews
from arena.simulation.board import Board

blp = Blueprint(
    "arena_queries", __name__, url_prefix="/api/v1/arenas", description="Arena queries (Redis)"
)

VERSION_HEADER = "X-Read-Model-Version"
RETRY_AFTER_SECONDS = "1"


def _views() -> ArenaViews:
    return components().views


def _view_or_refusal(arena_id: uuid.UUID, min_version: int | None) -> View | Response:
    """The view (having reached `min_version`, if given), or the problem to answer instead."""
    if min_version is None:
        view = _views().get(str(arena_id))
    else:
        wait = components().settings.read_wait_seconds
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


_VERSION_HEADER_DOC = {VERSION_HEADER: {"schema": {"type": "integer"}}}
_BEHIND = {
    "schema": ProblemSchema,
    "content_type": "application/problem+json",
    "description": "`minVersion` not reached within the wait; `currentVersion` says how far it got",
}


@blp.route("")
class ArenaList(MethodView):
    @blp.arguments(PageQuerySchema(), location="query")
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


def _single_arena_query(
    query_schema: type[Schema], response_schema: type[Schema]
) -> Callable[[Callable[..., dict[str, Any]]], Callable[..., Response]]:
    """Document and serve a query about one arena: 404, minVersion waiting, the version header.

    The decorated method gets the query arguments and the arena's view, and returns the body.
    """

    def decorate(build: Callable[..., dict[str, Any]]) -> Callable[..., Response]:
        @functools.wraps(build)
        def serve(self: MethodView, query: dict[str, Any], arena_id: uuid.UUID) -> Response:
            view = _view_or_refusal(arena_id, query.get("minVersion"))
            if isinstance(view, Response):
                return view
            return _versioned(build(self, query, view), view["version"])

        documented = blp.alt_response(503, **_BEHIND)(serve)
        documented = blp.alt_response(404, description="No such arena in the read model (yet)")(
            documented
        )
        documented = blp.response(200, response_schema, headers=_VERSION_HEADER_DOC)(documented)
        checked: Callable[..., Response] = blp.arguments(query_schema(), location="query")(
            documented
        )
        return checked

    return decorate


@blp.route("/<uuid:arena_id>")
class ArenaById(MethodView):
    @_single_arena_query(ReadQuerySchema, ArenaViewSchema)
    def get(self, _query: dict[str, Any], view: View) -> dict[str, Any]:
        """One arena's view."""
        return view


@blp.route("/<uuid:arena_id>/players")
class ArenaPlayers(MethodView):
    @_single_arena_query(ReadQuerySchema, ArenaPlayersSchema)
    def get(self, _query: dict[str, Any], view: View) -> dict[str, Any]:
        """The players of an arena, with their roles."""
        return {"arenaId": view["id"], "version": view["version"], "players": view["players"]}


@blp.route("/<uuid:arena_id>/events")
class ArenaFeed(MethodView):
    @_single_arena_query(FeedQuerySchema, ArenaFeedSchema)
    def get(self, query: dict[str, Any], view: View) -> dict[str, Any]:
        """The arena's most recent events, newest first (a bounded feed)."""
        events = _views().feed(view["id"], query["limit"])
        return {"arenaId": view["id"], "version": view["version"], "events": events}


@blp.route("/<uuid:arena_id>/board")
class ArenaBoard(MethodView):
    @_single_arena_query(ReadQuerySchema, BoardSchema)
    def get(self, _query: dict[str, Any], view: View) -> dict[str, Any]:
        """The board at the latest tick the read model has: organisms, nutrients, antibiotics."""
        views = _views()
        board = read_board(views.redis, views.keys(), view["id"])
        if board is None:  # no tick yet: the dish as the first tick will find it
            config = view["config"]
            board = Board.empty(config["width"], config["height"], config["temperature"]["value"])
        return board_body(board, view)
