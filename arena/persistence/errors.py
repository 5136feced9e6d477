"""Persistence errors the application layer reacts to."""


class ConcurrentUpdate(Exception):
    """Another transaction changed the same data first; retrying the whole command is safe."""
