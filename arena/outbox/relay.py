"""Publish committed outbox rows to Kafka: batched, safe with many relays, in order per arena.

Claiming uses `FOR UPDATE SKIP LOCKED`, never a "last id" cursor, so a row whose transaction
commits late is simply picked up by a later run. Any number of relays may run at once; they never
claim the same row, and a row is published only when no earlier event of its arena is still
pending (in another relay's hands, backing off, or held), so each arena's events reach
Kafka in `aggregateVersion` order. Rows are marked published only after Kafka acknowledged them:
a crash in between re-publishes them with the same event ids, which consumers ignore.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple
from uuid import UUID

import psycopg

from arena import telemetry
from arena.logs import log_event
from arena.messaging.ports import Delivery, MessageRejected, Publisher
from arena.outbox.wakeups import IDLE_LOOK_SECONDS
from arena.pacing import Pace
from arena.settings import Settings

log = logging.getLogger(__name__)

_CLAIM = """
WITH claimed AS (
    SELECT o.id, o.aggregate_id, o.aggregate_version
    FROM outbox o
    WHERE o.published_at IS NULL
      AND o.next_attempt_at <= now()
      AND NOT EXISTS (SELECT 1 FROM outbox_held h WHERE h.aggregate_id = o.aggregate_id)
      AND NOT EXISTS (
          SELECT 1 FROM outbox w
          WHERE w.aggregate_id = o.aggregate_id AND w.published_at IS NULL
            AND w.aggregate_version < o.aggregate_version AND w.next_attempt_at > now())
    ORDER BY o.id
    LIMIT %(batch_size)s
    FOR UPDATE OF o SKIP LOCKED
),
first_pending AS (
    SELECT a.aggregate_id,
           (SELECT p.aggregate_version FROM outbox p
            WHERE p.aggregate_id = a.aggregate_id AND p.published_at IS NULL
            ORDER BY p.aggregate_version LIMIT 1) AS version
    FROM (SELECT DISTINCT aggregate_id FROM claimed) a
),
ranked AS (
    SELECT id, aggregate_id, aggregate_version,
           row_number() OVER (PARTITION BY aggregate_id ORDER BY aggregate_version) AS n
    FROM claimed
)
-- An arena's pending versions run without gaps from its first pending one, so a claimed row may
-- go only if every pending version before it is claimed here too: its place among this batch's
-- rows of the arena equals its distance from the first pending version.
SELECT o.id, o.aggregate_id, o.aggregate_version, o.envelope::text AS envelope, o.event_type,
       o.event_id,
       o.envelope->>'schemaVersion' AS schema_version,
       o.envelope->>'correlationId' AS correlation_id,
       (SELECT count(*) FROM claimed) AS claimed
FROM ranked r
JOIN first_pending f ON f.aggregate_id = r.aggregate_id
JOIN outbox o ON o.id = r.id
WHERE r.aggregate_version = f.version + r.n - 1
ORDER BY o.id
"""

# Marks and counts in one round trip; the counter grows by exactly the rows marked.
_MARK_PUBLISHED = """
WITH marked AS (
    UPDATE outbox SET published_at = now(), last_error = NULL WHERE id = ANY(%(ids)s) RETURNING 1
)
UPDATE outbox_counters SET value = value + (SELECT count(*) FROM marked) WHERE name = 'published'
"""

_BACK_OFF = """
UPDATE outbox o
SET attempts = o.attempts + 1,
    last_error = failed.error,
    next_attempt_at = now() + make_interval(
        secs => LEAST(%(max_seconds)s, %(base_seconds)s * power(2, o.attempts))
                * (0.5 + random() / 2))
FROM (SELECT unnest(%(ids)s::bigint[]) AS id, unnest(%(errors)s::text[]) AS error) failed
WHERE o.id = failed.id
"""

_HOLD = """
WITH held AS (
    DELETE FROM outbox WHERE id = ANY(%(ids)s) AND attempts >= %(max_attempts)s
    RETURNING id, event_id, event_type, aggregate_id, aggregate_version, envelope, created_at,
              attempts, last_error
)
INSERT INTO outbox_held
    (id, event_id, event_type, aggregate_id, aggregate_version, envelope, created_at, attempts,
     last_error)
SELECT * FROM held
RETURNING id
"""


class _Claimed(NamedTuple):
    """A row of `_CLAIM`, in its column order."""

    id: int
    aggregate_id: UUID
    aggregate_version: int
    envelope: str
    event_type: str
    event_id: UUID
    schema_version: str
    correlation_id: str | None
    claimed: int  # how many rows the claim took, those held back by an earlier version too


@dataclass(frozen=True, slots=True)
class RelayPolicy:
    batch_size: int
    max_attempts: int
    backoff_base_seconds: float
    backoff_max_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> RelayPolicy:
        return cls(
            batch_size=settings.outbox_batch_size,
            max_attempts=settings.outbox_max_attempts,
            backoff_base_seconds=settings.outbox_backoff_base_seconds,
            backoff_max_seconds=settings.outbox_backoff_max_seconds,
        )


@dataclass(frozen=True, slots=True)
class RelayRun:
    published: int = 0
    failed: int = 0
    held: int = 0  # rows that failed max_attempts times, now held with their arenas
    error: str | None = None
    full: bool = False  # the claim took a whole batch: more may be due right now


def relay_batch(
    connection: psycopg.Connection[Any], publisher: Callable[[], Publisher], policy: RelayPolicy
) -> RelayRun:
    """Claim one batch, publish it, mark what Kafka acknowledged; back off what it did not.

    A failure is charged to the row that failed only. Its arena's later rows in the batch stay
    pending without a charge (never published past it); other arenas' rows go through. The SQL
    is text run on the driver's connection: SQLAlchemy cost more CPU per claim than the claim.
    """
    began = time.perf_counter()
    claimed = connection.execute(_CLAIM, {"batch_size": policy.batch_size}).fetchall()
    rows = [_Claimed(*row) for row in claimed]
    if not rows:
        connection.rollback()
        return RelayRun()
    metrics = telemetry.metrics()
    metrics.relay_batch_rows.observe(len(rows))
    failures: dict[UUID, tuple[int, str]] = {}  # arena id → (its first failed row, the error)
    try:
        sink = publisher()
    except Exception as error:  # noqa: BLE001 - Kafka unreachable: charge each arena's head row
        for row in rows:
            failures.setdefault(row.aggregate_id, (row.id, _describe(error)))
        return _settle(connection, [], failures, policy)
    sent: list[tuple[_Claimed, Delivery]] = []
    for position, row in enumerate(rows):
        if row.aggregate_id in failures:
            continue
        try:
            delivery = sink.publish(str(row.aggregate_id), row.envelope.encode(), _headers(row))
        except MessageRejected as error:  # e.g. too large: this row fails, alone
            failures[row.aggregate_id] = (row.id, _describe(error))
            continue
        except Exception as error:  # noqa: BLE001 - broker unreachable: stop sending now
            # Every later send would wait out the same timeout: charge each arena not yet sent
            # to its first row, as when no producer could be made at all.
            started = {sent_row.aggregate_id for sent_row, _ in sent}
            for waiting in rows[position:]:
                if waiting.aggregate_id not in started:
                    failures.setdefault(waiting.aggregate_id, (waiting.id, _describe(error)))
            break
        sent.append((row, delivery))
    with contextlib.suppress(Exception):  # an unflushed message fails its own confirm() below
        sink.flush()
    published: list[int] = []
    for row, delivery in sent:
        if row.aggregate_id in failures:
            continue  # an earlier row of this arena failed: stay pending, to be sent after it
        try:
            delivery.confirm()
        except Exception as error:  # noqa: BLE001 - not acknowledged: back this row off
            failures[row.aggregate_id] = (row.id, _describe(error))
            continue
        published.append(row.id)
        log_event(
            log,
            "published",
            row.event_type,
            str(row.aggregate_id),
            row.aggregate_version,
            row.correlation_id,
        )
    settled = _settle(connection, published, failures, policy)
    metrics.relay_batch_seconds.observe(time.perf_counter() - began)
    metrics.events_published.inc(settled.published)
    return dataclasses.replace(settled, full=rows[0].claimed >= policy.batch_size)


def relay_pending(
    connection: psycopg.Connection[Any], publisher: Callable[[], Publisher], policy: RelayPolicy
) -> RelayRun:
    """Publish batch after batch while claims come back full, until a batch has failures.

    A claim that took less than a batch took everything due when it ran; what commits later
    notifies a draining relay (or waits for the next run), so no claim is spent finding nothing.
    """
    published = 0
    while True:
        run = relay_batch(connection, publisher, policy)
        published += run.published
        if not run.full or run.published == 0 or run.error is not None:
            return RelayRun(published, run.failed, run.held, run.error)


def relay_until(
    connection: psycopg.Connection[Any],
    publisher: Callable[[], Publisher],
    policy: RelayPolicy,
    *,
    wait_for_commits: Callable[[float], object],
    seconds: float,
    should_stop: Callable[[], bool] = lambda: False,
    pace: Pace | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> RelayRun:
    """Keep publishing for `seconds`: drain what is due, sleep until the next commit (or a short
    while), drain again. One run then carries every event of those seconds, instead of a relay
    task paying its own cost for one or two rows. Wake-ups beyond `pace` wait for its next token,
    so that under load commits gather into fewer claims. Stops early when a batch fails (the
    failed rows back off; the next run retries them), or when `should_stop()` (the worker is
    shutting down)."""
    pace = pace or Pace.unlimited()
    deadline = clock() + seconds
    published = 0
    while True:
        run = relay_pending(connection, publisher, policy)
        published += run.published
        left = deadline - clock()
        if run.error is not None or left <= 0 or should_stop():
            return RelayRun(published, run.failed, run.held, run.error)
        wait_for_commits(min(left, IDLE_LOOK_SECONDS))
        if (gather := pace.wait_seconds()) > 0:
            sleep(gather)
        pace.take()


def _settle(
    connection: psycopg.Connection[Any],
    published: list[int],
    failures: dict[UUID, tuple[int, str]],
    policy: RelayPolicy,
) -> RelayRun:
    """In one transaction: mark and count the published rows, back off (or hold) the failed."""
    if published:
        connection.execute(_MARK_PUBLISHED, {"ids": published})
    held = []
    if failures:
        failed_ids = [row_id for row_id, _ in failures.values()]
        connection.execute(
            _BACK_OFF,
            {
                "ids": failed_ids,
                "errors": [error[:2000] for _, error in failures.values()],
                "base_seconds": policy.backoff_base_seconds,
                "max_seconds": policy.backoff_max_seconds,
            },
        )
        held = connection.execute(
            _HOLD, {"ids": failed_ids, "max_attempts": policy.max_attempts}
        ).fetchall()
    connection.commit()
    if published:
        log.info("published %d outbox event(s), last outbox id %d", len(published), published[-1])
    if failures:
        first_error = next(iter(failures.values()))[1]
        log.warning(
            "could not publish %d outbox event(s), backing them off: %s",
            len(failures),
            first_error,
        )
    if held:
        log.error(
            "held %d outbox event(s) after %d failed attempts (ids %s): their arenas wait until "
            "`flask outbox release`",
            len(held),
            policy.max_attempts,
            ", ".join(str(row_id) for (row_id,) in held),
        )
    error = next(iter(failures.values()))[1] if failures else None
    return RelayRun(len(published), len(failures), len(held), error)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _headers(row: _Claimed) -> dict[str, str]:
    """Kafka headers let consumers route and trace without parsing the value."""
    return {
        "eventType": row.event_type,
        "eventId": str(row.event_id),
        "schemaVersion": row.schema_version,
        "correlationId": row.correlation_id or "",
    }
