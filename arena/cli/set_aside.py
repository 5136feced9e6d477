"""`flask ticks list|resume`: arenas set aside because their tick failed, and letting them tick."""

from __future__ import annotations

import uuid

import click
from flask.cli import AppGroup

from arena.extensions import db
from arena.persistence.connections import pooled_connection
from arena.persistence.tick_leases import resume, set_aside_arenas

ticks_group = AppGroup("ticks", help="Arenas set aside from ticking, and their resumption.")


@ticks_group.command("list")
def list_command() -> None:
    """Arenas set aside, since when, and why their tick failed."""
    with pooled_connection(db.engine) as connection:
        arenas = set_aside_arenas(connection, listed=None, counted=None)
    for arena in arenas.first:
        click.echo(
            f"arena {arena.arena_id}: set aside since {arena.since}\n  reason: {arena.reason}"
        )
    click.echo(f"{arenas.count} arena(s) set aside")


@ticks_group.command("resume")
@click.argument("arena_id", type=click.UUID, required=False)
@click.option("--all", "everything", is_flag=True, help="Resume every arena set aside.")
def resume_command(arena_id: uuid.UUID | None, everything: bool) -> None:
    """Once the cause is fixed: the next scheduling pass ticks the arena again (one whose tick
    still fails is set aside again, with the new reason)."""
    if (arena_id is None) == (not everything):
        raise click.UsageError("name one arena (flask ticks resume ID), or pass --all")
    with pooled_connection(db.engine) as connection:
        resumed = resume(connection, str(arena_id) if arena_id else None)
    for each in resumed:
        click.echo(f"arena {each}: resumed, it ticks from the next scheduling pass")
    if arena_id is not None and not resumed:
        raise click.ClickException(f"arena {arena_id} is not set aside")
