"""`flask outbox status|dead-letters|requeue`: the operator's view of the relay."""

from __future__ import annotations

import uuid

import click
from flask.cli import AppGroup

from arena.extensions import db
from arena.outbox.operations import dead_letters, outbox_metrics, requeue

outbox_group = AppGroup("outbox", help="Inspect the transactional outbox and release dead letters.")


@outbox_group.command("status")
def status_command() -> None:
    """Backlog, oldest pending age, dead letters and published totals."""
    metrics = outbox_metrics(db.session)
    click.echo(f"pending rows (backlog)       {metrics.backlog}")
    click.echo(f"oldest pending age           {metrics.oldest_pending_age_seconds:.1f} s")
    click.echo(f"dead letters                 {metrics.dead_letters}")
    click.echo(f"arenas held by dead letters  {metrics.held_arenas}")
    click.echo(f"published in the last minute {metrics.published_last_minute}")
    click.echo(f"published in total           {metrics.published_total}")


@outbox_group.command("dead-letters")
@click.option("--arena", "arena_id", type=click.UUID, help="Only this arena's dead letters.")
def dead_letters_command(arena_id: uuid.UUID | None) -> None:
    """List dead-lettered rows with their last error."""
    rows = dead_letters(db.session, arena_id)
    for row in rows:
        click.echo(
            f"#{row.id} arena {row.aggregate_id} v{row.aggregate_version} {row.event_type}: "
            f"{row.attempts} attempts, dead since {row.dead_at:%Y-%m-%d %H:%M:%S}; {row.last_error}"
        )
    click.echo(f"{len(rows)} dead letter(s)")


@outbox_group.command("requeue")
@click.option("--arena", "arena_id", type=click.UUID, help="Requeue this arena's dead letters.")
@click.option("--all", "everything", is_flag=True, help="Requeue every dead letter.")
def requeue_command(arena_id: uuid.UUID | None, everything: bool) -> None:
    """Put dead letters back in the outbox, in order; their arenas flow again."""
    if (arena_id is None) == (not everything):
        raise click.UsageError("name one arena with --arena ID, or pass --all")
    count = requeue(db.session, arena_id)
    click.echo(f"requeued {count} dead letter(s)")
