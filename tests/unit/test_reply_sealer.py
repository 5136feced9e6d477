"""Sealed replies: only the server secret and the client's key together open one, for its row."""

from __future__ import annotations

import hashlib

import pytest

from arena.persistence.idempotency import ReplySealer
from arena.services.idempotency import IdempotencyKeyReused

SECRET, OTHER_SECRET = b"s" * 32, b"t" * 32


def test_a_sealed_reply_opens_with_the_same_key_and_fingerprint() -> None:
    sealer = ReplySealer(SECRET)
    nonce, sealed = sealer.seal("key-1", "fp", b'{"token":"abc"}')
    assert b"abc" not in sealed
    assert sealer.unseal("key-1", "fp", nonce, sealed) == b'{"token":"abc"}'


@pytest.mark.parametrize(
    ("secret", "key", "fingerprint"),
    [(OTHER_SECRET, "key-1", "fp"), (SECRET, "key-2", "fp"), (SECRET, "key-1", "other")],
)
def test_anything_else_does_not_open_it(secret: bytes, key: str, fingerprint: str) -> None:
    nonce, sealed = ReplySealer(SECRET).seal("key-1", "fp", b"{}")
    with pytest.raises(IdempotencyKeyReused):
        ReplySealer(secret).unseal(key, fingerprint, nonce, sealed)


def test_a_key_is_named_by_its_hmac_not_its_hash() -> None:
    named = ReplySealer(SECRET).key_hash("guessable")
    assert named != hashlib.sha256(b"guessable").hexdigest()
    assert named != ReplySealer(OTHER_SECRET).key_hash("guessable")
    assert named == ReplySealer(SECRET).key_hash("guessable")


def test_each_seal_has_its_own_nonce() -> None:
    sealer = ReplySealer(SECRET)
    assert sealer.seal("k", "fp", b"{}") != sealer.seal("k", "fp", b"{}")
