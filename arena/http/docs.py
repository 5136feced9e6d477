"""OpenAPI documentation shared by every command route."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask_smorest import Api, Blueprint

from arena.http.problems import PROBLEM_MEDIA_TYPE
from arena.http.rate_limits import REFUSALS, Limited, mark
from arena.http.schemas import ACTION_PAYLOAD_SCHEMAS, ProblemSchema

View = TypeVar("View", bound=Callable[..., Any])

BEARER_SCHEME = "bearerAuth"

_IDEMPOTENCY_KEY_PARAMETER = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": False,
    # Printable Latin-1 (what str.isprintable, the server's check, accepts in a header).
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": 255,
        "pattern": r"^[\x20-\x7e\xa1-\xac\xae-\xff]+$",
    },
    "description": "Send the same key to retry safely: the first reply is replayed, nothing is "
    "written twice. The same key with a different request is refused with 422.",
}

_COMMAND_ERRORS = {
    400: "Malformed JSON",
    404: "Unknown arena or player",
    409: "Illegal transition, or a conflict (e.g. the arena kept changing concurrently)",
    413: "Body larger than the configured limit",
    415: "Body is not application/json",
    422: "A field failed validation (each one named), or the Idempotency-Key was reused",
}
_AUTH_ERRORS = {401: "Missing or invalid bearer token", 403: "Valid token, not allowed"}
_RETRY_AFTER_HEADER = {
    "Retry-After": {
        "description": "Seconds until this address may try again",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
}


def register_components(api: Api) -> None:
    """Bearer auth, and each action type's payload (the action body's `payload` is one of them)."""
    api.spec.components.security_scheme(BEARER_SCHEME, {"type": "http", "scheme": "bearer"})
    for action_type, schema in ACTION_PAYLOAD_SCHEMAS.items():
        api.spec.components.schema(_payload_component(action_type), schema=schema)


def _payload_component(action_type: str) -> str:
    return "".join(word.title() for word in action_type.split("_")) + "Payload"


def command_doc(
    blp: Blueprint, *, authenticated: bool = True, limited: Limited | None = None
) -> Callable[[View], View]:
    """Document the Idempotency-Key header, bearer auth and the problem+json error replies, and
    put the route under its rate limits (`limited`, and the failed-authentication one if it
    needs a token), so that the spec names the 429 of exactly the routes that answer it."""
    errors = _COMMAND_ERRORS | (_AUTH_ERRORS if authenticated else {})
    limits: tuple[Limited, ...] = (limited,) if limited else ()
    limits += (Limited.FAILED_AUTH,) if authenticated else ()

    def decorate(view: View) -> View:
        for status, description in sorted(errors.items()):
            view = blp.alt_response(
                status,
                schema=ProblemSchema,
                content_type=PROBLEM_MEDIA_TYPE,
                description=description,
            )(view)
        if limits:
            view = blp.alt_response(
                429,
                schema=ProblemSchema,
                content_type=PROBLEM_MEDIA_TYPE,
                description=" ".join(REFUSALS[limit] for limit in limits),
                headers=_RETRY_AFTER_HEADER,
            )(view)
        extra: dict[str, Any] = {"parameters": [_IDEMPOTENCY_KEY_PARAMETER]}
        if authenticated:
            extra["security"] = [{BEARER_SCHEME: []}]
        documented: View = blp.doc(**extra)(view)
        return mark(documented, limits)

    return decorate
