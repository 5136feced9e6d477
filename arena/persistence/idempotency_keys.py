"""Idempotency keys: a retried command replays its first reply instead of running twice.

A record is written in the same transaction as the command's changes, so "the command happened"
and "its reply is remembered" commit together. Replies can hold bearer tokens, which must never be
stored usable nor handed to anyone but the client that asked. A key is named in the table only by
an HMAC, under a server secret (IDEMPOTENCY_SECRET), of its scope (the bearer token's hash, or
none) and the client's Idempotency-Key; the reply is sealed with AES-256-GCM under another HMAC of
the same two, bound to its row (the name and the request's fingerprint as associated data). So
only a request carrying the same credential and the exact key finds and opens a reply; a database
dump alone reveals neither keys nor tokens, and the secret alone does not open a reply.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from datetime import UTC, datetime, timedelta

import psycopg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

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


NONCE_BYTES = 12  # AES-GCM's; a fresh random one per sealed reply (in the `salt` column)


class ReplySealer:
    """What the server secret does: name a key without storing it, and seal and open replies."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def key_hash(self, key: IdempotencyKey) -> str:
        return self._mac(b"key-hash", key).hex()

    def seal(self, key: IdempotencyKey, plain: bytes) -> tuple[bytes, bytes]:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce, self._cipher(key).encrypt(nonce, plain, self._bound_to(key))

    def unseal(self, key: IdempotencyKey, nonce: bytes, sealed: bytes) -> bytes:
        """The reply; refuses one that does not open (altered in the database)."""
        try:
            return self._cipher(key).decrypt(nonce, sealed, self._bound_to(key))
        except InvalidTag:
            raise IdempotencyKeyReused(
                "The reply remembered for this Idempotency-Key cannot be read; send a new key."
            ) from None

    def _cipher(self, key: IdempotencyKey) -> AESGCM:
        return AESGCM(self._mac(b"seal", key))

    def _bound_to(self, key: IdempotencyKey) -> bytes:
        return f"{self.key_hash(key)}:{key.fingerprint}".encode()

    def _mac(self, purpose: bytes, key: IdempotencyKey) -> bytes:
        # NUL cannot occur in a scope (hex) nor in a key (base64url): the message is unambiguous.
        message = b"\0".join((purpose, key.scope.encode(), key.key.encode()))
        return hmac.digest(self._secret, message, hashlib.sha256)


class IdempotencyStore:
    """Replies remembered in PostgreSQL, in the command's own transaction."""

    def __init__(
        self, connection: psycopg.Connection, retention: timedelta, sealer: ReplySealer
    ) -> None:
        self._connection = connection
        self._retention = retention
        self._sealer = sealer

    def find(self, key: IdempotencyKey) -> Reply | None:
        """The reply remembered for this key in its scope, if any; raises if the key meant another
        request. (Under another secret the key has another HMAC: its record is simply not found.)"""
        key_hash = self._sealer.key_hash(key)
        row = self._connection.execute(_FIND, (key_hash, _now())).fetchone()
        if row is None:
            return None
        fingerprint, status_code, nonce, sealed_body = row
        if not hmac.compare_digest(fingerprint, key.fingerprint):
            raise IdempotencyKeyReused("This Idempotency-Key was used for a different request.")
        plain = self._sealer.unseal(key, bytes(nonce), bytes(sealed_body))
        return Reply(status_code, json.loads(plain), replayed=True)

    def remember(self, key: IdempotencyKey, reply: Reply) -> None:
        """Store the reply; a concurrent request that got there first makes this command retry."""
        plain = json.dumps(reply.body, separators=(",", ":")).encode()
        nonce, sealed = self._sealer.seal(key, plain)
        now = _now()
        key_hash = self._sealer.key_hash(key)
        values = (key_hash, key.fingerprint, reply.status, nonce, sealed, now)
        stored = self._connection.execute(_REMEMBER, (*values, now + self._retention)).fetchone()
        if stored is None:
            raise ConcurrentUpdate("another request with this Idempotency-Key committed first")


def purge_expired(connection: psycopg.Connection, batch_size: int) -> int:
    """Delete and commit up to `batch_size` expired records."""
    purged = connection.execute(_PURGE, (_now(), batch_size)).rowcount
    connection.commit()
    return purged


def _now() -> datetime:
    return datetime.now(UTC)
