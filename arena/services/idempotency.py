"""Idempotency value types: a retried command answers with its first reply instead of running again.

The bus remembers the reply its caller rendered from the command's result, in the command's own
unit of work, so "the command happened" and "its reply is remembered" are kept together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_KEY_LENGTH = 255


class IdempotencyKeyReused(Exception):
    """The key was sent before with a different request."""


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    """The client's key and the fingerprint of the request it was sent with."""

    key: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class Reply:
    """A command's answer as its caller rendered it: a status code and a JSON body; `replayed`
    when it comes from memory rather than from running the command."""

    status: int
    body: dict[str, Any]
    replayed: bool = False
