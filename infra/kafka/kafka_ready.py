#!/usr/bin/env python3
"""Readiness probe for the Kafka broker, standard library only (no client, no Java).

Sends one real Kafka Metadata request (v4: the oldest version Kafka 4.x still serves,
non-flexible encoding) and succeeds only when the broker answers with at least one
registered broker, i.e. it really serves clients.

    python3 infra/kafka/kafka_ready.py [HOST] [PORT]      # exit 0 = ready, 1 = not ready
"""

from __future__ import annotations

import socket
import struct
import sys

API_METADATA = 3
METADATA_VERSION = 4
CORRELATION_ID = 0x0A2E7A
CLIENT_ID = b"arena-services-probe"


def _request() -> bytes:
    # Request header v1: api_key, api_version, correlation_id, client_id (int16-length string).
    header = struct.pack(">hhih", API_METADATA, METADATA_VERSION, CORRELATION_ID, len(CLIENT_ID))
    header += CLIENT_ID
    # Metadata v4 body: topics = [] (no topic details), allow_auto_topic_creation = false.
    body = struct.pack(">i?", 0, False)
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by the broker")
        buf += chunk
    return buf


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: str):
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return value

    def string(self) -> str | None:
        n = self.take(">h")
        if n < 0:
            return None
        s = self.data[self.pos : self.pos + n].decode()
        self.pos += n
        return s


def probe(host: str, port: int, timeout: float = 3.0) -> str:
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(_request())
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        r = _Reader(_recv_exact(sock, size))
    if r.take(">i") != CORRELATION_ID:
        raise ValueError("unexpected correlation id")
    r.take(">i")  # throttle_time_ms
    brokers = []
    for _ in range(r.take(">i")):
        node_id, host_, port_ = r.take(">i"), r.string(), r.take(">i")
        r.string()  # rack
        brokers.append(f"{node_id}@{host_}:{port_}")
    cluster_id = r.string()
    controller_id = r.take(">i")
    if not brokers:
        raise ValueError("no broker registered yet")
    return f"cluster={cluster_id} controller={controller_id} brokers={','.join(brokers)}"


def main() -> int:
    host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 9092
    try:
        print(probe(host, port))
    except (OSError, ValueError, struct.error) as exc:
        print(f"not ready: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
