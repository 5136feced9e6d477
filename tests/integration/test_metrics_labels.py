"""`/metrics` keeps a bounded set of label values whatever clients send: made-up methods and
paths land on the fixed `other` and `unmatched`, never on series of their own."""

from __future__ import annotations

import uuid

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from arena.http.prometheus import KNOWN_METHODS, OTHER_METHOD, UNMATCHED
from tests.support.api import ARENAS

pytestmark = pytest.mark.integration

REQUESTS_TIMED = "arena_http_request_seconds"


def _labels(client: FlaskClient) -> set[tuple[str, str]]:
    """(route, method) of every series of the request histogram."""
    scraped = client.get("/metrics")
    assert scraped.status_code == 200
    return {
        (sample.labels["route"], sample.labels["method"])
        for family in text_string_to_metric_families(scraped.get_data(as_text=True))
        if family.name == REQUESTS_TIMED
        for sample in family.samples
        if "route" in sample.labels
    }


def test_made_up_methods_and_paths_add_no_label_values(app: Flask, client: FlaskClient) -> None:
    made_up = [uuid.uuid4().hex[:10].upper() for _ in range(4)]
    for word in made_up:
        assert client.open(f"/{word}/{uuid.uuid4()}", method=word).status_code in {404, 405}
        assert client.get(f"{ARENAS}/{uuid.uuid4()}/{word}").status_code == 404
        assert client.open(ARENAS, method=f"X{word}").status_code == 405

    labels = _labels(client)

    rules = {rule.rule for rule in app.url_map.iter_rules()}
    assert {route for route, _ in labels} <= rules | {UNMATCHED}
    assert {method for _, method in labels} <= KNOWN_METHODS | {OTHER_METHOD}
    assert {(UNMATCHED, OTHER_METHOD), (UNMATCHED, "GET")} <= labels
    assert not any(word in route + method for route, method in labels for word in made_up)
