"""`flask projections rebuild`: a fresh read model from the Kafka log, switched in atomically."""

from __future__ import annotations

import contextlib
from typing import Any

import click
from flask.cli import AppGroup

from arena.bootstrap import components
from arena.readmodel.rebuild import rebuild

projections_group = AppGroup("projections", help="Maintain the Redis read model.")


@projections_group.command("rebuild")
def rebuild_command() -> None:
    """Replay every event into a new key space; readers switch over once it has caught up."""
    views = components().views
    settings = components().settings
    with contextlib.ExitStack() as stack:
        bars: list[Any] = []  # the progress bar, once the total is known

        def start(total: int) -> None:
            click.echo(f"replaying {total} event(s) from {settings.kafka_events_topic}")
            bar = click.progressbar(length=max(total, 1), label="rebuilding", show_pos=True)
            bars.append(stack.enter_context(bar))

        summary = rebuild(views, settings, on_start=start, on_progress=lambda n: bars[0].update(n))
    click.echo(
        f"switched readers from generation {summary.previous_generation} to "
        f"{summary.generation} in {summary.seconds:.1f} s"
    )
    click.echo(
        f"events read: {summary.events}; "
        + ", ".join(f"{outcome}: {count}" for outcome, count in sorted(summary.outcomes.items()))
    )
    if summary.stalled_arenas:
        click.echo(
            f"arenas stalled behind a bad event: {len(summary.stalled_arenas)} "
            "(see `flask dlq list`)"
        )
    click.echo(f"old generation's keys dropped: {summary.keys_dropped}")
