"""The benchmark's one table: each measurement's key figures, for one tree, or for a baseline and
the current tree side by side with their ratio, since on a shared 2-core machine a change reads
better as current ÷ baseline, measured minutes apart, than as an absolute time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.cpu import KINDS, TICK_WRITER, TOTAL, WORKER_KINDS, WORKERS
from bench.procfile import BOTH_WORKER
from bench.table import Row, print_markdown

PHASES = ("steady", "burst", "drain", "ticks")  # CPU windows, in the table's order


@dataclass
class Measure:
    """One measurement: its figures by name (None: not measured in that tree), notes, checks."""

    name: str
    figures: dict[str, float | None]
    notes: str = ""
    ok: bool = True


@dataclass
class TreeFigures:
    """What one tree's run produced, ready for the table."""

    name: str
    measures: list[Measure] = field(default_factory=list)


def from_rows(rows: Sequence[Row]) -> list[Measure]:
    """The figures that matter of each row: its rate and its p50/p99."""
    measures = []
    seen: set[str] = set()
    for row in rows:
        name = row.name
        while name in seen:  # the table matches rows across trees by name
            name += " (again)"
        seen.add(name)
        figures: dict[str, float | None] = {}
        if row.rate is not None:
            figures["factor x" if row.name.startswith("Speed-up") else "events/s"] = row.rate
        if row.p50 is not None:
            figures["p50 ms"] = row.p50
        if row.p99 is not None:
            figures["p99 ms"] = row.p99
        if not figures and row.n is not None:
            figures["n"] = float(row.n)
        measures.append(Measure(name, figures, row.notes, row.ok))
    return measures


def from_cpu(
    per_phase: dict[str, dict[str, float | None]], events: dict[str, int]
) -> list[Measure]:
    """One measure per kind of process: µs of CPU per event applied, per phase; kinds that did
    not run in this tree (a relay worker of its own, say) are left out."""
    phases = [p for p in PHASES if p in per_phase]
    single = any(per_phase[p].get(BOTH_WORKER) is not None for p in phases)
    counted = {label for label, yes in KINDS if yes}
    order: list[str] = []
    for label, _ in KINDS:
        order.append(label)
        if label == WORKER_KINDS[-1]:
            order.append(WORKERS)
        elif label == TICK_WRITER:
            order.append(TOTAL)
    measures = []
    for label in order:
        figures = {f"{p} µs/event": per_phase[p].get(label) for p in phases}
        if all(value is None for value in figures.values()):
            continue
        notes = ""
        if label == TOTAL:
            notes = "the kinds above; those below are not in it"
        elif label == WORKERS:
            notes = "one worker serves both" if single else "relay + projection workers"
        elif label not in counted:
            notes = "not in the total"
        measures.append(Measure(f"CPU per event: {label}", figures, notes))
    if measures:
        measures[0].notes = (
            "CPU seconds in the window ÷ events applied in it ("
            + ", ".join(f"{p} {events.get(p, 0):,}" for p in phases)
            + "); services shared with other work are counted whole"
        )
    return measures


def _number(value: float | None, figure: str) -> str:
    if value is None:
        return "—"
    if figure == "n":
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def _merged_names(trees: Sequence[TreeFigures]) -> list[str]:
    """Every measurement name, in the last tree's order, others' extras after their neighbour."""
    names = [m.name for m in trees[-1].measures]
    for tree in trees[:-1]:
        previous = None
        for measure in tree.measures:
            if measure.name not in names:
                at = names.index(previous) + 1 if previous in names else len(names)
                names.insert(at, measure.name)
            previous = measure.name
    return names


def render(title: str, machine: list[str], trees: Sequence[TreeFigures]) -> None:
    """Print the table (Markdown), one line per figure; with two trees, with the ratio."""
    compare = len(trees) == 2
    headers = ["Measurement", "figure"]
    headers += (
        [f"{trees[0].name}", f"{trees[1].name}", "x current/baseline"] if compare else ["value"]
    )
    headers.append("notes")
    by_tree = [{m.name: m for m in tree.measures} for tree in trees]
    cells: list[list[str]] = []
    for name in _merged_names(trees):
        found = [measures.get(name) for measures in by_tree]
        figure_names: list[str] = []
        for measure in found:
            for figure in measure.figures if measure else {}:
                if figure not in figure_names:
                    figure_names.append(figure)
        present = [m for m in found if m is not None]
        notes = present[-1].notes if found[-1] is not None else present[0].notes
        failed = [t.name for t, m in zip(trees, found, strict=True) if m is not None and not m.ok]
        if failed:
            notes += f"  ✗ CHECK FAILED ({', '.join(failed)})" if compare else "  ✗ CHECK FAILED"
        if compare and found[0] is not None and found[-1] is not None:
            flags = [
                part
                for part in found[0].notes.split("; ")
                if part.startswith(("DISTURBED:", "BUSY MACHINE:")) or "FAILED" in part
            ]
            if flags:
                notes += f"; baseline: {'; '.join(flags)}"
        for index, figure in enumerate(figure_names or [""]):
            values = [m.figures.get(figure) if m else None for m in found]
            line = [name if index == 0 else "", figure, *(_number(v, figure) for v in values)]
            if compare:
                base, current = values
                ratio = current / base if base and current is not None else None
                line.append("" if ratio is None else f"{ratio:.2f}")
            line.append(notes if index == 0 else "")
            cells.append(line)
    print_markdown(title, machine, headers, cells, (0, 1, len(headers) - 1))
