"""What spoils a measurement on shared services: a service that stops taking connections (other
engineers' tests restart them) or a consumer that had to be restarted. Rows measured meanwhile
are flagged DISTURBED, to be measured again rather than trusted."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url

from arena.settings import Settings
from bench.brokers import broker_address, broker_name
from bench.processes import Processes
from bench.table import Row


class Outages(threading.Thread):
    """Notes when a service stops taking connections (other engineers' tests restart them), so
    the figures measured meanwhile can be flagged instead of trusted."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(name="outages", daemon=True)
        database = make_url(settings.database_url)
        redis = urlsplit(settings.redis_url)
        kafka_host, _, kafka_port = settings.kafka_bootstrap_servers.split(",")[0].rpartition(":")
        self._endpoints = {
            "Kafka": (kafka_host.strip("[] "), int(kafka_port)),
            "PostgreSQL": (database.host or "127.0.0.1", database.port or 5432),
            "read-model Redis": (redis.hostname or "127.0.0.1", redis.port or 6379),
            broker_name(settings.celery_broker_url): broker_address(settings.celery_broker_url),
        }
        self._stop_flag = threading.Event()
        self._lock = threading.Lock()
        self._open: dict[str, tuple[float, datetime]] = {}
        self.outages: list[tuple[str, float, float, datetime]] = []  # service, from, to, wall

    def run(self) -> None:
        while not self._stop_flag.wait(1.0):
            for service, address in self._endpoints.items():
                try:
                    socket.create_connection(address, timeout=1).close()
                    up = True
                except OSError:
                    up = False
                with self._lock:
                    if not up and service not in self._open:
                        self._open[service] = (time.monotonic(), datetime.now())
                    elif up and service in self._open:
                        began, wall = self._open.pop(service)
                        self.outages.append((service, began, time.monotonic(), wall))

    def _all(self) -> list[tuple[str, float, float, datetime]]:
        with self._lock:
            still = [(s, b, time.monotonic(), w) for s, (b, w) in self._open.items()]
            return self.outages + still

    def during(self, since: float, until: float) -> list[str]:
        return [
            f"{service} down {wall:%H:%M:%S} for {to - began:.0f} s"
            for service, began, to, wall in self._all()
            if began <= until and to >= since
        ]

    def lines(self) -> list[str]:
        return [
            f"{service} down {wall:%H:%M:%S} for {to - began:.0f} s"
            for service, began, to, wall in self._all()
        ]

    def stop(self) -> None:
        self._stop_flag.set()
        self.join(timeout=5)


@dataclass
class Disturbances:
    """Service outages and consumer restarts, to flag the rows measured while they happened."""

    processes: Processes
    outages: Outages

    def mark(self) -> tuple[int, float]:
        return len(self.processes.restarts), time.monotonic()

    def flag(self, rows: list[Row], since: tuple[int, float]) -> None:
        restarts, began = since
        reasons = self.outages.during(began, time.monotonic())
        if len(self.processes.restarts) > restarts:
            reasons.append("consumer restarted")
        if reasons:
            for row in rows:
                row.notes += f"; DISTURBED: {', '.join(reasons)}"
