"""Is a Kafka node serving clients? Standard library only (no client, no Java).

Sends one real Kafka Metadata request (v4: the oldest version Kafka 4.x still serves,
non-flexible encoding) and succeeds only when the node answers with at least one registered
broker, i.e. it really serves clients. The answer lists the brokers the node knows, so a
cluster is ready once every node lists every broker.

    python3 -m stack.kafka_ready [HOST] [PORT]      # exit 0 = ready, 1 = not ready
"""

from __future__ import annotations

import socket
import struct
import sys
from dataclasses import dataclass

API_METADATA = 3
METADATA_VERSION = 4
CORRELATION_ID = 0x0A2E7A
CLIENT_ID = b"arena-services-probe"


class NotReady(Exception):
    """The node did not answer, or answered without a registered broker."""


@dataclass(frozen=True, slots=True)
class Metadata:
    cluster_id: str | None
    controller_id: int
    brokers: tuple[tuple[int, str, int], ...]  # (node id, host, port) of each registered broker

    @property
    def broker_ids(self) -> frozenset[int]:
        return frozenset(node_id for node_id, _, _ in self.brokers)

    def __str__(self) -> str:
        listed = ",".join(f"{node_id}@{host}:{port}" for node_id, host, port in self.brokers)
        return f"cluster={self.cluster_id} controller={self.controller_id} brokers={listed}"


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

    def int32(self) -> int:
        (value,) = struct.unpack_from(">i", self.data, self.pos)
        self.pos += 4
        return int(value)

    def string(self) -> str | None:
        (n,) = struct.unpack_from(">h", self.data, self.pos)
        self.pos += 2
        if n < 0:
            return None
        s = self.data[self.pos : self.pos + n].decode()
        self.pos += n
        return s


def probe(host: str, port: int, timeout: float = 3.0) -> Metadata:
    """The node's metadata; NotReady when it does not answer or knows no broker yet."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(_request())
            (size,) = struct.unpack(">i", _recv_exact(sock, 4))
            r = _Reader(_recv_exact(sock, size))
        if r.int32() != CORRELATION_ID:
            raise NotReady("unexpected correlation id")
        r.int32()  # throttle_time_ms
        brokers = []
        for _ in range(r.int32()):
            node_id, host_, port_ = r.int32(), r.string(), r.int32()
            r.string()  # rack
            brokers.append((node_id, host_ or "", port_))
        cluster_id = r.string()
        controller_id = r.int32()
    except (OSError, struct.error, UnicodeDecodeError) as error:
        raise NotReady(f"{type(error).__name__}: {error}") from error
    if not brokers:
        raise NotReady("no broker registered yet")
    return Metadata(cluster_id, controller_id, tuple(sorted(brokers)))


def main() -> int:
    host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 9092
    try:
        print(probe(host, port))
    except NotReady as exc:
        print(f"not ready: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
