"""Flask CLI commands: consume, outbox, dlq, projections, ticks, verify."""

from __future__ import annotations

from flask import Flask

from arena.cli.consume import consume_command
from arena.cli.dlq import dlq_group
from arena.cli.outbox import outbox_group
from arena.cli.rebuild_read_model import projections_group
from arena.cli.set_aside import ticks_group
from arena.cli.verify_read_model import verify_command


def register_commands(app: Flask) -> None:
    app.cli.add_command(consume_command)
    app.cli.add_command(outbox_group)
    app.cli.add_command(dlq_group)
    app.cli.add_command(projections_group)
    app.cli.add_command(ticks_group)
    app.cli.add_command(verify_command)
