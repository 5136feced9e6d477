"""Idempotency value types: a retried command answers with its first reply instead of running again.

The bus remembers the reply its caller rendered from the command's result, in the command's own
unit of work, so "the command happened" and "its reply is remembered" are kept together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# A key is a secret of the client's: without a bearer token it alone finds and opens the reply
# (which holds the new player's token), so it must be too long to guess: a UUID, or 22 or more
# random base64url characters (132 bits). The alphabet is base64url's, of which a UUID is made.
KEY_ALPHABET = "A-Za-z0-9_-"
MIN_KEY_LENGTH = 22
MAX_KEY_LENGTH = 255


class IdempotencyKeyReused(Exception):
    """The key was sent before with a different request."""


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    """The client's key within its scope, and the fingerprint of the request it was sent with.

    `scope` names the credential the request carried: its bearer token's hash, or "" for none.
    A key is only ever looked up within its scope, so one client's key can neither replay
    another's reply nor block another's request; the same key with another request in the same
    scope is refused.
    """

    scope: str
    key: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class Reply:
    """A command's answer as its caller rendered it: a status code and a JSON body; `replayed`
    when it comes from memory rather than from running the command."""

    status: int
    body: dict[str, Any]
    replayed: bool = False
