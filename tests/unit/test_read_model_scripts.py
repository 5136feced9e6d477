"""Every script of the read side names the keys of one arena only: one Redis Cluster hash slot."""

from __future__ import annotations

import re
import uuid

import pytest
from redis.crc import key_slot

from arena.readmodel import writer
from arena.readmodel.keys import Keys

# The first argument of a redis.call: the key a command touches (PUBLISH's channel is no key,
# and the writer sends none from a script).
_FIRST_ARGUMENT = re.compile(r"redis\.call\('(\w+)',\s*([^,)]+)")


@pytest.mark.parametrize("script", writer.SCRIPTS, ids=lambda s: s.source.split("\n")[1][:40])
def test_a_script_is_given_only_keys_of_its_arenas_slot(script: writer.Script) -> None:
    arena_id = str(uuid.uuid4())

    keys = writer.script_keys(script, Keys("arena-read", "g7"), arena_id)

    assert keys, "every script names its keys"
    assert {key_slot(key.encode()) for key in keys} == {key_slot(f"{{{arena_id}}}".encode())}


@pytest.mark.parametrize("script", writer.SCRIPTS, ids=lambda s: s.source.split("\n")[1][:40])
def test_a_script_touches_only_the_keys_it_is_given(script: writer.Script) -> None:
    calls = _FIRST_ARGUMENT.findall(script.source)

    assert calls
    for command, first in calls:
        assert command != "PUBLISH", "a notice is sent after the write, not from a script"
        assert re.fullmatch(r"KEYS\[\d+\]", first.strip()), f"{command} {first}"
    used = {int(n) for n in re.findall(r"KEYS\[(\d+)\]", script.source)}
    given = len(writer.script_keys(script, Keys("arena-read", "g7"), "a"))
    assert used == set(range(1, given + 1))
