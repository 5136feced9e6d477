"""Flask CLI commands: `flask consume` and `flask outbox …`."""

from __future__ import annotations

from flask import Flask

from arena.cli.consume import consume_command
from arena.cli.outbox import outbox_group


def register_commands(app: Flask) -> None:
    app.cli.add_command(consume_command)
    app.cli.add_command(outbox_group)
