"""Migration 0007: the columns that hold already-compressed bytes skip TOAST compression."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from flask import Flask
from flask_migrate import downgrade, upgrade

pytestmark = pytest.mark.integration

MIGRATIONS = str(Path(__file__).resolve().parents[2] / "migrations")
COLUMNS = {("arena_boards", "board"), ("outbox", "envelope")}


def storage(sql: psycopg.Connection) -> dict[tuple[str, str], str]:
    rows = sql.execute(
        """
        SELECT c.relname, a.attname, a.attstorage
          FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
         WHERE (c.relname, a.attname) IN (('arena_boards', 'board'), ('outbox', 'envelope'))
        """
    ).fetchall()
    return {(table, column): kind for table, column, kind in rows}


def test_boards_and_envelopes_are_stored_external_and_the_downgrade_restores_extended(
    app: Flask, sql: psycopg.Connection
) -> None:
    assert storage(sql) == dict.fromkeys(COLUMNS, "e")  # EXTERNAL: out of line, uncompressed
    with app.app_context():
        downgrade(directory=MIGRATIONS, revision="0006")
    try:
        assert storage(sql) == dict.fromkeys(COLUMNS, "x")  # EXTENDED, PostgreSQL's default
    finally:
        with app.app_context():
            upgrade(directory=MIGRATIONS)
    assert storage(sql) == dict.fromkeys(COLUMNS, "e")
