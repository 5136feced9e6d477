"""JSON over real HTTP, for tests that talk to a server process rather than Flask's test client."""

from __future__ import annotations

import json
import urllib.request
from typing import Any


def send(url: str, body: dict[str, Any] | None = None, token: str = "") -> dict[str, Any]:
    """GET `url`, or POST `body` to it; with `token`, as that bearer. Raises on a 4xx or 5xx."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, headers, method="GET" if data is None else "POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        answer: dict[str, Any] = json.load(response)
        return answer
