"""The benchmark client itself: only services on this machine, SIGTERM as a clean exit (so that
`finally` drops the run's resources after Ctrl-C or a kill too), and a work directory of the
run's own that its log goes to."""

from __future__ import annotations

import logging
import signal
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url

from arena.settings import Settings

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # so that `finally` cleans up


def start_client(base: Settings, workdir_prefix: str) -> Path:
    """Refuse services off this machine, let SIGTERM clean up, and make the run's work directory,
    where the app's INFO lines go too (a file, not across the progress bars)."""
    require_loopback(base)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    workdir = Path(tempfile.mkdtemp(prefix=workdir_prefix))
    logging.basicConfig(
        filename=workdir / "bench.log",
        level=logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    return workdir


def require_loopback(settings: Settings) -> None:
    """All traffic stays on this machine: refuse service URLs that point elsewhere."""
    hosts = {
        "DATABASE_URL": make_url(settings.database_url).host or "",
        "REDIS_URL": urlsplit(settings.redis_url).hostname or "",
        "CELERY_BROKER_URL": urlsplit(settings.celery_broker_url).hostname or "",
    }
    for server in settings.kafka_bootstrap_servers.split(","):
        hosts[f"KAFKA_BOOTSTRAP_SERVERS {server}"] = server.strip().rsplit(":", 1)[0].strip("[]")
    remote = {name: host for name, host in hosts.items() if host not in LOOPBACK_HOSTS}
    if remote:
        raise SystemExit(f"the benchmarks only talk to 127.0.0.1; not loopback: {remote}")
