"""OpenAPI documentation shared by every command route."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask_smorest import Api, Blueprint

from arena.http.problems import PROBLEM_MEDIA_TYPE
from arena.http.rate_limits import REFUSALS, Limited, mark
from arena.http.schemas import ACTION_PAYLOAD_SCHEMAS, ProblemSchema
from arena.services.idempotency import KEY_ALPHABET, MAX_KEY_LENGTH, MIN_KEY_LENGTH

View = TypeVar("View", bound=Callable[..., Any])

BEARER_SCHEME = "bearerAuth"

_IDEMPOTENCY_KEY_PARAMETER = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": False,
    "schema": {
        "type": "string",
        "minLength": MIN_KEY_LENGTH,
        "maxLength": MAX_KEY_LENGTH,
        "pattern": f"^[{KEY_ALPHABET}]+$",
    },
    "description": "A random secret of the client's, new for each command: a UUID v4, or "
    f"{MIN_KEY_LENGTH} or more random base64url characters (about 128 bits). Send the same key "
    "with the same request to retry safely: the first reply is replayed (`Idempotent-Replayed: "
    "true`), nothing is written twice. Keys are scoped to the bearer token sent with them, so "
    "other tokens' keys never replay to nor block yours. Without a token (create, join) the key "
    "alone finds the reply, which holds your new token: keep the key as secret as the token. "
    "The same key with a different request in the same scope is refused with 422, and so is a "
    "key too short to be secret or with other characters (the error names this header).",
}

_COMMAND_ERRORS = {
    400: "Malformed JSON",
    404: "Unknown arena or player",
    409: "Illegal transition, or a conflict (e.g. the arena kept changing concurrently)",
    413: "Body larger than the configured limit",
    415: "Body is not application/json",
    422: "A field or the Idempotency-Key failed validation (each one named), or the key was "
    "reused with another request",
}
_AUTH_ERRORS = {401: "Missing or invalid bearer token", 403: "Valid token, not allowed"}
RETRY_AFTER_HEADER = {
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
                headers=RETRY_AFTER_HEADER,
            )(view)
        extra: dict[str, Any] = {"parameters": [_IDEMPOTENCY_KEY_PARAMETER]}
        if authenticated:
            extra["security"] = [{BEARER_SCHEME: []}]
        documented: View = blp.doc(**extra)(view)
        return mark(documented, limits)

    return decorate
