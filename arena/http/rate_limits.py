"""Rate limits per client address: on the commands anyone may send without a token (creating and
joining an arena) and on failing to authenticate.

A route is put under its limits where it is documented (`command_doc` marks it, see `mark`), and
each app gets a limiter of its own (Flask-Limiter keeps its storage on the instance, and tests
build apps with different limits side by side). Creating and joining are checked before the
command runs. The failed-authentication limit is different: it is consulted only by a command
whose token failed (401), never before a command runs, so a request whose token verifies is
never refused by it, whatever other clients at its address (a shared NAT, a proxy) sent. Past
the limit, such a failure is answered 429 with Retry-After instead of 401. It does not make
guessing slower, and cannot while a valid token always passes (a guess that verifies is
answered as one): the tokens' 256 random bits are what make guessing hopeless; the limit
tells a client that keeps failing to back off, and shows it in the 429s of
`arena_http_request_seconds`. A 403 (a valid token, not allowed) does not count: it guesses
nothing.

The counters live in Redis (the read model's unless RATE_LIMIT_STORAGE_URL names another) under
the read model's prefix, so every API process shares them and test runs on one Redis do not. When
that Redis is away, limits fail open: each process counts in its own memory (Flask-Limiter says
so once, in a warning, and again when the storage is back), and commands, which need only
PostgreSQL, go on.

The moving window: an address gets at most N requests in any period of the window's length (a
fixed window lets 2N through across a boundary), and Retry-After is exactly when its oldest
counted request leaves the window. It keeps one entry per counted request, which at limits of
tens a minute costs nothing worth saving.
"""

from __future__ import annotations

import enum
import functools
import math
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from flask import Flask, Response, request
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address

from arena.bootstrap import REDIS_TIMEOUT_SECONDS
from arena.domain.errors import Unauthenticated
from arena.http.problems import problem
from arena.readmodel.keys import rate_limits_prefix
from arena.settings import Settings

View = TypeVar("View", bound=Callable[..., Any])

STRATEGY = "moving-window"
_MARK = "_arena_rate_limits"  # on a view method: the limits its route is under


class Limited(enum.StrEnum):
    """What a route's requests count against (each is its own counter per address)."""

    CREATE = "create"
    JOIN = "join"
    FAILED_AUTH = "failed-auth"


# Why a request past each limit is refused: the 429's detail, and its description in the spec.
REFUSALS = {
    Limited.CREATE: "Too many arenas created from this address.",
    Limited.JOIN: "Too many joins from this address.",
    Limited.FAILED_AUTH: "Too many missing or invalid tokens from this address: its failures are "
    "answered 429 for now (a valid token is still accepted).",
}


def mark(view: View, limits: tuple[Limited, ...]) -> View:
    """Put the route whose method `view` is under `limits` (applied by `limit_rates`)."""
    setattr(view, _MARK, limits)
    return view


def limit_rates(app: Flask, settings: Settings) -> None:
    """Build `app`'s limiter and put each marked route under its limits; call it once every route
    is registered."""
    limiter = Limiter(
        get_remote_address,
        storage_uri=settings.rate_limit_storage_url or settings.redis_url,
        storage_options={
            "key_prefix": rate_limits_prefix(settings.read_model_prefix),
            "socket_timeout": REDIS_TIMEOUT_SECONDS,
            "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
        },
        strategy=STRATEGY,
        swallow_errors=True,
        in_memory_fallback_enabled=True,
    )
    limiter.init_app(app)
    values = {
        Limited.CREATE: settings.rate_limit_create,
        Limited.JOIN: settings.rate_limit_join,
    }

    # Called only once a token failed: counts the failure, and past the limit raises
    # RateLimitExceeded (answered 429 by `refuse`) in place of the 401.
    @limiter.shared_limit(
        settings.rate_limit_failed_auth,
        scope=Limited.FAILED_AUTH.value,
        error_message=REFUSALS[Limited.FAILED_AUTH],
    )
    def count_failure() -> None:
        pass

    for endpoint, view in list(app.view_functions.items()):
        wrapped: Callable[..., Any] = view
        counted: set[str] = set()
        for method, limited in _marked(view):
            if limited is Limited.FAILED_AUTH:
                counted.add(method)
                continue
            wrapped = limiter.shared_limit(
                values[limited],
                scope=limited.value,
                methods=[method],
                error_message=REFUSALS[limited],
            )(wrapped)
        if counted:
            wrapped = _failures_counted(wrapped, frozenset(counted), count_failure)
        app.view_functions[endpoint] = wrapped

    def refuse(error: RateLimitExceeded) -> Response:
        breached = limiter.current_limit
        assert breached is not None  # the limiter sets it before it raises
        seconds = max(1, math.ceil(breached.window.reset_time - time.time()))
        response = problem(429, f"{error.description} Retry in {seconds} s.")
        response.headers["Retry-After"] = str(seconds)
        return response

    app.register_error_handler(RateLimitExceeded, refuse)


def _marked(view: Callable[..., Any]) -> Iterator[tuple[str, Limited]]:
    """(HTTP method, limit) for each limit a method of a class-based view is under."""
    view_class = getattr(view, "view_class", None)
    for method in sorted(getattr(view_class, "methods", None) or ()):
        for limited in getattr(getattr(view_class, method.lower()), _MARK, ()):
            yield method, limited


def _failures_counted(
    view: Callable[..., Any], methods: frozenset[str], count_failure: Callable[[], None]
) -> Callable[..., Any]:
    """`view`, whose failed authentications (on `methods`) count against the limit."""

    @functools.wraps(view)
    def counted(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except Unauthenticated:
            if request.method in methods:
                count_failure()
            raise

    return counted
