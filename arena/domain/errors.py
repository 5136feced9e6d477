"""Typed domain errors; the HTTP layer maps each to one problem type and status."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every rule the domain refuses to break."""


class NotFound(DomainError):
    pass


class IllegalTransition(DomainError):
    pass


class PermissionDenied(DomainError):
    pass


class Conflict(DomainError):
    pass


class ValidationFailed(DomainError):
    """A value broke an invariant; `field_errors` names each offending field."""

    def __init__(self, field_errors: dict[str, str]) -> None:
        self.field_errors = field_errors
        super().__init__("; ".join(f"{name}: {message}" for name, message in field_errors.items()))


class Unauthenticated(DomainError):
    """No valid credentials for the arena in question."""
