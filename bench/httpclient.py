"""The benchmark's HTTP client: one request per connection, stdlib only, so that what it costs is
small and the same whichever tree's server answers."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any

HTTP_TIMEOUT_SECONDS = 30


@dataclass(frozen=True, slots=True)
class Reply:
    status: int  # 0: no HTTP answer (connection refused, timeout)
    body: Any
    error: str = ""


def call(
    port: int,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    token: str | None = None,
    correlation_id: str | None = None,
    timeout: float = HTTP_TIMEOUT_SECONDS,
) -> Reply:
    """One request on a fresh connection (gunicorn's sync workers close each one anyway)."""
    headers = {"Accept": "application/json"}
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if correlation_id:
        headers["X-Correlation-ID"] = correlation_id
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        raw = response.read()
    except (OSError, http.client.HTTPException) as error:
        return Reply(0, None, repr(error))
    finally:
        connection.close()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw[:200].decode(errors="replace")
    return Reply(response.status, parsed)
