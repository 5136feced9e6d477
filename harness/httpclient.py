"""The benchmark's HTTP client: stdlib only, so that what it costs is small and the same whichever
tree's server answers.

Each client thread keeps one connection per port open, as browsers and HTTP libraries do: a
server that keeps connections alive (gunicorn's gthread workers) then skips a TCP handshake and
an accept per command, and one that closes each (sync workers send `Connection: close`) gets a
fresh connection every time, as before."""

from __future__ import annotations

import http.client
import json
import threading
from dataclasses import dataclass
from typing import Any

HTTP_TIMEOUT_SECONDS = 30
# What a server's closing of an idle kept-alive connection looks like to the next request on it;
# the request never reached the application, so sending it again on a new connection is safe.
_CLOSED_WHILE_IDLE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)

_connections = threading.local()


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
    idempotency_key: str | None = None,
    timeout: float = HTTP_TIMEOUT_SECONDS,
) -> Reply:
    """One request on this thread's connection to `port` (opened again when the server closed
    it)."""
    headers = {"Accept": "application/json"}
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if correlation_id:
        headers["X-Correlation-ID"] = correlation_id
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    pool: dict[int, http.client.HTTPConnection] = _connections.__dict__.setdefault("by_port", {})
    kept = pool.pop(port, None)
    if kept is not None:
        kept.sock.settimeout(timeout)
        try:
            return _exchange(kept, pool, port, method, path, payload, headers)
        except _CLOSED_WHILE_IDLE:
            kept.close()  # closed while idle: send the request again on a new connection
        except (OSError, http.client.HTTPException) as error:
            kept.close()
            return Reply(0, None, repr(error))
    fresh = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        return _exchange(fresh, pool, port, method, path, payload, headers)
    except (OSError, http.client.HTTPException) as error:
        fresh.close()
        return Reply(0, None, repr(error))


def _exchange(
    connection: http.client.HTTPConnection,
    pool: dict[int, http.client.HTTPConnection],
    port: int,
    method: str,
    path: str,
    payload: bytes | None,
    headers: dict[str, str],
) -> Reply:
    """Send, read the answer, and keep the connection for the next call unless it closes."""
    connection.request(method, path, body=payload, headers=headers)
    response = connection.getresponse()
    raw = response.read()
    if response.will_close:
        connection.close()
    else:
        pool[port] = connection
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw[:200].decode(errors="replace")
    return Reply(response.status, parsed)
