"""Liveness and readiness probes for process supervisors and load balancers."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import text

from arena.bootstrap import components
from arena.extensions import db
from arena.http.pipeline_status import probes

blp = Blueprint("health", __name__, description="Health probes")


@blp.route("/healthz")
class Health(MethodView):
    @blp.response(200)
    def get(self) -> dict[str, str]:
        """The process is up (checks nothing else)."""
        return {"status": "ok"}


@blp.route("/readyz")
class Readiness(MethodView):
    @blp.response(200)
    @blp.alt_response(503, description="A dependency is unreachable")
    def get(self) -> tuple[dict[str, Any], int]:
        """PostgreSQL, Redis and Kafka all answer (Kafka's answer is the pipeline's, at most
        PIPELINE_CACHE_SECONDS old, and waited for at most PIPELINE_DEADLINE_SECONDS)."""
        checks = {"postgres": _postgres_ok(), "redis": _redis_ok(), "kafka": _kafka_ok()}
        ready = all(checks.values())
        slots = components().stream_slots
        body = {
            "status": "ready" if ready else "unavailable",
            "checks": checks,
            "streams": {"open": slots.open, "limit": slots.limit},  # this server process's
        }
        return body, 200 if ready else 503


def _postgres_ok() -> bool:
    try:
        db.session.execute(text("SELECT 1"))
        return True
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        return False
    finally:
        db.session.rollback()


def _redis_ok() -> bool:
    try:
        return bool(components().read_model.ping())
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        return False


def _kafka_ok() -> bool:
    try:
        probes().kafka.get()
        return True
    except Exception:  # noqa: BLE001 - any failure (or no answer in time) means "not ready"
        return False
