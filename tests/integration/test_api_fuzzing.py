"""Schemathesis against the OpenAPI spec, on the real app and services: every operation, on a
real dish (ticked and projected) with its admin's bearer token. No 5xx, every response as the
spec describes it (status, content type, headers, body, each frame of a stream), and every 4xx is
problem+json.

Not checked: schemathesis's "schema-valid data is accepted". Two refusals the spec describes but
cannot express as a schema are valid answers to schema-valid data: an Idempotency-Key reused for a
different request (422, documented), and an action whose payload does not fit its type (422
naming the field; the spec lists each type's payload, not which goes with which type).
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from schemathesis.checks import positive_data_acceptance

from arena.http.problems import PROBLEM_MEDIA_TYPE
from tests.support.dish import Dish

pytestmark = pytest.mark.integration

EXAMPLES_PER_OPERATION = 25
EXAMPLES_PER_STREAM = 3  # a stream is read for a while before the client lets go


@schemathesis.check
def client_errors_are_problems(_ctx: Any, response: Any, _case: Any) -> None:
    if 400 <= response.status_code < 500:
        found = [v for k, v in response.headers.items() if k.lower() == "content-type"]
        content_type = str(found[0][0] if found and isinstance(found[0], list) else found[0])
        assert content_type.startswith(PROBLEM_MEDIA_TYPE), (
            f"{response.status_code} answered as {content_type!r}, not problem+json"
        )


def test_every_operation_answers_as_its_spec_says(
    app: Flask, dish: Dish, sql: psycopg.Connection
) -> None:
    dish.tick(3)
    (started,) = sql.execute("SELECT now()").fetchone() or (None,)
    arena_id, admin = dish.id, dish.ada
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    found: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @examples(
            max_examples=(
                EXAMPLES_PER_STREAM
                if operation.path.endswith("/stream")
                else EXAMPLES_PER_OPERATION
            ),
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def answers_as_specified(case: Any) -> None:
            if "arena_id" in (case.path_parameters or {}):
                case.path_parameters["arena_id"] = arena_id  # the real arena, not a random one
            if "minVersion" in (case.query or {}):
                # Reached already: a version the read model has not got waits READ_WAIT_SECONDS
                # for the documented 503 (tests/integration/test_read_queries.py has that path).
                case.query["minVersion"] = 1
            case.call_and_validate(
                headers={"Authorization": f"Bearer {admin.token}"},
                additional_checks=[client_errors_are_problems],
                excluded_checks=[positive_data_acceptance],
            )

        try:
            answers_as_specified()
        except BaseException as failure:  # noqa: BLE001 - schemathesis raises a group of them
            found.append(f"{operation.label}: {failure}")
    # Forget the Idempotency-Keys it made up ("0000000000000000000000", …), as if it had not run.
    sql.execute("DELETE FROM idempotency_keys WHERE created_at >= %s", (started,))
    assert not found, "\n\n".join(found)
