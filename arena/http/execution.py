"""Glue between HTTP and the command bus: credentials, Idempotency-Key, transaction, reply."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import TypeVar

from flask import Response, jsonify, request

from arena.bootstrap import components
from arena.domain.errors import Unauthenticated, ValidationFailed
from arena.domain.model import NewPlayer, hash_token
from arena.services.commands import Command
from arena.services.idempotency import (
    KEY_ALPHABET,
    MAX_KEY_LENGTH,
    MIN_KEY_LENGTH,
    IdempotencyKey,
    Reply,
)
from arena.services.results import Result
from arena.services.unit_of_work import Provenance

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
CORRELATION_HEADER = "X-Correlation-ID"
R = TypeVar("R", bound=Result)
_KEY = re.compile(f"[{KEY_ALPHABET}]{{{MIN_KEY_LENGTH},{MAX_KEY_LENGTH}}}")


def bearer_token_hash() -> str:
    """The hash of the request's bearer token; 401 when there is none."""
    token_hash = _credential()
    if not token_hash:
        raise Unauthenticated("Send the player's token as 'Authorization: Bearer <token>'.")
    return token_hash


def _credential() -> str:
    """The hash of the request's bearer token, or "" when it has none."""
    authorization = request.authorization
    if authorization is None or authorization.type != "bearer" or not authorization.token:
        return ""
    return hash_token(authorization.token)


def credentials(newcomer: NewPlayer) -> dict[str, object]:
    """The new player's credentials: the one time its token is ever shown."""
    player = newcomer.player
    return {"player": {"id": player.id, "token": newcomer.token, "role": player.role.value}}


def run(command: Command, render: Callable[[R], Reply]) -> Response:
    """Execute `command` in one transaction and answer with `render`'s reply (or its replay).

    All events of one request share its causation id; clients may pass a correlation id.
    """
    reply = components().bus.execute(
        command,
        render,
        provenance=Provenance.new(request.headers.get(CORRELATION_HEADER, "")[:64] or None),
        idempotency_key=_idempotency_key(),
    )
    response = jsonify(reply.body)
    response.status_code = reply.status
    if reply.replayed:
        response.headers[REPLAYED_HEADER] = "true"
    return response


def _idempotency_key() -> IdempotencyKey | None:
    """The request's key, scoped to its bearer token (if any); refuses one anybody could guess."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    if _KEY.fullmatch(key) is None:
        raise ValidationFailed(
            {
                IDEMPOTENCY_HEADER: f"must be a random secret: a UUID, or {MIN_KEY_LENGTH} to "
                f"{MAX_KEY_LENGTH} random characters of A-Z, a-z, 0-9, '-' and '_'"
            }
        )
    return IdempotencyKey(_credential(), key, _fingerprint())


def _fingerprint() -> str:
    """Same method, path and JSON body (key order aside) → same fingerprint. (Credentials are
    not in it: they scope the key.)"""
    body = request.get_json(silent=True)
    canonical_body = (
        json.dumps(body, sort_keys=True) if body is not None else request.get_data(as_text=True)
    )
    material = json.dumps([request.method, request.path, canonical_body])
    return hashlib.sha256(material.encode()).hexdigest()
