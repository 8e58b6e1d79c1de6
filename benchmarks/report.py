"""The pure parts of `invoke bench`: medians, ratios, and the RESULTS.md table.

Every figure is a :class:`Measure`: the samples of several runs, their unit, and the command
that produced them, so the rendered results always say how each number was measured.
A :class:`Row` compares our figure with a baseline as a ratio (ours / baseline) against a goal.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

PERCENT, TIMES = "percent", "times"
COUNTS = ("layers", "blobs", "steps")

TABLE_HEADER = ("case", "what", "baseline", "ours", "ratio", "goal", "met", "machine", "date")


def median(values: Iterable[float]) -> float:
    """The median of the samples (the mean of the middle two for an even count)."""
    data = list(values)
    if not data:
        raise ValueError("median of no samples")
    return float(statistics.median(data))


def ratio(ours: float, baseline: float) -> float | None:
    """ours / baseline, or None when the baseline is zero (no meaningful ratio)."""
    if baseline == 0:
        return None
    return ours / baseline


def format_ratio(value: float | None, style: str = PERCENT) -> str:
    """``0.0412`` as ``4.1%`` (PERCENT) or ``12.3x`` (TIMES); None as an em dash."""
    if value is None:
        return "—"
    if style == PERCENT:
        pct = value * 100
        if pct == 0:
            return "0%"
        return f"{pct:.2f}%" if abs(pct) < 1 else f"{pct:.1f}%"
    return f"{value:.2f}x" if value < 10 else f"{value:.0f}x"


def format_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def format_value(value: float, unit: str) -> str:
    """A median in its unit: seconds as ms or s, bytes in kB/MB, rates and counts plainly."""
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"
    if unit == "B":
        return format_bytes(value)
    if unit == "req/s":
        return f"{value:,.0f} req/s"
    number = f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"
    if value == 1 and unit in COUNTS:
        unit = unit[:-1]
    return f"{number} {unit}".strip()


@dataclass
class Measure:
    """One measured figure: every run's sample, the unit, and how it was measured."""

    samples: list[float]
    unit: str
    command: str
    source: str = ""  # where the number is read from, when not obvious from the command

    @property
    def runs(self) -> int:
        return len(self.samples)

    @property
    def median(self) -> float:
        return median(self.samples)

    def text(self) -> str:
        return format_value(self.median, self.unit)

    def method(self) -> str:
        """``cmd`` — N runs, median X (samples: a, b, c)[; read from ...]."""
        samples = ", ".join(format_value(s, self.unit) for s in self.samples)
        runs = f"{self.runs} run{'s' if self.runs != 1 else ''}"
        where = f"; read from {self.source}" if self.source else ""
        return f"`{self.command}` — {runs}, median {self.text()} (samples: {samples}){where}"


@dataclass
class Row:
    """One line of the results table: ours against a baseline, as a ratio, against a goal."""

    case: str  # "1a", "3b": the case number, then a letter
    what: str
    ours: Measure
    baseline: Measure | None
    goal: str
    met: bool | None  # None: no goal to meet (reported only)
    ratio_style: str = PERCENT
    machine: str = ""
    date: str = ""
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline is None:
            return None
        return ratio(self.ours.median, self.baseline.median)

    @property
    def group(self) -> int:
        """The case number this row belongs to."""
        match = re.match(r"\d+", self.case)
        return int(match[0]) if match else 0

    def cells(self) -> tuple[str, ...]:
        met = {True: "yes", False: "**no**", None: "—"}[self.met]
        return (
            self.case,
            self.what,
            self.baseline.text() if self.baseline else "—",
            self.ours.text(),
            format_ratio(self.ratio, self.ratio_style),
            self.goal,
            met,
            self.machine,
            self.date,
        )

    def method(self) -> str:
        lines = [f"- **{self.case}. {self.what}**", f"  - ours: {self.ours.method()}"]
        if self.baseline is not None:
            lines.append(f"  - baseline: {self.baseline.method()}")
            lines.append(
                f"  - ratio: ours / baseline of the medians = "
                f"{format_ratio(self.ratio, self.ratio_style)}"
            )
        if self.note:
            lines.append(f"  - {self.note}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Row:
        values = dict(data)
        values["ours"] = Measure(**values["ours"])
        values["baseline"] = Measure(**values["baseline"]) if values.get("baseline") else None
        return cls(**values)


def _escape(cell: str) -> str:
    return cell.replace("|", "\\|").replace("\n", " ")


def render_table(rows: Sequence[Row]) -> str:
    """The results as a Markdown table (also what `invoke bench` prints)."""
    lines = [
        "| " + " | ".join(TABLE_HEADER) + " |",
        "| " + " | ".join("---" for _ in TABLE_HEADER) + " |",
    ]
    lines += ["| " + " | ".join(_escape(c) for c in row.cells()) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def render_methods(rows: Sequence[Row]) -> str:
    return "\n".join(row.method() for row in rows) + "\n"


@dataclass
class Results:
    """All rows plus the machines they were measured on (short label → full description)."""

    rows: list[Row] = field(default_factory=list)
    machines: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # per case group, e.g. "1": "..."

    def merge(self, newer: Results) -> Results:
        """These results with every case that ``newer`` measured replaced by its rows."""
        replaced = {row.group for row in newer.rows}
        rows = [r for r in self.rows if r.group not in replaced] + list(newer.rows)
        rows.sort(key=lambda r: (r.group, r.case))
        notes = {k: v for k, v in self.notes.items() if int(k) not in replaced}
        notes.update(newer.notes)
        used = {r.machine for r in rows}
        machines = {k: v for k, v in {**self.machines, **newer.machines}.items() if k in used}
        return Results(rows, machines, dict(sorted(notes.items(), key=lambda kv: int(kv[0]))))

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": [r.as_dict() for r in self.rows],
            "machines": dict(self.machines),
            "notes": dict(self.notes),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Results:
        return cls(
            [Row.from_dict(r) for r in data.get("rows", [])],
            dict(data.get("machines", {})),
            {str(k): v for k, v in data.get("notes", {}).items()},
        )


CASE_TITLES = {
    1: "Metadata-only rebuild",
    2: "Re-release push",
    3: "Sidecar asset throughput",
    4: "Tool overhead",
    5: "Fresh CI runner",
    6: "Image sizes",
    7: "The no-op's cost",
    8: "A tag on a released commit, promoted",
    9: "Keeping the registry tidy on 2,000 tags",
    10: "Signed releases",
}


def render_results(results: Results) -> str:
    """The whole benchmarks/RESULTS.md: the table, the machines, then how each row was measured."""
    parts = [
        "# Benchmark results\n",
        "Generated by `invoke bench` (see [README.md](README.md) for how to read it); do not edit"
        " by hand. Ratios are ours / baseline of the medians; every figure below says which"
        " command produced it, how many runs, and every sample.\n",
        render_table(results.rows),
        "## Machines\n",
        *(f"- **{label}**: {text}" for label, text in results.machines.items()),
        "",
        "## How each figure was measured\n",
    ]
    for group in sorted({r.group for r in results.rows}):
        parts.append(f"### {group}. {CASE_TITLES.get(group, 'Case')}\n")
        note = results.notes.get(str(group))
        if note:
            parts.append(note + "\n")
        parts.append(render_methods([r for r in results.rows if r.group == group]))
    return "\n".join(parts).rstrip("\n") + "\n"
