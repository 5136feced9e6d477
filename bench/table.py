"""The benchmarks' results: a `Row` per measurement with its percentiles, the lines saying where
the figures come from (machine, versions, load), and the Markdown table both benchmarks print, so
that it pastes into docs/benchmarks.md as is."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import psycopg
from redis import Redis

from arena.settings import Settings
from harness.processes import ROOT
from harness.services import broker_connection, libpq_dsn
from harness.stats import percentiles


@dataclass
class Row:
    """One line of a result table; times in milliseconds."""

    name: str
    n: int | None = None
    wall_s: float | None = None
    rate: float | None = None
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None
    notes: str = ""
    ok: bool = True

    @classmethod
    def timed(cls, name: str, count: int, seconds: float, **figures: Any) -> Row:
        """`count` events in `seconds` of wall time, and their rate (none without time)."""
        rate = count / seconds if seconds > 0 else None
        return cls(name, n=count, wall_s=seconds, rate=rate, **figures)


def distribution(name: str, values_ms: Sequence[float], notes: str = "") -> Row:
    return Row(name, n=len(values_ms), notes=notes, **percentiles(values_ms))


def print_markdown(
    title: str,
    machine: list[str],
    headers: list[str],
    cells: list[list[str]],
    text_columns: Collection[int],
) -> None:
    """The title, the machine lines, then the table: text columns left, figures right-aligned."""
    widths = [max(len(line[i]) for line in [headers, *cells]) for i in range(len(headers))]

    def line_of(line: list[str]) -> str:
        parts = [
            text.ljust(width) if i in text_columns else text.rjust(width)
            for i, (text, width) in enumerate(zip(line, widths, strict=True))
        ]
        return "| " + " | ".join(parts) + " |"

    rule = ["-" * w if i in text_columns else "-" * (w - 1) + ":" for i, w in enumerate(widths)]
    click.echo("\n".join(["", title, *machine, "", line_of(headers), line_of(rule)]))
    click.echo("\n".join(line_of(line) for line in cells))


def print_rows(title: str, machine: list[str], rows: list[Row]) -> None:
    """The relay benchmark's table: one line per row, every figure of it."""

    def number(value: float | None, digits: int) -> str:
        return "" if value is None else f"{value:,.{digits}f}"

    cells = [
        [
            row.name,
            number(row.n, 0),
            number(row.wall_s, 2),
            number(row.rate, 0 if (row.rate or 0) >= 100 else 1),
            *(number(value, 1) for value in (row.p50, row.p95, row.p99, row.max)),
            row.notes + ("" if row.ok else "  ✗ CHECK FAILED"),
        ]
        for row in rows
    ]
    headers = ["Measurement", "n", "wall s", "events/s", "p50 ms", "p95 ms", "p99 ms", "max ms"]
    headers.append("notes")
    print_markdown(title, machine, headers, cells, (0, len(headers) - 1))


def machine_lines(settings: Settings, load_at_start: tuple[float, ...]) -> list[str]:
    """Where the figures come from: hardware, versions, and how busy the machine was."""

    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "?"

    def first(path: str, prefix: str) -> str:
        with contextlib.suppress(OSError):
            for line in Path(path).read_text().splitlines():
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
        return "?"

    memory = first("/proc/meminfo", "MemTotal")
    with contextlib.suppress(ValueError, IndexError):
        memory = f"{int(memory.split()[0]) / 1024**2:.1f} GiB"
    postgres = redis_version = rabbitmq = "?"
    with (
        contextlib.suppress(Exception),
        psycopg.connect(libpq_dsn(settings), connect_timeout=3) as connection,
    ):
        version_row = connection.execute("SHOW server_version").fetchone()
        if version_row is not None:
            postgres = str(version_row[0]).split()[0]
    with contextlib.suppress(Exception):
        redis_version = Redis.from_url(settings.redis_url).info("server")["redis_version"]
    with (
        contextlib.suppress(Exception),
        broker_connection(settings.celery_broker_url, 3) as broker,
    ):
        rabbitmq = broker.connection.server_properties["version"]
    jars = sorted((ROOT / "var" / "kafka" / "lib").glob("kafka-server-[0-9]*.jar"))
    kafka = jars[-1].stem.removeprefix("kafka-server-") if jars else "?"
    load_now = os.getloadavg()
    return [
        f"Machine: {first('/proc/cpuinfo', 'model name')}, {os.cpu_count()} cores, {memory} RAM, "
        f"{platform.platform()}",
        f"Python {platform.python_version()}, kafka-python {version('kafka-python')}, "
        f"Celery {version('celery')}, psycopg {version('psycopg')}, "
        f"SQLAlchemy {version('sqlalchemy')}; PostgreSQL {postgres}, RabbitMQ {rabbitmq}, "
        f"Redis {redis_version}, Kafka {kafka} ({_kraft_nodes(settings)}), all on 127.0.0.1",
        f"Load average (1 min) {load_at_start[0]:.2f} at start, {load_now[0]:.2f} at end "
        "(the services and any other work share these cores)",
    ]


def _kraft_nodes(settings: Settings) -> str:
    """How many Kafka nodes the settings bootstrap from: one, or a topology's cluster."""
    nodes = len([n for n in settings.kafka_bootstrap_servers.split(",") if n.strip()])
    if nodes == 1:
        return "1 KRaft node"
    return f"{nodes} KRaft nodes, replication factor {settings.kafka_replication_factor}"
