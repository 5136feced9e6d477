"""`flask outbox status|held|release`: the operator's view of the relay.

"Held" rows failed `OUTBOX_MAX_ATTEMPTS` times on their way to Kafka; they and their arenas' later
rows wait in PostgreSQL for an operator. (Events the read side cannot apply go to the Kafka DLQ
instead: `flask dlq`.)
"""

from __future__ import annotations

import uuid

import click
from flask.cli import AppGroup

from arena.extensions import db
from arena.outbox.operations import held_rows, outbox_status, release

outbox_group = AppGroup("outbox", help="Inspect the transactional outbox and release held rows.")


@outbox_group.command("status")
def status_command() -> None:
    """Backlog, oldest pending age, held rows and published totals."""
    status = outbox_status(db.session)
    click.echo(f"pending rows (backlog)       {status.backlog}")
    click.echo(f"oldest pending age           {status.oldest_pending_age_seconds:.1f} s")
    click.echo(f"held rows                    {status.held}")
    click.echo(f"arenas held                  {status.held_arenas}")
    click.echo(f"published in the last minute {status.published_last_minute}")
    click.echo(f"published in total           {status.published_total}")


@outbox_group.command("held")
@click.option("--arena", "arena_id", type=click.UUID, help="Only this arena's held rows.")
def held_command(arena_id: uuid.UUID | None) -> None:
    """List held rows with their last error."""
    rows = held_rows(db.session, arena_id)
    for row in rows:
        click.echo(
            f"#{row.id} arena {row.aggregate_id} v{row.aggregate_version} {row.event_type}: "
            f"{row.attempts} attempts, held since {row.held_at:%Y-%m-%d %H:%M:%S}; {row.last_error}"
        )
    click.echo(f"{len(rows)} held row(s)")


@outbox_group.command("release")
@click.option("--arena", "arena_id", type=click.UUID, help="Release this arena's held rows.")
@click.option("--all", "everything", is_flag=True, help="Release every held row.")
def release_command(arena_id: uuid.UUID | None, everything: bool) -> None:
    """Put held rows back in the outbox, in order; their arenas flow again."""
    if (arena_id is None) == (not everything):
        raise click.UsageError("name one arena with --arena ID, or pass --all")
    count = release(db.session, arena_id)
    click.echo(f"released {count} held row(s)")
