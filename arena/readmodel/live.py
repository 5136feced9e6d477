"""What a process's live streams share: the notices that wake them and the slots that bound them.

Waking, with one subscriber per process: the projection publishes `<arena id> <version>` on
`Keys.applied_channel` after each write of a view. A stream waiting for its arena's next event
waits on a condition that this process's one listener thread signals, instead of on a Redis
subscription of its own: however many streams a process holds, Redis sees one subscriber, and a
stream whose client stopped reading makes Redis buffer nothing. Notices only wake streams
early: a stream looks at the feed again after a timeout anyway, so a lost notice, or Redis away,
costs latency, never an event.

Bounding: a stream holds a server thread for as long as its client stays, so only so many may
be open at once per process, and commands always find a thread.
"""

from __future__ import annotations

import logging
import threading
import time

from redis import Redis
from redis.exceptions import RedisError

from arena import telemetry

log = logging.getLogger(__name__)

LISTEN_SECONDS = 1.0  # below the client's socket timeout, so a quiet channel is not an error
RECONNECT_SECONDS = 1.0


class AppliedNotices:
    def __init__(self, redis: Redis, channel: str) -> None:
        self._redis = redis
        self._channel = channel
        self._latest: dict[bytes, int] = {}  # the highest version noticed, per arena
        self._noticed = threading.Condition()
        self._listener: threading.Thread | None = None
        self._starting = threading.Lock()

    def wait_past(self, arena_id: str, version: int, timeout_seconds: float) -> bool:
        """Until a notice says the arena's view passed `version`, or the timeout; True if one
        did. The listener starts on first use, so in the process that serves (after a fork)."""
        self._listen_if_not_yet()
        key = arena_id.encode()
        deadline = time.monotonic() + timeout_seconds
        with self._noticed:
            while self._latest.get(key, 0) <= version:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._noticed.wait(left)
            return True

    def _listen_if_not_yet(self) -> None:
        with self._starting:
            if self._listener is None or not self._listener.is_alive():
                self._listener = threading.Thread(
                    target=self._listen, name="applied-notices", daemon=True
                )
                self._listener.start()

    def _listen(self) -> None:
        while True:
            try:
                with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    pubsub.subscribe(self._channel)
                    while True:
                        message = pubsub.get_message(timeout=LISTEN_SECONDS)
                        if message is not None:
                            self._note(message["data"])
            except RedisError as error:
                log.warning("live streams: notices unavailable (%r); streams poll meanwhile", error)
                time.sleep(RECONNECT_SECONDS)

    def _note(self, data: bytes) -> None:
        arena_id, _, version = data.partition(b" ")
        with self._noticed:
            if int(version) > self._latest.get(arena_id, 0):
                self._latest[arena_id] = int(version)
                self._noticed.notify_all()


class StreamSlots:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open = 0
        self._lock = threading.Lock()

    @property
    def open(self) -> int:
        return self._open

    def take(self) -> bool:
        """A slot for one more stream, or False when all are held."""
        with self._lock:
            if self._open >= self.limit:
                return False
            self._open += 1
        telemetry.metrics().open_streams.inc()
        return True

    def give_back(self) -> None:
        with self._lock:
            self._open -= 1
        telemetry.metrics().open_streams.dec()
