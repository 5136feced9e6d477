"""Every error leaves as RFC 7807 `application/problem+json`, naming offending fields."""

from __future__ import annotations

import logging
from typing import Any, NoReturn

import psycopg
from flask import Flask, Response, abort, current_app, jsonify, request
from redis.exceptions import RedisError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException, InternalServerError

from arena.domain.errors import (
    Conflict,
    DomainError,
    IllegalTransition,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    ValidationFailed,
)
from arena.services.idempotency import IdempotencyKeyReused

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
SCHEMA_LEVEL = "_schema"  # marshmallow's key for errors about a whole object, not one field

# status → (stable type slug, title)
_BY_STATUS: dict[int, tuple[str, str]] = {
    400: ("malformed-request", "Malformed request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    409: ("conflict", "Conflict"),
    413: ("payload-too-large", "Payload too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("validation-failed", "Validation failed"),
    429: ("too-many-requests", "Too many requests"),
    500: ("internal-error", "Internal server error"),
    503: ("service-unavailable", "Service unavailable"),
}
RETRY_AFTER_SECONDS = 2  # when a backing service is away, or a busy route refuses

_DOMAIN_STATUS: dict[type[DomainError], int] = {
    ValidationFailed: 422,
    Unauthenticated: 401,
    NotFound: 404,
    PermissionDenied: 403,
    IllegalTransition: 409,
    Conflict: 409,
}


def problem(
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    errors: list[dict[str, str]] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    default_slug, title = _BY_STATUS.get(status, ("http-error", "HTTP error"))
    body: dict[str, Any] = {
        "type": f"/problems/{slug or default_slug}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.path,
    }
    if errors:
        body["errors"] = errors
    body.update(extra or {})
    response = jsonify(body)
    response.status_code = status
    response.mimetype = PROBLEM_MEDIA_TYPE
    return response


def refuse(status: int, detail: str, slug: str, retry_after_seconds: int) -> NoReturn:
    """Answer the problem at once, saying when to try again (for refusals that are not errors of
    the request: too busy, too many at once)."""
    refused = problem(status, detail, slug=slug)
    refused.headers["Retry-After"] = str(retry_after_seconds)
    abort(refused)


def field_errors(messages: Any, path: str = "") -> list[dict[str, str]]:
    """Flatten marshmallow's nested messages into [{field: "config.width", message: ...}]."""
    if isinstance(messages, dict):
        return [
            error
            for name, nested in messages.items()
            for error in field_errors(nested, _join(path, str(name)))
        ]
    if isinstance(messages, list) and all(isinstance(item, str) for item in messages):
        return [{"field": path or "body", "message": message} for message in messages]
    if isinstance(messages, list):
        return [error for item in messages for error in field_errors(item, path)]
    return [{"field": path or "body", "message": str(messages)}]


def _join(path: str, name: str) -> str:
    if name == SCHEMA_LEVEL:
        return path
    return f"{path}.{name}" if path else name


def _describe(errors: list[dict[str, str]]) -> str:
    return "Invalid field(s): " + ", ".join(sorted({error["field"] for error in errors}))


def _handle_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    data = getattr(error, "data", {})
    messages = data.get("messages")
    if status == 422 and messages:
        # webargs nests messages under the request location ("json", "query"): drop that level.
        errors = [error for nested in messages.values() for error in field_errors(nested)]
        return problem(422, _describe(errors), errors=errors)
    if status == 400 and messages:
        return problem(400, "The request body is not valid JSON.", slug="malformed-json")
    return problem(status, data.get("message") or error.description or "")


def _handle_domain_error(error: DomainError) -> Response:
    status = next(code for kind, code in _DOMAIN_STATUS.items() if isinstance(error, kind))
    if isinstance(error, ValidationFailed):
        errors = [
            {"field": name, "message": message} for name, message in error.field_errors.items()
        ]
        return problem(422, _describe(errors), errors=errors)
    slug = "illegal-transition" if isinstance(error, IllegalTransition) else None
    response = problem(status, str(error), slug=slug)
    if isinstance(error, Unauthenticated):
        response.headers["WWW-Authenticate"] = 'Bearer realm="arena"'
    return response


def _handle_reused_key(error: IdempotencyKeyReused) -> Response:
    return problem(422, str(error), slug="idempotency-key-reused")


def _refuse_unacceptable_body() -> Response | None:
    """Check every body before any route runs, whether or not the route reads it.

    413 over the configured size, 415 when not JSON, 400 when JSON that does not parse.
    """
    if request.method not in {"POST", "PUT", "PATCH", "DELETE"}:
        return None
    length = request.content_length
    if length and length > (current_app.config["MAX_CONTENT_LENGTH"] or length):
        return problem(
            413, f"The body may be at most {current_app.config['MAX_CONTENT_LENGTH']} bytes."
        )
    has_body = bool(length) or "chunked" in request.headers.get("Transfer-Encoding", "")
    if not has_body:
        return None
    if not request.is_json:
        return problem(415, f"Send the body as application/json, not {request.mimetype or '?'}.")
    if request.get_json(silent=True) is None and request.get_data():
        return problem(400, "The request body is not valid JSON.", slug="malformed-json")
    return None


def _handle_backend_down(error: Exception) -> Response:
    log.warning("backend unavailable on %s %s: %r", request.method, request.path, error)
    response = problem(503, "A backing service is unavailable; nothing was changed. Retry later.")
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def _handle_unexpected(error: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.path, exc_info=error)
    return problem(500, InternalServerError.description)


def register(app: Flask) -> None:
    """Register after flask-smorest, whose own HTTPException handler this replaces."""
    app.register_error_handler(HTTPException, _handle_http_exception)
    app.register_error_handler(DomainError, _handle_domain_error)
    app.register_error_handler(IdempotencyKeyReused, _handle_reused_key)
    app.before_request(_refuse_unacceptable_body)
    app.register_error_handler(RedisError, _handle_backend_down)
    app.register_error_handler(OperationalError, _handle_backend_down)  # through SQLAlchemy
    app.register_error_handler(psycopg.OperationalError, _handle_backend_down)  # commands
    app.register_error_handler(Exception, _handle_unexpected)
