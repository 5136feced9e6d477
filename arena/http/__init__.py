"""The HTTP adapter: command and query routes, health probes, problem+json errors, OpenAPI."""

from __future__ import annotations

import http
from typing import Any

from flask import Flask, Response, send_from_directory
from flask_smorest import Api
from flask_smorest.utils import prepare_response
from swagger_ui_bundle import swagger_ui_path

from arena.bootstrap import components
from arena.http import (
    command_routes,
    create_arena,
    health,
    pipeline_status,
    problems,
    prometheus,
    queries,
    rate_limits,
    streams,
    web,
)
from arena.http.docs import register_components
from arena.http.problems import PROBLEM_MEDIA_TYPE
from arena.http.schemas import ProblemSchema


class ArenaApi(Api):
    """flask-smorest documents every error response with our RFC 7807 schema."""

    ERROR_SCHEMA = ProblemSchema

    def _register_responses(self) -> None:
        """The error responses flask-smorest registers for every status, as problem+json (what
        problems.py answers), not the application/json it would document them as."""
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if not 100 <= status < 200 and status not in (204, 304):
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, PROBLEM_MEDIA_TYPE)
            self.spec.components.response(status.name, response, lazy=True)
        default = {"description": "Default error response", "schema": self.ERROR_SCHEMA}
        prepare_response(default, self.spec, PROBLEM_MEDIA_TYPE)
        self.spec.components.response(self.DEFAULT_ERROR_RESPONSE_NAME, default, lazy=True)


def init_http(app: Flask) -> None:
    app.config.update(
        API_TITLE="Petri Board Arena",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="api/v1/openapi.json",
        # The browsable page at /docs uses Swagger UI assets shipped in a Python package, so it
        # works without reaching any CDN.
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL="/docs/assets/",
    )
    app.add_url_rule("/docs/assets/<path:filename>", "swagger_ui_assets", _swagger_ui_asset)
    api = ArenaApi(app)
    register_components(api)
    api.register_blueprint(create_arena.blp)
    api.register_blueprint(queries.blp)
    api.register_blueprint(streams.blp)
    api.register_blueprint(command_routes.blp)
    api.register_blueprint(health.blp)
    api.register_blueprint(pipeline_status.blp)
    app.register_blueprint(web.blp)
    app.after_request(_no_sniffing)
    app.register_blueprint(prometheus.blp)
    prometheus.time_requests(app)
    problems.register(app)
    rate_limits.limit_rates(app, components(app).settings)


def _swagger_ui_asset(filename: str) -> Response:
    return send_from_directory(swagger_ui_path, filename)


def _no_sniffing(response: Response) -> Response:
    """Browsers take each reply as the type it says, never guess a script out of JSON."""
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
