"""GET /api/v1/pipeline: how the event pipeline is doing, for people and dashboards."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from arena.extensions import db
from arena.outbox.operations import outbox_metrics

blp = Blueprint("pipeline", __name__, url_prefix="/api/v1", description="Pipeline metrics")


@blp.route("/pipeline")
class Pipeline(MethodView):
    @blp.response(200)
    def get(self) -> dict[str, Any]:
        """Outbox backlog, oldest pending age, dead letters and recent publishing."""
        return {"outbox": outbox_metrics(db.session).to_dict()}
