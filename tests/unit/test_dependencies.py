"""Dependencies point inward: read from every module's imports, so the rule cannot drift.

The domain imports no framework and nothing outside itself; the service layer knows neither HTTP
nor PostgreSQL; the simulation is numpy and the standard library; `arena` never imports `tasks`
(it sends tasks by name). The tests and the benchmarks share the harness and nothing else:
neither imports the other, the harness imports neither, and production code never imports it.
The stack (the services, described once per topology) and the application know nothing of each
other: the application reads its settings from the environment; the stack runs on the standard
library alone, so that scripts/services.sh can run it before .venv exists.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imports_of(package: str) -> dict[str, set[str]]:
    """Module path → the top two levels of every module it imports (`arena.http`, `flask`…), for a
    package or a single module."""
    found = {}
    where = ROOT / package.replace(".", "/")
    paths = sorted(where.rglob("*.py")) if where.is_dir() else [where.with_suffix(".py")]
    assert paths, package
    for path in paths:
        names = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = {".".join(n.split(".")[:2]) for n in names}
    return found


FRAMEWORKS = {"flask", "flask_smorest", "sqlalchemy", "psycopg", "kafka", "redis", "celery"}


@pytest.mark.parametrize(
    ("package", "inward"),
    [
        ("arena.domain", {"arena.domain"}),
        (
            "arena.services",
            {"arena.domain", "arena.services", "arena.simulation", "arena.stored_board"},
        ),
        ("arena.simulation", {"arena.simulation"}),
        ("arena.stored_board", {"arena.simulation"}),
    ],
)
def test_inner_layers_import_no_framework_and_only_inward(package, inward):
    wrong = {
        module: sorted(
            name
            for name in names
            if name.split(".")[0] in FRAMEWORKS or (name.startswith("arena") and name not in inward)
        )
        for module, names in imports_of(package).items()
    }

    assert {module: names for module, names in wrong.items() if names} == {}


@pytest.mark.parametrize(
    ("package", "libraries"), [("arena.simulation", {"numpy"}), ("arena.stored_board", {"lz4"})]
)
def test_the_simulation_needs_numpy_and_the_standard_library_only_and_its_storage_lz4(
    package, libraries
):
    outside = {
        module: sorted(
            name
            for name in names
            if name.split(".")[0]
            not in sys.stdlib_module_names | {"numpy", "arena", "__future__"} | libraries
        )
        for module, names in imports_of(package).items()
    }
    assert {module: names for module, names in outside.items() if names} == {}


def test_arena_never_imports_tasks():
    importing = [
        module
        for module, names in imports_of("arena").items()
        if any(name.split(".")[0] == "tasks" for name in names)
    ]

    assert importing == []


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("bench", {"tests"}),
        ("tests", {"bench"}),
        ("harness", {"tests", "bench"}),
        ("arena", {"harness"}),
        ("tasks", {"harness"}),
    ],
)
def test_tests_and_benchmarks_share_only_the_harness_which_production_code_never_uses(
    package, forbidden
):
    importing = {
        module: sorted(name for name in names if name.split(".")[0] in forbidden)
        for module, names in imports_of(package).items()
    }

    assert {module: names for module, names in importing.items() if names} == {}


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("arena", {"stack"}),
        ("tasks", {"stack"}),
        ("stack", {"arena", "tasks", "harness", "bench", "tests"}),
    ],
)
def test_the_stack_and_the_application_never_import_each_other(package, forbidden):
    importing = {
        module: sorted(name for name in names if name.split(".")[0] in forbidden)
        for module, names in imports_of(package).items()
    }

    assert {module: names for module, names in importing.items() if names} == {}


def test_the_stack_needs_the_standard_library_alone_but_to_describe_the_partitions():
    outside = {
        module: sorted(
            name
            for name in names
            if name.split(".")[0] not in sys.stdlib_module_names | {"stack", "__future__"}
        )
        for module, names in imports_of("stack").items()
    }

    assert {module: names for module, names in outside.items() if names} == {
        "stack/kafka_describe.py": ["kafka"]
    }
