"""The Celery app, found here by `celery -A tasks worker|beat|flower`.

It is built by the Flask app factory (Flask's `celery_init_app` pattern), so tasks run inside an
application context with the same settings, database and Redis clients as the API. It is built on
first access only: importing a task module (as the API and `flask consume` do) must not build a
second Flask app and make its Celery app the default.
"""

from __future__ import annotations

import functools

from celery import Celery

# Imported now, while `celery -A tasks` still has the working directory on sys.path.
from arena import create_app


@functools.cache
def _celery_app() -> Celery:
    return create_app().extensions["celery"]


def __getattr__(name: str) -> Celery:
    if name in {"app", "celery"}:
        return _celery_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
