"""The schema is described once: `db.metadata` (arena/persistence/tables.py) is what the
migrations make.

`flask db upgrade` runs on a database of its own, made for this test run, and alembic's
autogenerate comparison reads it back against the ORM metadata: tables, columns, their types,
nullability and server defaults, indexes (partial ones with their WHERE, expression ones too),
unique constraints and foreign keys. Any difference fails, so a migration that changes the schema
without the models, or a model without its migration, is caught here. Alembic does not compare
check constraints or sequences: those stay equal to the migrations' by review.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from pprint import pformat
from typing import Any

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy.engine import URL, make_url

import arena.persistence.tables  # noqa: F401 - every table on db.metadata
from arena.extensions import db, migrate
from arena.settings import Settings

pytestmark = pytest.mark.integration

MIGRATIONS = str(Path(__file__).resolve().parents[2] / "migrations")


def _libpq(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def migrated(settings: Settings, database: str) -> Iterator[Flask]:
    """A fresh database of this run, upgraded to the migrations' head as `flask db upgrade` does,
    in an app that has the database and nothing else."""
    run_database = make_url(database)
    fresh = run_database.set(database=f"{run_database.database}_schema")
    with psycopg.connect(_libpq(run_database), autocommit=True) as server:
        server.execute(f'CREATE DATABASE "{fresh.database}"')
    schema_app = Flask(__name__)
    schema_app.config["SQLALCHEMY_DATABASE_URI"] = fresh.render_as_string(hide_password=False)
    db.init_app(schema_app)
    migrate.init_app(schema_app, db)
    try:
        with schema_app.app_context():
            upgrade(directory=MIGRATIONS)
        yield schema_app
    finally:
        with schema_app.app_context():
            db.engine.dispose()
        with psycopg.connect(_libpq(run_database), autocommit=True) as server:
            server.execute(f'DROP DATABASE IF EXISTS "{fresh.database}" WITH (FORCE)')


def differences(app: Flask) -> list[Any]:
    """What alembic's autogenerate would write to make the migrated database match the models."""
    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, db.metadata))


def test_the_migrations_make_exactly_the_schema_the_models_describe(migrated: Flask) -> None:
    found = differences(migrated)
    assert found == [], "the migrations and arena/persistence/tables.py disagree:\n" + pformat(
        found
    )


def test_every_table_the_migrations_make_is_described(migrated: Flask) -> None:
    with migrated.app_context(), db.engine.connect() as connection:
        made = {
            name
            for (name,) in connection.exec_driver_sql(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            )
        }
    assert made - {"alembic_version"} == set(db.metadata.tables)
