"""Query endpoints read the Redis read model; probes report the real services; the spec is whole."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

from arena.bootstrap import components
from arena.domain.config import ArenaConfig
from arena.domain.envelope import EventEnvelope
from arena.domain.model import Arena
from arena.readmodel.store import ArenaViews
from arena.readmodel.writer import Outcome, apply_event

pytestmark = pytest.mark.integration


def _project_created_arena(app: Flask, name: str, created_at: datetime) -> str:
    """Put an arena into the read model the way the projection task does."""
    arena, _ = Arena.create(
        name=name, creator_display_name="Ada", config=ArenaConfig(), now=created_at
    )
    (event,) = arena.collect_events()
    envelope = EventEnvelope.wrap(event, correlation_id="test", causation_id="test")
    views: ArenaViews = components(app).views
    assert apply_event(views, envelope) is Outcome.APPLIED
    return arena.id


def test_get_arena_returns_its_view_from_redis(app: Flask, client: FlaskClient) -> None:
    arena_id = _project_created_arena(app, "Read me", datetime.now(UTC))

    response = client.get(f"/api/v1/arenas/{arena_id}")

    assert response.status_code == 200
    view = response.get_json()
    assert view["id"] == arena_id
    assert view["name"] == "Read me"
    assert view["status"] == "PENDING"
    assert view["version"] == 1
    assert view["tick"] == 0
    assert [player["role"] for player in view["players"]] == ["ADMIN"]
    assert view["stalled"] is False


def test_unknown_arena_is_a_404_problem(client: FlaskClient) -> None:
    response = client.get(f"/api/v1/arenas/{uuid.uuid4()}")

    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["type"] == "/problems/not-found"


def test_list_is_newest_first_and_pages_with_limit_and_offset(
    app: Flask, client: FlaskClient
) -> None:
    # Far in the future, so these three are the newest arenas of the run.
    start = datetime(2999, 1, 1, tzinfo=UTC)
    ids = [
        _project_created_arena(app, f"Listed {n}", start + timedelta(minutes=n)) for n in range(3)
    ]

    first_page = client.get("/api/v1/arenas?limit=2&offset=0").get_json()
    second_page = client.get("/api/v1/arenas?limit=2&offset=2").get_json()

    assert [view["id"] for view in first_page["items"]] == [ids[2], ids[1]]
    assert second_page["items"][0]["id"] == ids[0]
    assert first_page["total"] == second_page["total"] >= 3
    assert (first_page["limit"], first_page["offset"]) == (2, 0)


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "offset=-1", "limit=ten"])
def test_bad_paging_is_a_422_problem_naming_the_parameter(client: FlaskClient, query: str) -> None:
    response = client.get(f"/api/v1/arenas?{query}")

    assert response.status_code == 422
    assert query.split("=")[0] in [error["field"] for error in response.get_json()["errors"]]


def test_healthz_answers_without_dependencies(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_readyz_reports_every_real_service_reachable(client: FlaskClient) -> None:
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.get_json() == {
        "status": "ready",
        "checks": {"postgres": True, "redis": True, "kafka": True},
        "streams": {"open": 0, "limit": 8},
    }


def test_openapi_spec_documents_every_route(app: Flask, client: FlaskClient) -> None:
    spec = client.get("/api/v1/openapi.json").get_json()

    documented = {(path, method.upper()) for path, item in spec["paths"].items() for method in item}
    routes = {
        (re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule), method)  # <int:tick> → {tick}
        for rule in app.url_map.iter_rules()
        if rule.endpoint
        not in {
            "static",
            "api-docs.openapi_json",
            "api-docs.openapi_swagger_ui",
            "swagger_ui_assets",
        }
        # The web pages and Prometheus's text format are for browsers and scrapers, not the API.
        and rule.endpoint.split(".")[0] not in {"web", "prometheus"}
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert routes <= documented
    assert spec["openapi"].startswith("3.")
    assert len(routes) >= 12


def test_docs_page_serves_swagger_ui_and_its_assets_locally(client: FlaskClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert b"/api/v1/openapi.json" in page.data
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "swagger-ui-standalone-preset.js"):
        assert client.get(f"/docs/assets/{asset}").status_code == 200


def test_pages_carry_security_headers_and_nothing_allows_other_origins(
    client: FlaskClient,
) -> None:
    for path in ("/", "/pipeline"):
        page = client.get(path)
        assert page.status_code == 200
        policy = page.headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert page.headers["X-Frame-Options"] == "DENY"
        assert page.headers["X-Content-Type-Options"] == "nosniff"
    answer = client.get("/api/v1/arenas", headers={"Origin": "http://elsewhere.example"})
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert not [k for k, _ in answer.headers.items() if k.lower().startswith("access-control-")]
