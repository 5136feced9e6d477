"""The HTTP adapter: command and query routes, health probes, problem+json errors, OpenAPI."""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api

from arena.http import arenas, health, problems
from arena.http.schemas import ProblemSchema


class ArenaApi(Api):
    """flask-smorest documents every error response with our RFC 7807 schema."""

    ERROR_SCHEMA = ProblemSchema


def init_http(app: Flask) -> None:
    app.config.update(
        API_TITLE="Petri Board Arena",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api/v1",
        OPENAPI_JSON_PATH="openapi.json",
    )
    api = ArenaApi(app)
    api.register_blueprint(arenas.blp)
    api.register_blueprint(health.blp)
    problems.register(app)
