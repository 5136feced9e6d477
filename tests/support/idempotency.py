"""How the server names an Idempotency-Key in its table, for tests that look at the rows."""

from __future__ import annotations

from arena.bootstrap import idempotency_secret
from arena.domain.model import hash_token
from arena.persistence.idempotency_keys import ReplySealer
from arena.services.idempotency import IdempotencyKey
from arena.settings import Settings


def stored_key_hash(key: str, token: str | None = None) -> str:
    """The HMAC, under this checkout's secret (IDEMPOTENCY_SECRET or var/'s), of the key sent
    with `token` (or with no token). The fingerprint does not name a key."""
    scope = hash_token(token) if token is not None else ""
    sealer = ReplySealer(idempotency_secret(Settings.from_env()))
    return sealer.key_hash(IdempotencyKey(scope, key, fingerprint=""))
