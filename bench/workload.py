"""The benchmark's workload and its observers: arenas driven through their life by HTTP
commands (open loop at a rate, or closed loop as fast as clients can), the read model polled for
the moment each command shows, and clients reading their own writes with ?minVersion=N."""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import click
from redis.exceptions import RedisError

from bench.processes import Processes
from bench.tree_views import TreeViews
from harness.httpclient import call
from harness.script import API, SCRIPT, Session, command_request

READERS = 32  # client threads waiting on ?minVersion reads
WATCH_INTERVAL_SECONDS = 0.005  # store polling; stretched to 2x a poll's own cost
BEHIND_PAUSE_SECONDS = 0.02  # a read answered 503 at once (the server's waiters are full)


@dataclass(frozen=True, slots=True)
class Answer:
    """A command's answer; times are time.monotonic() except `returned_wall`."""

    key: str  # the correlation id, unique in the run
    kind: str
    status: int
    arena_id: str | None
    version: int | None
    sent: float
    returned: float
    returned_wall: float
    error: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300 and self.version is not None

    @property
    def request_ms(self) -> float:
        return 1000 * (self.returned - self.sent)


class Driver:
    """Hands out the next command of some arena, keeping about `live` arenas in play.

    An arena whose previous command has not been answered is never given another, so each arena's
    versions go 1, 2, 3… without conflicts; when every live arena is busy, a new one is opened.
    """

    def __init__(self, port: int, tag: str, live: int) -> None:
        self._port = port
        self._tag = tag
        self._live_target = live
        self._lock = threading.Lock()
        self._ready: deque[Session] = deque()
        self._live = 0
        self._sessions = itertools.count()
        self._commands = itertools.count()

    def take(self) -> Session:
        with self._lock:
            if self._ready and self._live >= self._live_target:
                return self._ready.popleft()
            self._live += 1
            return Session(next(self._sessions))

    def run(self, session: Session) -> Answer:
        """Send the session's next command (in a client thread) and put the session back."""
        kind = SCRIPT[session.step]
        method, path, body, token = command_request(session, kind)
        with self._lock:
            key = f"{self._tag}-{next(self._commands)}"
        sent = time.monotonic()
        reply = call(self._port, method, path, body, token=token, correlation_id=key)
        returned, returned_wall = time.monotonic(), time.time()
        answered = isinstance(reply.body, dict) and 200 <= reply.status < 300
        if answered and kind == "create":
            session.arena_id = reply.body["id"]
            session.admin_token = reply.body["player"]["token"]
        elif answered and kind == "join":
            session.player_token = reply.body["player"]["token"]
        answer = Answer(
            key,
            kind,
            reply.status,
            session.arena_id,
            reply.body.get("version") if answered else None,
            sent,
            returned,
            returned_wall,
            "" if answered else f"{reply.status} {reply.error or reply.body}"[:300],
        )
        session.step += 1
        with self._lock:
            if answer.ok and session.step < len(SCRIPT):
                self._ready.append(session)
            else:
                self._live -= 1  # finished, or in a state we no longer know: let it go
        return answer


def steady(
    driver: Driver,
    count: int,
    rate: float,
    pool: ThreadPoolExecutor,
    on_answer: Callable[[Answer], None],
    label: str,
    deadline: float,
) -> list[Answer]:
    """Send `count` commands at `rate`/s, whatever the answers' pace (an open-loop client)."""

    def one(session: Session) -> Answer:
        answer = driver.run(session)
        on_answer(answer)
        return answer

    futures: list[Future[Answer]] = []
    with click.progressbar(range(count), label=label) as bar:
        started = time.monotonic()
        for index in bar:
            due = started + index / rate
            now = time.monotonic()
            if now > deadline:
                break
            if due > now:
                time.sleep(due - now)
            futures.append(pool.submit(one, driver.take()))
    return [future.result(timeout=max(1.0, deadline - time.monotonic())) for future in futures]


def burst(
    driver: Driver, count: int, clients: int, on_answer: Callable[[Answer], None], deadline: float
) -> list[Answer]:
    """Send `count` commands with `clients` always in flight (a closed-loop client)."""
    slots = threading.Semaphore(clients)

    def one(session: Session) -> Answer:
        try:
            answer = driver.run(session)
            on_answer(answer)
            return answer
        finally:
            slots.release()

    futures: list[Future[Answer]] = []
    with (
        ThreadPoolExecutor(clients, thread_name_prefix="burst") as pool,
        click.progressbar(range(count), label="burst: commands      ") as bar,
    ):
        for _ in bar:
            while not slots.acquire(timeout=1):
                if time.monotonic() > deadline:
                    raise RuntimeError("the burst ran past its deadline")
            futures.append(pool.submit(one, driver.take()))
    return [future.result() for future in futures]


# --- watching the read model ----------------------------------------------------------------------


class Visibility(threading.Thread):
    """Polls the read model (one MGET) for the arenas with commands not yet applied, and notes the
    moment each command's version shows. Cheaper and finer-grained than HTTP reads."""

    def __init__(self, views: TreeViews) -> None:
        super().__init__(name="visibility", daemon=True)
        self._views = views
        self._lock = threading.Lock()
        self._pending: dict[str, list[tuple[int, str]]] = {}
        self._stop_flag = threading.Event()
        self.seen: dict[str, float] = {}
        self.redis_errors = 0

    def expect(self, answer: Answer) -> None:
        if answer.ok and answer.arena_id is not None and answer.version is not None:
            with self._lock:
                self._pending.setdefault(answer.arena_id, []).append((answer.version, answer.key))

    def outstanding(self) -> int:
        with self._lock:
            return sum(len(waiting) for waiting in self._pending.values())

    def run(self) -> None:
        while not self._stop_flag.is_set():
            started = time.monotonic()
            with self._lock:
                arena_ids = list(self._pending)
            if arena_ids:
                try:
                    views = self._views.get_many(arena_ids)
                except RedisError:  # the read model restarting: projections will retry too
                    self.redis_errors += 1
                    self._stop_flag.wait(0.2)
                    continue
                now = time.monotonic()
                with self._lock:
                    for arena_id, view in views.items():
                        waiting = self._pending.get(arena_id, [])
                        still = [(v, key) for v, key in waiting if v > view["version"]]
                        for version, key in waiting:
                            if version <= view["version"]:
                                self.seen.setdefault(key, now)
                        if still:
                            self._pending[arena_id] = still
                        else:
                            self._pending.pop(arena_id, None)
            elapsed = time.monotonic() - started
            self._stop_flag.wait(max(WATCH_INTERVAL_SECONDS, 2 * elapsed))

    def stop(self) -> None:
        self._stop_flag.set()
        self.join(timeout=10)


def wait_until_applied(
    visibility: Visibility, answers: list[Answer], processes: Processes, label: str, deadline: float
) -> bool:
    """Wait (bounded) until every accepted command of `answers` shows in the read model."""
    wanted = [a.key for a in answers if a.ok]
    with click.progressbar(length=len(wanted), label=label) as bar:
        shown = 0
        while time.monotonic() < deadline:
            seen = sum(1 for key in wanted if key in visibility.seen)
            bar.update(seen - shown)
            shown = seen
            if seen == len(wanted):
                return True
            processes.check()
            time.sleep(0.1)
    click.echo(f"{label.strip()}: {len(wanted) - shown} commands not applied by the deadline")
    return False


class Readers:
    """Clients reading their own writes: GET …?minVersion=N, which waits in the server."""

    def __init__(self, port: int, deadline: float) -> None:
        self._port = port
        self._deadline = deadline
        self._pool = ThreadPoolExecutor(READERS, thread_name_prefix="reader")
        self._futures: list[Future[None]] = []
        self.seen: dict[str, float] = {}
        self.asked: list[str] = []
        self.behind = 0  # 503 answers: not visible within READ_WAIT_SECONDS; read again
        self.refused = 0  # 503 answers at once: no waiting slot in the server; read again
        self.errors: list[str] = []

    def read(self, answer: Answer) -> None:
        if answer.ok:
            self.asked.append(answer.key)
            self._futures.append(self._pool.submit(self._read, answer))

    def _read(self, answer: Answer) -> None:
        path = f"{API}/{answer.arena_id}?minVersion={answer.version}"
        while time.monotonic() < self._deadline:
            asked = time.monotonic()
            reply = call(self._port, "GET", path)
            if reply.status == 200 and reply.body["version"] >= (answer.version or 0):
                self.seen[answer.key] = time.monotonic()
                return
            if reply.status == 503 and time.monotonic() - asked < 1.0:
                self.refused += 1  # did not wait (a server that bounds its waiters): not a spin
                time.sleep(BEHIND_PAUSE_SECONDS)
                continue
            if reply.status == 503:
                self.behind += 1
                continue
            self.errors.append(f"{reply.status} {reply.error or reply.body}"[:200])
            time.sleep(0.2)

    def wait(self) -> None:
        """Until every read is back, or the deadline (the rows then say how many came back)."""
        for future in self._futures:
            with contextlib.suppress(TimeoutError):
                future.result(timeout=max(0.0, self._deadline - time.monotonic()) + 1)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
