"""How the server names an Idempotency-Key in its table, for tests that look at the rows."""

from __future__ import annotations

from arena.bootstrap import idempotency_secret
from arena.persistence.idempotency import ReplySealer
from arena.settings import Settings


def stored_key_hash(key: str) -> str:
    """The key's HMAC under this checkout's secret (IDEMPOTENCY_SECRET or var/'s)."""
    return ReplySealer(idempotency_secret(Settings.from_env())).key_hash(key)
