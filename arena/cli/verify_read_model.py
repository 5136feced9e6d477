"""`flask verify [--wait SECONDS]`: is every arena's Redis view equal to PostgreSQL's?"""

from __future__ import annotations

import time

import click

from arena.bootstrap import components
from arena.extensions import db
from arena.outbox.operations import whereabouts
from arena.readmodel.store import ArenaViews
from arena.readmodel.verify import Divergence, divergences, first_missing_versions

POLL_SECONDS = 0.5
SHOWN = 50


@click.command("verify")
@click.option(
    "--wait",
    "wait_seconds",
    type=click.FloatRange(min=0),
    default=0,
    show_default=True,
    help="Wait up to this long for the read model to converge before judging.",
)
def verify_command(wait_seconds: float) -> None:
    """Compare every arena in PostgreSQL with its Redis view; exit 1 on any divergence."""
    views = components().views
    deadline = time.monotonic() + wait_seconds
    found: list[Divergence] = divergences(db.session, views)
    while found and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        found = divergences(db.session, views)
    shown = found[:SHOWN]
    for divergence in shown:
        click.echo(str(divergence))
    if len(found) > SHOWN:
        click.echo(f"… and {len(found) - SHOWN} more")
    if found:
        _explain(shown, views)
        arenas = len({divergence.arena_id for divergence in found})
        click.echo(f"read model diverges: {len(found)} difference(s) in {arenas} arena(s)")
        raise SystemExit(1)
    click.echo("read model matches the write model")


def _explain(found: list[Divergence], views: ArenaViews) -> None:
    """Say where each lagging arena's first missing event is: the first place to look."""
    stalls = {stall.arena_id: stall for stall in views.stalls()}
    missing = first_missing_versions(found)
    for arena_id, where in sorted(whereabouts(db.session, missing).items()):
        click.echo(f"arena {arena_id}: {where}")
        if (stall := stalls.get(arena_id)) is not None:
            click.echo(
                f"arena {arena_id}: its view is stalled at v{stall.stalled_at_version} since "
                f"{stall.since} ({stall.reason}); see `flask dlq list --arena {arena_id}`"
            )
