"""Idempotency keys: a retried command replays its first reply instead of running twice.

A record is written in the same transaction as the command's changes, so "the command happened"
and "its reply is remembered" commit together. Replies can hold bearer tokens, which must never be
stored usable: the reply is sealed with a SHAKE-256 keystream derived from the client's
Idempotency-Key and a random salt, and the key itself is stored only as a SHA-256 hash. Only a
client presenting the same key can unseal the reply.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from arena.persistence.errors import ConcurrentUpdate
from arena.persistence.tables import IdempotencyKeyRow

KEYS = IdempotencyKeyRow.__table__
MAX_KEY_LENGTH = 255
_REPLACED_ON_EXPIRY = (
    "fingerprint",
    "status_code",
    "salt",
    "sealed_body",
    "created_at",
    "expires_at",
)


class IdempotencyKeyReused(Exception):
    """The key was used before for a different request."""


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    """The client's key and the fingerprint of the request it was sent with."""

    key: str
    fingerprint: str

    @property
    def key_hash(self) -> str:
        return hashlib.sha256(self.key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: dict[str, Any]
    replayed: bool = False


class IdempotencyStore:
    def __init__(self, session: Session, retention: timedelta) -> None:
        self._session = session
        self._retention = retention

    def find(self, key: IdempotencyKey) -> Reply | None:
        """The remembered reply for this key, if any; raises if the key meant another request."""
        row = self._session.execute(
            select(KEYS).where(KEYS.c.key_hash == key.key_hash, KEYS.c.expires_at > _now())
        ).one_or_none()
        if row is None:
            return None
        if row.fingerprint != key.fingerprint:
            raise IdempotencyKeyReused("This Idempotency-Key was used for a different request.")
        body = json.loads(
            _xor(row.sealed_body, _keystream(key.key, row.salt, len(row.sealed_body)))
        )
        return Reply(row.status_code, body, replayed=True)

    def remember(self, key: IdempotencyKey, reply: Reply) -> None:
        """Store the reply; a concurrent request that got there first makes this command retry."""
        plain = json.dumps(reply.body, separators=(",", ":")).encode()
        salt = secrets.token_bytes(16)
        now = _now()
        statement = insert(KEYS).values(
            key_hash=key.key_hash,
            fingerprint=key.fingerprint,
            status_code=reply.status,
            salt=salt,
            sealed_body=_xor(plain, _keystream(key.key, salt, len(plain))),
            created_at=now,
            expires_at=now + self._retention,
        )
        # An expired record with the same key may be replaced; a live one may not.
        statement = statement.on_conflict_do_update(
            index_elements=[KEYS.c.key_hash],
            set_={name: statement.excluded[name] for name in _REPLACED_ON_EXPIRY},
            where=KEYS.c.expires_at <= now,
        )
        stored = self._session.execute(statement.returning(KEYS.c.key_hash)).first()
        if stored is None:
            raise ConcurrentUpdate("another request with this Idempotency-Key committed first")

    def purge_expired(self, batch_size: int) -> int:
        """Delete up to `batch_size` expired records; small batches keep locks short."""
        expired = select(KEYS.c.key_hash).where(KEYS.c.expires_at <= _now()).limit(batch_size)
        result = self._session.execute(delete(KEYS).where(KEYS.c.key_hash.in_(expired)))
        self._session.commit()
        return result.rowcount


def _now() -> datetime:
    return datetime.now(UTC)


def _keystream(key: str, salt: bytes, length: int) -> bytes:
    return hashlib.shake_256(salt + key.encode()).digest(length)


def _xor(data: bytes, stream: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(data, stream, strict=True))
