"""Glue between HTTP and the command bus: credentials, Idempotency-Key, transaction, reply."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from datetime import timedelta

import psycopg
from flask import Response, current_app, jsonify, request

from arena.domain.errors import Unauthenticated, ValidationFailed
from arena.domain.model import hash_token
from arena.extensions import db
from arena.persistence.connections import pooled_connection
from arena.persistence.idempotency import MAX_KEY_LENGTH, IdempotencyKey, Reply
from arena.persistence.unit_of_work import UnitOfWork
from arena.services.bus import CommandBus
from arena.services.commands import Command
from arena.services.handlers import Outcome

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"


def bearer_token_hash() -> str:
    """The hash of the request's bearer token; 401 when there is none."""
    authorization = request.authorization
    if authorization is None or authorization.type != "bearer" or not authorization.token:
        raise Unauthenticated("Send the player's token as 'Authorization: Bearer <token>'.")
    return hash_token(authorization.token)


def credentials(outcome: Outcome) -> dict[str, object]:
    """The new player's credentials: the one time its token is ever shown."""
    if outcome.new_player is None:
        raise ValueError("this command admitted no player")
    player = outcome.new_player.player
    return {
        "player": {"id": player.id, "token": outcome.new_player.token, "role": player.role.value}
    }


def run(command: Command, render: Callable[[Outcome], Reply]) -> Response:
    """Execute `command` in one transaction and answer with `render`'s reply (or its replay)."""
    idempotency_key = _idempotency_key()
    with pooled_connection(db.engine) as connection:
        bus = CommandBus(_unit_of_work_factory(connection))
        reply = bus.execute(command, render, idempotency_key)
    response = jsonify(reply.body)
    response.status_code = reply.status
    if reply.replayed:
        response.headers[REPLAYED_HEADER] = "true"
    return response


def _unit_of_work_factory(connection: psycopg.Connection) -> Callable[[], UnitOfWork]:
    """All events of one request share its causation id; clients may pass a correlation id."""
    request_id = str(uuid.uuid4())
    correlation_id = request.headers.get("X-Correlation-ID", "")[:64] or request_id
    settings = current_app.extensions["settings"]
    retention = timedelta(seconds=settings.idempotency_retention_seconds)
    return lambda: UnitOfWork(
        connection,
        correlation_id=correlation_id,
        causation_id=request_id,
        idempotency_retention=retention,
        nudge_relay=settings.outbox_nudge,
    )


def _idempotency_key() -> IdempotencyKey | None:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isprintable():
        raise ValidationFailed(
            {IDEMPOTENCY_HEADER: f"must be 1 to {MAX_KEY_LENGTH} printable characters"}
        )
    return IdempotencyKey(key, _fingerprint())


def _fingerprint() -> str:
    """Same method, path, credentials and JSON body (key order aside) → same fingerprint."""
    body = request.get_json(silent=True)
    canonical_body = (
        json.dumps(body, sort_keys=True) if body is not None else request.get_data(as_text=True)
    )
    authorization = request.headers.get("Authorization", "")
    material = json.dumps([request.method, request.path, canonical_body, hash_token(authorization)])
    return hashlib.sha256(material.encode()).hexdigest()
