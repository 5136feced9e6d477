"""The docs name only what exists: the README's Layout, every repository path the docs quote,
and `.env.example`, which lists every setting with its default and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

from arena.messaging import celery_setup
from arena.settings import _VARIABLES

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# A quoted path into the tree, such as `arena/outbox/relay.py` or `tests/e2e/`.
QUOTED_PATH = re.compile(
    r"`((?:arena|tasks|bench|harness|stack|tests|scripts|infra|migrations|docs)/[\w/.]*)`"
)
# A quoted Celery task name, such as `tasks.relay.publish_outbox`.
QUOTED_TASK = re.compile(r"`(tasks\.\w+\.\w+)`")


def _layout_paths() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Layout", 1)[1].split("```", 2)[1]
    paths = []
    for line in block.splitlines():
        if line and not line[0].isspace():  # indented lines continue the one above
            named = re.split(r"\s{2,}", line, maxsplit=1)[0]
            paths += [path.strip() for path in named.split(",")]
    return paths


def test_every_path_in_the_readme_layout_exists() -> None:
    paths = _layout_paths()
    assert len(paths) >= 15, paths
    missing = [path for path in paths if not (ROOT / path).exists()]
    assert missing == [], f"the README's Layout names {missing}, which do not exist"


def test_every_path_the_docs_quote_exists() -> None:
    missing = {
        f"{doc.relative_to(ROOT)}: {path}"
        for doc in DOCS
        for path in QUOTED_PATH.findall(doc.read_text())
        if not (ROOT / path.rstrip(".")).exists()
    }
    assert not missing, "the docs quote paths that do not exist:\n" + "\n".join(sorted(missing))


def test_every_task_the_docs_name_is_a_task() -> None:
    names = {value for name, value in vars(celery_setup).items() if name.endswith("_TASK")}
    unknown = {
        f"{doc.relative_to(ROOT)}: {task}"
        for doc in DOCS
        for task in QUOTED_TASK.findall(doc.read_text())
        if task not in names
    }
    assert not unknown, "the docs name tasks that do not exist:\n" + "\n".join(sorted(unknown))


def test_env_example_lists_every_setting_with_its_default_and_nothing_else() -> None:
    assignments = [
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    listed = dict(assignments)
    assert len(listed) == len(assignments), "a variable is listed twice"
    expected = dict(_VARIABLES.values())
    assert listed == expected


def test_the_readme_configuration_table_names_every_variable() -> None:
    table = (ROOT / "README.md").read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    missing = [variable for variable, _ in _VARIABLES.values() if f"`{variable}`" not in table]
    assert missing == []
