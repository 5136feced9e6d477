"""The allocator settings every process starts with (arena.process_memory)."""

from __future__ import annotations

import platform

import pytest

from arena.process_memory import reuse_large_blocks


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_takes_the_settings() -> None:
    assert reuse_large_blocks() is True
