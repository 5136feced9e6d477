"""`flask dlq list|replay`: what is stalled behind dead-lettered events, and re-driving it."""

from __future__ import annotations

import uuid

import click
from flask.cli import AppGroup

from arena.bootstrap import components
from arena.domain.envelope import EventEnvelope
from arena.domain.events import PoisonEvent
from arena.readmodel.replay import replay
from arena.readmodel.store import ArenaViews

dlq_group = AppGroup("dlq", help="Arenas stalled behind dead-lettered events, and their replay.")


def _views() -> ArenaViews:
    return components().views


def _describe(raw_event: str) -> str:
    try:
        envelope = EventEnvelope.from_json(raw_event)
    except PoisonEvent:
        return f"unparseable: {raw_event[:60]!r}"
    return f"{envelope.event_type} (event {envelope.event_id})"


@dlq_group.command("list")
@click.option("--arena", "arena_id", type=click.UUID, help="Only this arena.")
def list_command(arena_id: uuid.UUID | None) -> None:
    """Stalled arenas, why, and the events parked behind each."""
    stalls = [s for s in _views().stalls() if arena_id is None or s.arena_id == str(arena_id)]
    for stall in stalls:
        click.echo(
            f"arena {stall.arena_id}: stalled at version {stall.stalled_at_version} "
            f"since {stall.since}\n  reason: {stall.reason}"
        )
        for raw_event, version in _views().parked(stall.arena_id):
            click.echo(f"  parked v{version}: {_describe(raw_event)}")
    click.echo(f"{len(stalls)} stalled arena(s)")


@dlq_group.command("replay")
@click.option("--arena", "arena_id", type=click.UUID, help="Only this arena (default: all).")
def replay_command(arena_id: uuid.UUID | None) -> None:
    """Re-drive parked events in order (after a fix) and un-stall the arenas that catch up."""
    views = _views()
    targets = [str(arena_id)] if arena_id else [stall.arena_id for stall in views.stalls()]
    results = []
    with click.progressbar(targets, label="replaying", show_pos=True) as arenas:
        for target in arenas:
            results.append(replay(views, target))
    for result in results:
        if result.resumed:
            click.echo(f"arena {result.arena_id}: {result.applied} event(s) applied, flowing again")
        else:
            click.echo(
                f"arena {result.arena_id}: still stalled at v{result.stuck_at_version} after "
                f"{result.applied} event(s): {result.reason}"
            )
    stuck = sum(not result.resumed for result in results)
    if stuck:
        raise SystemExit(1)
