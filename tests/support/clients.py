"""Clients of the app, each at a client address of its own, so that what is counted per address
(rate limits, live-stream places) starts at zero for each."""

from __future__ import annotations

import uuid

from flask import Flask
from flask.testing import FlaskClient


def new_address() -> str:
    """An address no other client has; a loopback one, so a raw socket can connect from it."""
    number = uuid.uuid4().int
    return f"127.{number % 250 + 1}.{number // 250 % 250 + 1}.{number // 62500 % 250 + 1}"


def client_at(app: Flask, address: str | None = None) -> FlaskClient:
    """A client at `address`, or at an address of its own."""
    client = app.test_client()
    client.environ_base |= {"REMOTE_ADDR": address or new_address()}
    return client
