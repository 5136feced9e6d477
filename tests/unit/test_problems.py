"""field_errors: marshmallow's nested messages flattened to [{field, message}] for problems."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from arena.http.problems import field_errors
from arena.http.schemas import CreateArenaSchema


def test_a_top_level_field_keeps_its_name():
    assert field_errors({"name": ["Missing data for required field."]}) == [
        {"field": "name", "message": "Missing data for required field."}
    ]


def test_nested_fields_are_joined_with_dots():
    messages = {"config": {"width": ["too wide"], "temperature": {"value": ["too hot"]}}}

    assert field_errors(messages) == [
        {"field": "config.width", "message": "too wide"},
        {"field": "config.temperature.value", "message": "too hot"},
    ]


def test_every_message_of_a_field_becomes_its_own_entry_in_order():
    assert field_errors({"name": ["first", "second"]}) == [
        {"field": "name", "message": "first"},
        {"field": "name", "message": "second"},
    ]


def test_schema_level_error_at_the_top_is_reported_on_body():
    assert field_errors({"_schema": ["Invalid input type."]}) == [
        {"field": "body", "message": "Invalid input type."}
    ]


def test_schema_level_error_of_a_nested_object_is_reported_on_that_object():
    assert field_errors({"config": {"_schema": ["Invalid input type."]}}) == [
        {"field": "config", "message": "Invalid input type."}
    ]


def test_list_item_indexes_become_path_segments():
    messages = {"items": {1: {"name": ["Not a valid string."]}}}

    assert field_errors(messages) == [{"field": "items.1.name", "message": "Not a valid string."}]


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        ("just a string", [{"field": "body", "message": "just a string"}]),
        (["a", "b"], [{"field": "body", "message": "a"}, {"field": "body", "message": "b"}]),
        ({}, []),
        ([], []),
        ({"name": "bare string"}, [{"field": "name", "message": "bare string"}]),
        (
            {"n": ["a", {"m": ["b"]}]},
            [{"field": "n", "message": "a"}, {"field": "n.m", "message": "b"}],
        ),
    ],
)
def test_unusual_shapes_are_still_flattened(messages, expected):
    assert field_errors(messages) == expected


def test_path_argument_prefixes_every_field():
    assert field_errors({"width": ["x"]}, "config") == [{"field": "config.width", "message": "x"}]


def test_real_create_arena_schema_errors_name_each_offending_field():
    with pytest.raises(ValidationError) as raised:
        CreateArenaSchema().load(
            {"name": "x", "config": {"width": 0, "temperature": {"value": 999, "unit": "F"}}}
        )

    fields = {error["field"] for error in field_errors(raised.value.messages)}

    assert fields == {
        "name",
        "displayName",
        "config.width",
        "config.temperature.value",
        "config.temperature.unit",
    }


# Hypothesis: arbitrary nested message trees (no "_schema" keys) flatten to one entry per message,
# in document order, each on the dotted path of keys leading to it.
keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABC_0123456789", min_size=1, max_size=8).filter(
    lambda key: key != "_schema"
)
messages_lists = st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=3)
trees = st.recursive(
    messages_lists,
    lambda children: st.dictionaries(keys, children, min_size=1, max_size=4),
    max_leaves=12,
)


def leaves(tree, path=()):
    if isinstance(tree, list):
        for message in tree:
            yield ".".join(path) or "body", message
    else:
        for key, subtree in tree.items():
            yield from leaves(subtree, (*path, key))


@settings(database=None)
@given(trees)
def test_any_nested_tree_flattens_to_one_entry_per_message_on_its_dotted_path(tree):
    flattened = field_errors(tree)

    assert [(error["field"], error["message"]) for error in flattened] == list(leaves(tree))
    assert all(set(error) == {"field", "message"} for error in flattened)
