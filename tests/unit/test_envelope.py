"""EventEnvelope: wrapping a domain event, its wire dict, and rejecting malformed envelopes."""

import dataclasses
import json
import uuid
from datetime import UTC, datetime

import pytest

from arena.domain.envelope import AGGREGATE_TYPE, EventEnvelope, MalformedEnvelope
from arena.domain.events import ArenaStarted, PoisonEvent

NOW = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
ENVELOPE_FIELDS = {
    "eventId",
    "eventType",
    "schemaVersion",
    "aggregateType",
    "aggregateId",
    "aggregateVersion",
    "occurredAt",
    "correlationId",
    "causationId",
    "payload",
}


def wrapped(version=3, payload=None):
    event = ArenaStarted(
        aggregate_id="arena-1",
        version=version,
        occurred_at=NOW,
        status="RUNNING",
        tick=0,
        started_at=NOW,
    )
    envelope = EventEnvelope.wrap(event, correlation_id="corr-1", causation_id="cause-1")
    return envelope if payload is None else dataclasses.replace(envelope, payload=payload)


def test_wrap_to_dict_has_every_envelope_field_with_the_event_values():
    data = wrapped().to_dict()

    assert set(data) == ENVELOPE_FIELDS
    assert uuid.UUID(data["eventId"])
    assert data["eventType"] == "ArenaStarted"
    assert data["schemaVersion"] == ArenaStarted.schema_version == 1
    assert data["aggregateType"] == AGGREGATE_TYPE == "Arena"
    assert data["aggregateId"] == "arena-1"
    assert data["aggregateVersion"] == 3
    assert data["occurredAt"] == "2025-03-04T05:06:07+00:00"
    assert data["correlationId"] == "corr-1"
    assert data["causationId"] == "cause-1"
    assert data["payload"] == {
        "status": "RUNNING",
        "tick": 0,
        "startedAt": "2025-03-04T05:06:07+00:00",
    }


def test_each_wrap_gets_a_fresh_event_id():
    assert wrapped().event_id != wrapped().event_id


def test_from_dict_of_to_dict_round_trips():
    envelope = wrapped()

    assert EventEnvelope.from_dict(envelope.to_dict()) == envelope


def test_round_trip_survives_json_encoding():
    envelope = wrapped(payload={"config": {"temperature": {"value": 37.0}}, "list": [1, 2]})

    assert EventEnvelope.from_dict(json.loads(json.dumps(envelope.to_dict()))) == envelope


@pytest.mark.parametrize("missing", sorted(ENVELOPE_FIELDS))
def test_from_dict_rejects_an_envelope_missing_any_field(missing):
    data = wrapped().to_dict()
    del data[missing]

    with pytest.raises(MalformedEnvelope, match=missing):
        EventEnvelope.from_dict(data)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("schemaVersion", "one"),
        ("schemaVersion", None),
        ("aggregateVersion", "three"),
        ("aggregateVersion", None),
        ("aggregateVersion", {"v": 3}),
        ("payload", None),
        ("payload", "not a dict"),
        ("payload", 42),
    ],
)
def test_from_dict_rejects_values_that_cannot_be_converted(field, value):
    data = wrapped().to_dict()
    data[field] = value

    with pytest.raises(MalformedEnvelope):
        EventEnvelope.from_dict(data)


@pytest.mark.parametrize("not_a_dict", [None, "a string", ["a", "list"], 7])
def test_from_dict_rejects_something_that_is_not_an_object(not_a_dict):
    with pytest.raises(MalformedEnvelope):
        EventEnvelope.from_dict(not_a_dict)


@pytest.mark.parametrize("version", [0, -1])
def test_from_dict_rejects_an_aggregate_version_below_1(version):
    data = wrapped().to_dict()
    data["aggregateVersion"] = version

    with pytest.raises(MalformedEnvelope, match="aggregateVersion"):
        EventEnvelope.from_dict(data)


def test_from_dict_accepts_aggregate_version_1():
    data = wrapped(version=1).to_dict()

    assert EventEnvelope.from_dict(data).aggregate_version == 1


def test_a_malformed_envelope_is_poison():
    assert issubclass(MalformedEnvelope, PoisonEvent)


@pytest.mark.parametrize("text", ["", "{", "not json", "[1,"])
def test_from_json_calls_text_that_is_not_json_a_malformed_envelope(text):
    with pytest.raises(MalformedEnvelope, match="not JSON"):
        EventEnvelope.from_json(text)


def test_from_json_reads_what_to_dict_wrote():
    envelope = wrapped()

    assert EventEnvelope.from_json(json.dumps(envelope.to_dict())) == envelope


# Values of the wrong JSON type that from_dict currently *coerces* instead of rejecting:
# str(None) == "None", int(2.5) == 2, int(True) == 1, dict([["k", "v"]]) == {"k": "v"}.
# The read model would then be keyed by arena "None" or apply a truncated version.
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("aggregateId", None),
        ("eventType", None),
        ("aggregateVersion", 2.5),
        ("aggregateVersion", True),
        ("payload", [["name", "Petri"]]),
    ],
)
def test_from_dict_rejects_values_of_the_wrong_json_type_instead_of_coercing_them(field, value):
    data = wrapped().to_dict()
    data[field] = value

    with pytest.raises(MalformedEnvelope):
        EventEnvelope.from_dict(data)
