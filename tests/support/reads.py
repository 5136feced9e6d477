"""Reading one's own writes as a client does: `?minVersion=N`, asked again while the view is behind.

The server waits READ_WAIT_SECONDS for the read model to reach N and then answers 503
`read-model-behind` with a Retry-After: the client is to ask again. A test that took that first
503 as a failure would fail whenever the pipeline needs longer than the server's wait (a cold
start, a busy two-core machine); these helpers ask again until a deadline such a machine meets,
and fail on any other answer.
"""

from __future__ import annotations

import json
import urllib.error
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from harness.waiting import wait_until
from tests.support.http import send

BEHIND = "/problems/read-model-behind"
# Process start-up (worker, beat, the consumer joining its group) on a small, busy machine.
CATCH_UP_DEADLINE_SECONDS = 90


def read_at_version(client: FlaskClient, path: str, version: int) -> TestResponse:
    """GET `path?minVersion=version` through Flask's client until it answers 200 (asserted)."""

    def attempt() -> TestResponse | None:
        response = client.get(path, query_string={"minVersion": version})
        if response.status_code == 503 and response.get_json()["type"] == BEHIND:
            return None
        assert response.status_code == 200, response.get_data(as_text=True)
        return response

    return wait_until(
        attempt,
        deadline_seconds=CATCH_UP_DEADLINE_SECONDS,
        interval=0,  # the server itself waits before each 503
        what=f"{path} at version {version}",
    )


def send_at_version(url: str, version: int) -> dict[str, Any]:
    """GET `url?minVersion=version` over real HTTP until it answers 200; its JSON body."""

    def attempt() -> dict[str, Any] | None:
        try:
            return send(f"{url}?minVersion={version}")
        except urllib.error.HTTPError as refused:
            if refused.code == 503 and json.load(refused)["type"] == BEHIND:
                return None
            raise

    return wait_until(
        attempt,
        deadline_seconds=CATCH_UP_DEADLINE_SECONDS,
        interval=0,
        what=f"{url} at version {version}",
    )
