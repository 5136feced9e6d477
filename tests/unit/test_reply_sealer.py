"""Sealed replies: only the server secret with the client's scope and key opens one, for its row."""

from __future__ import annotations

import hashlib

import pytest

from arena.persistence.idempotency_keys import ReplySealer
from arena.services.idempotency import IdempotencyKey, IdempotencyKeyReused

SECRET, OTHER_SECRET = b"s" * 32, b"t" * 32
KEY = IdempotencyKey("", "key-1", "fp")  # sent with no token


def test_a_sealed_reply_opens_with_the_same_scope_key_and_fingerprint() -> None:
    sealer = ReplySealer(SECRET)
    nonce, sealed = sealer.seal(KEY, b'{"token":"abc"}')
    assert b"abc" not in sealed
    assert sealer.unseal(IdempotencyKey("", "key-1", "fp"), nonce, sealed) == b'{"token":"abc"}'


@pytest.mark.parametrize(
    ("secret", "key"),
    [
        (OTHER_SECRET, KEY),
        (SECRET, IdempotencyKey("", "key-2", "fp")),
        (SECRET, IdempotencyKey("", "key-1", "other")),
        (SECRET, IdempotencyKey("a-token-hash", "key-1", "fp")),
    ],
    ids=["secret", "key", "fingerprint", "scope"],
)
def test_anything_else_does_not_open_it(secret: bytes, key: IdempotencyKey) -> None:
    nonce, sealed = ReplySealer(SECRET).seal(KEY, b"{}")
    with pytest.raises(IdempotencyKeyReused):
        ReplySealer(secret).unseal(key, nonce, sealed)


def test_a_key_is_named_by_its_hmac_not_its_hash() -> None:
    named = ReplySealer(SECRET).key_hash(IdempotencyKey("", "guessable", "fp"))
    assert named != hashlib.sha256(b"guessable").hexdigest()
    assert named != ReplySealer(OTHER_SECRET).key_hash(IdempotencyKey("", "guessable", "fp"))
    assert named == ReplySealer(SECRET).key_hash(IdempotencyKey("", "guessable", "other"))


def test_the_same_key_has_another_name_in_each_scope() -> None:
    sealer = ReplySealer(SECRET)
    names = {sealer.key_hash(IdempotencyKey(scope, "k", "fp")) for scope in ("", "ab", "cd")}
    assert len(names) == 3


def test_each_seal_has_its_own_nonce() -> None:
    sealer = ReplySealer(SECRET)
    assert sealer.seal(KEY, b"{}") != sealer.seal(KEY, b"{}")
