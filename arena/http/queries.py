"""Query routes: they read the Redis read model only, never PostgreSQL.

Single-arena answers carry the view's version in `X-Read-Model-Version` (and the body). With
`?minVersion=N` — the version a command answered — they wait a few seconds for the view to catch
up, so a client can read its own writes; if it does not, they answer 503 with the version reached.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, NoReturn

from flask import Response, jsonify
from flask import abort as flask_abort
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import Schema

from arena.bootstrap import components
from arena.domain.errors import ValidationFailed
from arena.domain.model import MAX_TICK
from arena.http.dish_bodies import (
    ARRAY,
    board_json,
    genome_body,
    json_pieces,
    leaderboard_body,
    organism_body,
    stats_body,
)
from arena.http.problems import problem
from arena.http.schemas import (
    HISTORY_FULL_MAX_CELLS,
    ArenaFeedSchema,
    ArenaPageSchema,
    ArenaPlayersSchema,
    ArenaViewSchema,
    BoardSchema,
    FeedQuerySchema,
    GenomeSchema,
    HistoryQuerySchema,
    HistorySchema,
    LeaderboardQuerySchema,
    LeaderboardSchema,
    OrganismSchema,
    PageQuerySchema,
    ProblemSchema,
    ReadQuerySchema,
    StatsQuerySchema,
    StatsSchema,
)
from arena.readmodel.boards import (
    board_at,
    empty_board,
    kept,
    read_board,
    recent_stats,
    recorded_ticks,
    ticks_between,
)
from arena.readmodel.store import ArenaViews
from arena.readmodel.view import ViewJson
from arena.simulation import delta
from arena.simulation.board import MAX_ORGANISM_ID, Board

blp = Blueprint(
    "arena_queries", __name__, url_prefix="/api/v1/arenas", description="Arena queries (Redis)"
)

VERSION_HEADER = "X-Read-Model-Version"
RETRY_AFTER_SECONDS = "1"

Body = dict[str, Any] | Iterator[str]  # an object, or JSON text in pieces (sent as it is made)


def _views() -> ArenaViews:
    return components().views


def _view_or_refusal(arena_id: uuid.UUID, min_version: int | None) -> ViewJson | Response:
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


def _versioned(body: Body, version: int) -> Response:
    streamed = not isinstance(body, dict)
    response = Response(body, mimetype="application/json") if streamed else jsonify(body)
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
    query_schema: type[Schema],
    response_schema: type[Schema],
    path_maxima: dict[str, int] | None = None,
) -> Callable[[Callable[..., Body]], Callable[..., Response]]:
    """Document and serve a query about one arena: 404, minVersion waiting, the version header.

    The decorated method gets the query arguments and the arena's view, and returns the body.
    `path_maxima`: the most each integer path parameter may be, in the spec, and a larger one
    a 422 naming it (the routes take any digits), before the arena is looked up.
    """
    maxima = path_maxima or {}

    def decorate(build: Callable[..., Body]) -> Callable[..., Response]:
        @functools.wraps(build)
        def serve(
            self: MethodView, query: dict[str, Any], arena_id: uuid.UUID, **path: Any
        ) -> Response:
            too_large = {name: most for name, most in maxima.items() if path[name] > most}
            if too_large:
                raise ValidationFailed(
                    {name: f"must be at most {most}" for name, most in too_large.items()}
                )
            view = _view_or_refusal(arena_id, query.get("minVersion"))
            if isinstance(view, Response):
                return view
            return _versioned(build(self, query, view, **path), view["version"])

        documented = blp.alt_response(503, **_BEHIND)(serve)
        documented = blp.alt_response(404, description="No such arena in the read model (yet)")(
            documented
        )
        documented = blp.response(200, response_schema, headers=_VERSION_HEADER_DOC)(documented)
        if maxima:
            bounded = [_path_parameter(name, most) for name, most in maxima.items()]
            documented = blp.doc(parameters=bounded)(documented)
        checked: Callable[..., Response] = blp.arguments(query_schema(), location="query")(
            documented
        )
        return checked

    return decorate


def _path_parameter(name: str, most: int) -> dict[str, Any]:
    return {
        "in": "path",
        "name": name,
        "required": True,
        "schema": {"type": "integer", "minimum": 0, "maximum": most},
        "description": f"At most {most}: a larger one is a 422 naming it.",
    }


@blp.route("/<uuid:arena_id>")
class ArenaById(MethodView):
    @_single_arena_query(ReadQuerySchema, ArenaViewSchema)
    def get(self, _query: dict[str, Any], view: ViewJson) -> dict[str, Any]:
        """One arena's view."""
        return view


@blp.route("/<uuid:arena_id>/players")
class ArenaPlayers(MethodView):
    @_single_arena_query(ReadQuerySchema, ArenaPlayersSchema)
    def get(self, _query: dict[str, Any], view: ViewJson) -> dict[str, Any]:
        """The players of an arena, with their roles."""
        return {"arenaId": view["id"], "version": view["version"], "players": view["players"]}


@blp.route("/<uuid:arena_id>/events")
class ArenaFeed(MethodView):
    @_single_arena_query(FeedQuerySchema, ArenaFeedSchema)
    def get(self, query: dict[str, Any], view: ViewJson) -> dict[str, Any]:
        """The arena's most recent events, newest first (a bounded feed)."""
        events = _views().feed(view["id"], query["limit"])
        return {"arenaId": view["id"], "version": view["version"], "events": events}


# --- the dish (the board and what is read from it) ----------------------------------------------


def _board_now(view: ViewJson) -> Board:
    views = _views()
    return read_board(views.redis, views.keys(), view["id"], empty_board(view))


def _not_kept(view: ViewJson, first: int, last: int, asked: str) -> NoReturn:
    current = _board_now(view)
    views = _views()
    held = kept(views.redis, views.keys(), view["id"], current)
    flask_abort(
        problem(
            404,
            f"{asked} is not in arena {view['id']}'s history, which holds ticks "
            f"{held.first} to {held.last}.",
            slug="tick-not-kept",
            extra={"firstTick": held.first, "lastTick": held.last, "asked": [first, last]},
        )
    )


def _with_view(view: ViewJson, body: dict[str, Any]) -> dict[str, Any]:
    return {"arenaId": view["id"], "version": view["version"]} | body


@blp.route("/<uuid:arena_id>/board")
class ArenaBoard(MethodView):
    @_single_arena_query(ReadQuerySchema, BoardSchema)
    def get(self, _query: dict[str, Any], view: ViewJson) -> Iterator[str]:
        """The board at the latest tick the read model has: organisms, nutrients, antibiotics."""
        return board_json(_board_now(view), view)


@blp.route("/<uuid:arena_id>/snapshots/<int:tick>")
class ArenaBoardAt(MethodView):
    @_single_arena_query(ReadQuerySchema, BoardSchema, {"tick": MAX_TICK})
    def get(self, _query: dict[str, Any], view: ViewJson, tick: int) -> Iterator[str]:
        """The board at a tick still in the history, in the shape of /board."""
        views = _views()
        current = _board_now(view)
        board = board_at(views.redis, views.keys(), view["id"], tick, current, empty_board(view))
        if board is None:
            _not_kept(view, tick, tick, f"Tick {tick}")
        return board_json(board, view, stats=None)


@blp.route("/<uuid:arena_id>/history")
class ArenaHistory(MethodView):
    @_single_arena_query(HistoryQuerySchema, HistorySchema)
    def get(self, query: dict[str, Any], view: ViewJson) -> Iterator[str]:
        """Ticks fromTick … toTick: each tick's stats and delta (DELTA) or its board (FULL).

        Sent as it is read: DELTA passes each tick's record on as Redis holds it, a few ticks
        at a time; FULL builds one board at a time, and at most HISTORY_FULL_MAX_CELLS cells of
        boards a request.
        """
        first, last, mode = query["fromTick"], query["toTick"], query["mode"]
        widest = components().settings.history_max_range_ticks
        if last - first + 1 > widest:
            raise ValidationFailed({"toTick": f"at most {widest} ticks per request"})
        cells = view["config"]["width"] * view["config"]["height"]
        if mode == "FULL" and (last - first + 1) * cells > HISTORY_FULL_MAX_CELLS:
            boards = HISTORY_FULL_MAX_CELLS // cells
            raise ValidationFailed({"toTick": f"at most {boards} ticks of this board in FULL mode"})
        head = {"mode": mode, "fromTick": first, "toTick": last, "ticks": ARRAY}
        ticks = _deltas(view, first, last) if mode == "DELTA" else _boards(view, first, last)
        if ticks is None:
            _not_kept(view, first, last, f"Ticks {first} to {last}")
        return json_pieces(_with_view(view, head), ticks)


def _deltas(view: ViewJson, first: int, last: int) -> Iterator[tuple[str]] | None:
    views = _views()
    recorded = recorded_ticks(views.redis, views.keys(), view["id"], max(first, 1), last)
    if recorded is None:
        return None

    def each() -> Iterator[tuple[str]]:
        if first == 0:  # tick 0 has no delta: the empty dish
            yield (json.dumps({"tick": 0, "stats": None, "delta": None, "advancedAt": None}),)
        for raw in recorded:
            yield (raw.decode(),)

    return each()


def _boards(view: ViewJson, first: int, last: int) -> Iterator[Iterator[str]] | None:
    views = _views()
    keys, arena_id = views.keys(), view["id"]
    board = board_at(views.redis, keys, arena_id, first, _board_now(view), empty_board(view))
    later = ticks_between(views.redis, keys, arena_id, first + 1, last)
    if board is None or later is None:
        return None

    def each(board: Board) -> Iterator[Iterator[str]]:
        yield board_json(board, view)
        for entry in later:
            board = delta.apply(board, delta.decode(entry["delta"]))
            yield board_json(board, view, stats=entry["stats"])

    return each(board)


@blp.route("/<uuid:arena_id>/leaderboard")
class ArenaLeaderboard(MethodView):
    @_single_arena_query(LeaderboardQuerySchema, LeaderboardSchema)
    def get(self, query: dict[str, Any], view: ViewJson) -> dict[str, Any]:
        """The fittest organisms now, and each player's organisms and biomass."""
        return _with_view(view, leaderboard_body(_board_now(view), view["players"], query["top"]))


@blp.route("/<uuid:arena_id>/stats")
class ArenaStats(MethodView):
    @_single_arena_query(StatsQuerySchema, StatsSchema)
    def get(self, query: dict[str, Any], view: ViewJson) -> dict[str, Any]:
        """Births, deaths and mutations per second over the last windowSeconds; top genomes."""
        views = _views()
        recent = recent_stats(views.redis, views.keys(), view["id"], views.history_ticks)
        body = stats_body(_board_now(view), recent, query["windowSeconds"], datetime.now(UTC))
        return _with_view(view, body)


@blp.route("/<uuid:arena_id>/organisms/<int:organism_id>")
class ArenaOrganism(MethodView):
    @_single_arena_query(ReadQuerySchema, OrganismSchema, {"organism_id": MAX_ORGANISM_ID})
    def get(self, _query: dict[str, Any], view: ViewJson, organism_id: int) -> dict[str, Any]:
        """One live organism: position, energy, fitness, genome and lineage."""
        found = organism_body(_board_now(view), organism_id)
        if found is None:
            flask_abort(problem(404, f"No live organism {organism_id} in arena {view['id']}."))
        return _with_view(view, found)


@blp.route("/<uuid:arena_id>/genomes/<string:signature>")
class ArenaGenome(MethodView):
    @_single_arena_query(ReadQuerySchema, GenomeSchema)
    def get(self, _query: dict[str, Any], view: ViewJson, signature: str) -> dict[str, Any]:
        """A genome's genes, and how many live organisms carry it."""
        found = genome_body(_board_now(view), signature)
        if found is None:
            flask_abort(
                problem(404, f"No live organism of arena {view['id']} has genome {signature}.")
            )
        return _with_view(view, found)
