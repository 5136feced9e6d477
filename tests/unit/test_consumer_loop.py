"""consume(): dispatch polled records in order per partition lane, commit only what was handed on,
always close."""

import dataclasses

import pytest
from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from arena.messaging.consumer import consume
from arena.messaging.dispatch import BatchTooLargeForBroker
from arena.messaging.records import ReceivedRecord
from arena.pacing import Pace

TOPIC = "arena.events"


def record(partition, offset, value=b'{"n": 1}', key=b"arena-1"):
    return ConsumerRecord(
        topic=TOPIC,
        partition=partition,
        leader_epoch=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=key,
        value=value,
        headers=[],
        checksum=None,
        serialized_key_size=len(key or b""),
        serialized_value_size=len(value),
        serialized_header_size=-1,
    )


class StubConsumer:
    """Stands in for KafkaConsumer: returns scripted polls, then empty ones; logs every call."""

    def __init__(self, polls, log=None):
        self._polls = list(polls)
        self.log = [] if log is None else log
        self.poll_calls = []
        self.close_calls = []
        self.commits = []

    def poll(self, **kwargs):
        self.poll_calls.append(kwargs)
        self.log.append("poll")
        return self._polls.pop(0) if self._polls else {}

    def commit(self, offsets):
        self.log.append("commit")
        self.commits.append({tp.partition: meta.offset for tp, meta in offsets.items()})

    def assignment(self):
        return {TopicPartition(TOPIC, partition) for partition in range(8)}

    def pause(self, *partitions):
        self.log.append(f"pause {sorted(p.partition for p in partitions)}")

    def resume(self, *partitions):
        self.log.append(f"resume {sorted(p.partition for p in partitions)}")

    def close(self, **kwargs):
        self.close_calls.append(kwargs)
        self.log.append("close")


def one_by_one(dispatch_event):
    """Adapt a per-event dispatch to consume()'s batch dispatch (with one event per batch)."""

    def dispatch(events):
        assert len(events) == 1
        for event in events:
            dispatch_event(event)

    return dispatch


def stop_after_polls(consumer, count):
    return lambda: len(consumer.poll_calls) >= count


def batch(*records):
    by_partition = {}
    for item in records:
        by_partition.setdefault(TopicPartition(item.topic, item.partition), []).append(item)
    return by_partition


def test_records_are_dispatched_in_poll_order_and_converted_to_received_events():
    first = batch(record(0, 10), record(0, 11), record(1, 5))
    second = batch(record(2, 0, value=b"last", key=None))
    consumer = StubConsumer([first, second])
    received = []

    count = consume(
        consumer, one_by_one(received.append), stop_after_polls(consumer, 2), max_per_dispatch=1
    )

    assert count == 4
    assert [(event.partition, event.offset) for event in received] == [
        (0, 10),
        (0, 11),
        (1, 5),
        (2, 0),
    ]
    assert received[0] == ReceivedRecord(
        value='{"n": 1}', key="arena-1", topic=TOPIC, partition=0, offset=10
    )
    assert received[-1].value == "last"
    assert received[-1].key is None


def test_commit_happens_once_per_poll_after_all_its_records_were_dispatched():
    consumer = StubConsumer([batch(record(0, 1), record(1, 1)), batch(record(0, 2))])

    consume(
        consumer,
        one_by_one(lambda event: consumer.log.append(f"dispatch {event.offset}")),
        stop_after_polls(consumer, 2),
        max_per_dispatch=1,
    )

    assert consumer.log == [
        "poll",
        "dispatch 1",
        "dispatch 1",
        "commit",
        "poll",
        "dispatch 2",
        "commit",
        "close",
    ]


@pytest.mark.parametrize("empty_poll", [{}, {TopicPartition(TOPIC, 0): []}])
def test_empty_polls_do_not_commit(empty_poll):
    consumer = StubConsumer([empty_poll, empty_poll])

    count = consume(consumer, pytest.fail, stop_after_polls(consumer, 2))

    assert count == 0
    assert consumer.log == ["poll", "poll", "close"]


def test_dispatch_failure_mid_batch_skips_the_commit_and_still_closes_without_autocommit():
    consumer = StubConsumer([batch(record(0, 1), record(0, 2), record(0, 3))])
    dispatched = []

    def dispatch(event):
        if event.offset == 2:
            raise ConnectionError("broker down")
        dispatched.append(event.offset)

    with pytest.raises(ConnectionError):
        consume(consumer, one_by_one(dispatch), lambda: False, max_per_dispatch=1)

    assert dispatched == [1]
    assert "commit" not in consumer.log
    assert consumer.close_calls == [{"autocommit": False}]


def test_commit_failure_propagates_and_still_closes_without_autocommit():
    class FailingCommit(StubConsumer):
        def commit(self, offsets):
            raise RuntimeError("commit failed")

    consumer = FailingCommit([batch(record(0, 1))])

    with pytest.raises(RuntimeError, match="commit failed"):
        consume(consumer, lambda events: None, lambda: False)

    assert consumer.close_calls == [{"autocommit": False}]


def test_a_stop_requested_before_the_first_poll_polls_nothing_and_closes():
    consumer = StubConsumer([batch(record(0, 1))])

    count = consume(consumer, pytest.fail, lambda: True)

    assert count == 0
    assert consumer.poll_calls == []
    assert consumer.close_calls == [{"autocommit": False}]


def test_loop_stops_as_soon_as_should_stop_turns_true():
    consumer = StubConsumer([batch(record(0, 1)), batch(record(0, 2)), batch(record(0, 3))])
    received = []
    stop = False

    def dispatch(event):
        nonlocal stop
        received.append(event.offset)
        stop = event.offset == 2

    count = consume(consumer, one_by_one(dispatch), lambda: stop, max_per_dispatch=1)

    assert count == 2
    assert received == [1, 2]
    assert len(consumer.poll_calls) == 2
    assert consumer.log[-2:] == ["commit", "close"]  # the batch in hand is committed first


def test_poll_timeout_and_max_records_are_passed_to_poll():
    consumer = StubConsumer([])

    consume(consumer, pytest.fail, stop_after_polls(consumer, 1), poll_timeout_ms=25, max_records=7)

    assert consumer.poll_calls == [{"timeout_ms": 25, "max_records": 7}]


def test_a_busy_lane_gathers_its_records_and_sends_them_as_one_batch_once_it_is_free():
    polls = [batch(record(0, 1)), batch(record(0, 2), record(1, 7)), batch(record(0, 3)), {}]
    consumer = StubConsumer(polls)
    running = {"task-1"}  # the first batch of partition 0 runs through two more polls
    batches = []

    def dispatch(events):
        batches.append([(e.partition, e.offset) for e in events])
        return f"task-{len(batches)}"

    def still_running(handles):
        if len(consumer.poll_calls) >= 3:
            running.discard("task-1")
        return handles & running

    consume(consumer, dispatch, stop_after_polls(consumer, 4), still_running=still_running)

    assert batches == [[(0, 1)], [(1, 7)], [(0, 2), (0, 3)]]
    assert consumer.commits == [{0: 2}, {1: 8}, {0: 4}]
    # Polls come back quickly only while records wait behind a batch in flight (after poll 2).
    assert [call["timeout_ms"] for call in consumer.poll_calls] == [500, 500, 5, 500]


def test_a_lane_with_too_many_records_waiting_is_paused_until_it_drains():
    polls = [batch(record(0, 1)), batch(record(0, 2), record(0, 3)), {}, {}]
    consumer = StubConsumer(polls)
    done = False

    def still_running(handles):
        return set() if done else handles

    def should_stop():
        nonlocal done
        done = len(consumer.poll_calls) >= 3
        return len(consumer.poll_calls) >= 4

    consume(
        consumer, lambda events: "task", should_stop, still_running=still_running, max_buffered=2
    )

    assert "pause [0]" in consumer.log
    assert consumer.log.index("resume [0]") > consumer.log.index("pause [0]")
    assert consumer.commits == [{0: 2}, {0: 4}]


def test_received_event_replaces_undecodable_bytes_instead_of_failing():
    event = ReceivedRecord.from_record(record(0, 1, value=b"\xff{}", key=b"\xfe"))

    assert event.value == "\ufffd{}"
    assert event.key == "\ufffd"


def test_received_event_survives_a_round_trip_through_its_dict_form():
    # The Celery task receives ReceivedRecord(**received): the dataclass fields are that contract.
    event = ReceivedRecord.from_record(record(3, 42))

    assert ReceivedRecord(**dataclasses.asdict(event)) == event


def test_the_events_of_every_free_partition_go_out_together_in_order_per_partition():
    poll = batch(
        record(0, 10, key=b"a"),
        record(0, 11, key=b"b"),
        record(0, 12, key=b"a"),
        record(1, 3, key=b"c"),
        record(0, 13, key=b"a"),
    )
    consumer = StubConsumer([poll])
    groups = []

    count = consume(consumer, groups.append, stop_after_polls(consumer, 1))

    assert count == 5
    assert [[(e.key, e.offset) for e in group] for group in groups] == [
        [("a", 10), ("b", 11), ("a", 12), ("a", 13), ("c", 3)],
    ]
    assert consumer.log == ["poll", "commit", "close"]
    assert consumer.commits == [{0: 14, 1: 4}]


def test_with_one_event_per_dispatch_every_event_goes_out_alone():
    consumer = StubConsumer([batch(record(0, 1, key=b"a"), record(0, 2, key=b"a"))])
    groups = []

    consume(consumer, groups.append, stop_after_polls(consumer, 1), max_per_dispatch=1)

    assert [[e.offset for e in group] for group in groups] == [[1], [2]]


def test_a_batch_holds_at_most_max_per_dispatch_events_across_partitions():
    poll = batch(record(0, 1), record(0, 2), record(1, 1), record(1, 2), record(2, 1))
    consumer = StubConsumer([poll])
    groups = []

    def dispatch(events):
        groups.append([(e.partition, e.offset) for e in events])
        return f"task-{len(groups)}"

    consume(
        consumer,
        dispatch,
        stop_after_polls(consumer, 1),
        still_running=lambda handles: handles,
        max_per_dispatch=3,
    )

    # Partition 1 is in flight once the first batch took part of it; its rest waits for that.
    assert groups == [[(0, 1), (0, 2), (1, 1)], [(2, 1)]]
    assert consumer.commits == [{0: 3, 1: 2, 2: 2}]


def test_finished_batches_are_looked_up_every_time_round_while_one_runs():
    polls = [batch(record(0, 1)), batch(record(1, 1)), batch(record(0, 2)), {}]
    consumer = StubConsumer(polls)
    asked = []

    def still_running(handles):
        asked.append(len(consumer.poll_calls))
        return set()

    consume(
        consumer, lambda events: "task", stop_after_polls(consumer, 4), still_running=still_running
    )

    # Not before the first batch went out; then after each poll, while one ran: a finished mark
    # is read soon after it is written (it expires), not only once records wait behind it.
    assert asked == [2, 3, 4]


def test_commits_wait_for_the_interval_and_a_clean_stop_commits_the_rest():
    consumer = StubConsumer([batch(record(0, 1)), batch(record(1, 1)), batch(record(2, 1))])

    consume(
        consumer,
        lambda events: None,
        stop_after_polls(consumer, 3),
        commit_interval_seconds=1.0,
        clock=lambda: 0.6 * len(consumer.poll_calls),  # each poll takes 0.6 s
    )

    # 0.6 s: too soon; 1.2 s: partitions 0 and 1 together; 1.8 s: too soon, but then the stop.
    assert consumer.commits == [{0: 2, 1: 2}, {2: 2}]
    assert consumer.log[-2:] == ["commit", "close"]


def test_beyond_the_pace_records_gather_into_the_next_batch_and_the_poll_waits_for_the_token():
    clock = [0.0]
    # a token bucket of one: a batch may go every 0.1 s
    pace = Pace(10, 1, clock=lambda: clock[0])
    polls = [batch(record(0, 1)), batch(record(1, 1)), batch(record(2, 1)), {}]
    consumer = StubConsumer(polls)
    batches = []

    def dispatch(events):
        batches.append([(e.partition, e.offset) for e in events])
        return None  # finished at once: only the pace holds records back

    def stop():
        clock[0] = 0.04 * len(consumer.poll_calls)  # each poll takes 40 ms
        return len(consumer.poll_calls) >= 4

    consume(consumer, dispatch, stop, pace=pace, clock=lambda: clock[0])

    # 0.04 s: (0, 1) goes on the full bucket; 0.08 s: (1, 1) waits; 0.12 s: (1, 1) and (2, 1) go.
    assert batches == [[(0, 1)], [(1, 1), (2, 1)]]
    # While a record waited for the token, the poll came back when the token was due (20 ms).
    assert [call["timeout_ms"] for call in consumer.poll_calls] == [500, 500, 20, 500]


MIB = 1024 * 1024


def test_a_batch_holds_at_most_16_mib_of_records_by_default_not_1000_records_of_8_mib():
    # Records may be 8 MiB each (MAX_EVENT_BYTES): 1,000 of them would be one 8 GB message.
    poll = batch(*(record(p, 1, value=b"x" * (5 * MIB)) for p in range(5)))
    consumer = StubConsumer([poll])
    groups = []

    consume(consumer, groups.append, stop_after_polls(consumer, 1))

    assert [[e.partition for e in group] for group in groups] == [[0, 1, 2], [3, 4]]
    assert all(sum(e.task_bytes for e in group) <= 16 * MIB for group in groups)


def test_bytes_are_counted_as_the_task_carries_them_escapes_included():
    # 2 MiB of quotes: 4 MiB once escaped as JSON, so only one fits in 6 MiB.
    poll = batch(record(0, 1, value=b'"' * (2 * MIB)), record(1, 1, value=b'"' * (2 * MIB)))
    consumer = StubConsumer([poll])
    groups = []

    consume(consumer, groups.append, stop_after_polls(consumer, 1), max_bytes_per_dispatch=6 * MIB)

    assert [[e.partition for e in group] for group in groups] == [[0], [1]]


def test_a_record_larger_than_the_byte_bound_goes_alone_in_its_turn():
    poll = batch(record(0, 1), record(0, 2, value=b"y" * 5000), record(0, 3), record(1, 1))
    consumer = StubConsumer([poll])
    groups = []

    consume(consumer, groups.append, stop_after_polls(consumer, 1), max_bytes_per_dispatch=1000)

    assert [[(e.partition, e.offset) for e in group] for group in groups] == [
        [(0, 1), (1, 1)],
        [(0, 2)],
        [(0, 3)],
    ]
    assert consumer.commits == [{0: 4, 1: 2}]


def test_a_lane_with_too_many_bytes_waiting_is_paused_though_its_records_are_few():
    big = b"z" * 2000
    polls = [batch(record(0, 1)), batch(record(0, 2, value=big), record(0, 3, value=big)), {}]
    consumer = StubConsumer(polls)

    consume(
        consumer,
        lambda events: "task",
        stop_after_polls(consumer, 3),
        still_running=lambda handles: handles,  # the first batch never finishes
        max_buffered_bytes=3000,
    )

    assert "pause [0]" in consumer.log


def test_a_lane_whose_bytes_were_dispatched_is_resumed():
    big = b"z" * 2000
    polls = [batch(record(0, 1, value=big), record(0, 2, value=big)), {}]
    consumer = StubConsumer(polls)
    running = {"task"}

    def stop():
        if len(consumer.poll_calls) == 2:
            running.clear()  # the first record's task is done
        return len(consumer.poll_calls) >= 3

    consume(
        consumer,
        lambda events: "task",
        stop,
        still_running=lambda handles: handles & running,
        max_per_dispatch=1,
        max_buffered_bytes=2000,
    )

    assert consumer.log.count("pause [0]") == 1
    assert "resume [0]" in consumer.log


def test_a_batch_the_broker_refused_for_its_size_goes_again_in_smaller_ones():
    poll = batch(*(record(p, 1, value=b"x" * 1000) for p in range(4)))
    consumer = StubConsumer([poll])
    groups, refused = [], []

    def dispatch(events):
        if len(events) > 2 and not refused:
            refused.append(events)
            raise BatchTooLargeForBroker(2 * events[0].task_bytes)
        groups.append(events)

    consume(consumer, dispatch, stop_after_polls(consumer, 1))

    assert [[e.partition for e in group] for group in groups] == [[0, 1], [2, 3]]
    assert consumer.commits == [{0: 2, 1: 2, 2: 2, 3: 2}]
