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
from datetime import UTC, datetime, timedelta

import psycopg

from arena.services.idempotency import IdempotencyKey, IdempotencyKeyReused, Reply
from arena.services.unit_of_work import ConcurrentUpdate

_FIND = """
SELECT fingerprint, status_code, salt, sealed_body FROM idempotency_keys
 WHERE key_hash = %s AND expires_at > %s
"""
# An expired record with the same key may be replaced; a live one may not (no row comes back).
_REMEMBER = """
INSERT INTO idempotency_keys
       (key_hash, fingerprint, status_code, salt, sealed_body, created_at, expires_at)
VALUES (%s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT (key_hash) DO UPDATE
   SET fingerprint = excluded.fingerprint, status_code = excluded.status_code,
       salt = excluded.salt, sealed_body = excluded.sealed_body,
       created_at = excluded.created_at, expires_at = excluded.expires_at
 WHERE idempotency_keys.expires_at <= excluded.created_at
RETURNING key_hash
"""
# Small batches keep locks short.
_PURGE = """
DELETE FROM idempotency_keys WHERE key_hash IN (
    SELECT key_hash FROM idempotency_keys WHERE expires_at <= %s LIMIT %s
)
"""


class IdempotencyStore:
    """Replies remembered in PostgreSQL, in the command's own transaction."""

    def __init__(self, connection: psycopg.Connection, retention: timedelta) -> None:
        self._connection = connection
        self._retention = retention

    def find(self, key: IdempotencyKey) -> Reply | None:
        """The remembered reply for this key, if any; raises if the key meant another request."""
        row = self._connection.execute(_FIND, (key.key_hash, _now())).fetchone()
        if row is None:
            return None
        fingerprint, status_code, salt, sealed_body = row
        if fingerprint != key.fingerprint:
            raise IdempotencyKeyReused("This Idempotency-Key was used for a different request.")
        body = json.loads(_xor(sealed_body, _keystream(key.key, salt, len(sealed_body))))
        return Reply(status_code, body, replayed=True)

    def remember(self, key: IdempotencyKey, reply: Reply) -> None:
        """Store the reply; a concurrent request that got there first makes this command retry."""
        plain = json.dumps(reply.body, separators=(",", ":")).encode()
        salt = secrets.token_bytes(16)
        now = _now()
        sealed = _xor(plain, _keystream(key.key, salt, len(plain)))
        values = (key.key_hash, key.fingerprint, reply.status, salt, sealed, now)
        stored = self._connection.execute(_REMEMBER, (*values, now + self._retention)).fetchone()
        if stored is None:
            raise ConcurrentUpdate("another request with this Idempotency-Key committed first")

    def purge_expired(self, batch_size: int) -> int:
        """Delete and commit up to `batch_size` expired records."""
        purged = self._connection.execute(_PURGE, (_now(), batch_size)).rowcount
        self._connection.commit()
        return purged


def _now() -> datetime:
    return datetime.now(UTC)


def _keystream(key: str, salt: bytes, length: int) -> bytes:
    return hashlib.shake_256(salt + key.encode()).digest(length)


def _xor(data: bytes, stream: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(data, stream, strict=True))
