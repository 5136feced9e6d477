"""The locks pin one set: complete, hashed, the image's part at the .venv's versions.

`make setup` and the Dockerfile install a lock with `pip install --no-deps --require-hashes`:
pip resolves nothing, so what is installed is exactly the lock's lines. That is only safe while
each lock is complete and every line is pinned with hashes, which these tests hold.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
DEV_LOCK = ROOT / "requirements" / "dev.lock"
RUNTIME_LOCK = ROOT / "requirements" / "runtime.lock"
PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s\\]+)")


def pins(lock: Path) -> dict[str, tuple[str, frozenset[str]]]:
    """name → (version, hashes) for every requirement the lock names."""
    found: dict[str, tuple[str, frozenset[str]]] = {}
    for block in re.split(r"\n(?=\S)", lock.read_text()):
        if block.startswith("#") or not block.strip():
            continue
        match = PIN.match(block)
        assert match, f"{lock.name}: not pinned with ==: {block.splitlines()[0]}"
        hashes = frozenset(re.findall(r"--hash=sha256:([0-9a-f]{64})", block))
        assert hashes, f"{lock.name}: {match[1]} has no hash"
        found[canonicalize_name(match[1])] = (match[2], hashes)
    return found


def project() -> dict[str, list[str]]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {"": data["dependencies"], **data["optional-dependencies"]}


def test_every_line_of_both_locks_is_pinned_with_hashes() -> None:
    assert len(pins(DEV_LOCK)) > len(pins(RUNTIME_LOCK)) > 0


def test_the_runtime_lock_is_the_dev_locks_pins_for_what_running_needs() -> None:
    dev, runtime = pins(DEV_LOCK), pins(RUNTIME_LOCK)
    for name, pin in runtime.items():
        assert dev.get(name) == pin, f"{name}: runtime.lock and dev.lock disagree"
    test_tools = {canonicalize_name(Requirement(r).name) for r in project()["test"]}
    assert not test_tools & runtime.keys()


def test_each_lock_holds_every_requirement_it_serves_within_its_range() -> None:
    wanted = {RUNTIME_LOCK: project()[""], DEV_LOCK: [r for rs in project().values() for r in rs]}
    wanted[DEV_LOCK] += ["pip", "setuptools"]  # the installer itself, and the build backend
    for lock, requirements in wanted.items():
        locked = pins(lock)
        for text in requirements:
            requirement = Requirement(text)
            name = canonicalize_name(requirement.name)
            assert name in locked, f"{lock.name} lacks {name}"
            assert requirement.specifier.contains(locked[name][0]), f"{lock.name}: {name}"


def test_setup_and_the_image_install_the_locks_without_resolving() -> None:
    makefile = (ROOT / "Makefile").read_text()
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install --quiet --no-deps --require-hashes --requirement $(LOCK)" in makefile
    assert "pip install --no-deps --require-hashes --requirement requirements/runtime.lock" in (
        dockerfile
    )
