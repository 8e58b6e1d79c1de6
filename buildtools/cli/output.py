"""Human-readable output of the tasks: dry runs, summaries, warnings (JSON: cli.process)."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from buildtools.engine.build_spec import BuiltImage
from buildtools.plan.metadata import Metadata
from buildtools.release.progress import is_terminal, isatty

if TYPE_CHECKING:
    from rich.console import Console


def warnings(lines: Iterable[str]) -> None:
    for line in lines:
        print(f"warning: {line}", file=sys.stderr)


def dry_run_text(specs: list[dict[str, Any]], steps: Iterable[str] = ()) -> str:
    """--dry-run text: one block per image with its tags, build args and labels, then the
    task's steps with the reason each is skipped."""
    out: list[str] = []
    for spec in specs:
        out.append(f"{spec['name']} image (would build {spec['dockerfile']} in {spec['context']})")
        out.extend(f"  tag    {tag}" for tag in spec["tags"])
        for key, value in spec["buildargs"].items():
            shown = value if "\n" not in value else f"<{value.count(chr(10))} lines of YAML>"
            out.append(f"  arg    {key}={shown}")
        out.extend(f"  label  {key}={value}" for key, value in spec["labels"].items())
        out.extend(f"  cache  {ref}" for ref in spec.get("cache_candidates", []))
    out.extend(steps)
    return "\n".join(out)


def summary_console() -> Console:
    """The console for summaries on a terminal. A terminal only by ``FORCE_COLOR`` or
    ``TTY_COMPATIBLE`` (a CI log that shows colour) has no width: rich's default 80 columns
    would fold image references, which are copied. No emoji codes: ``:100:`` in a tag or a
    step is text (and their table costs an import)."""
    from rich.console import Console

    return Console(highlight=False, emoji=False, width=None if isatty(sys.stdout) else 10_000)


SUMMARY_COLUMNS = ("image", "tags", "id", "size", "from cache", "time")


def _summary_rows(built: list[BuiltImage]) -> list[tuple[str, ...]]:
    return [
        (
            b.name,
            "\n".join(b.tags),
            b.id.removeprefix("sha256:")[:12],
            f"{b.size / 1e6:.1f} MB",
            f"{b.cached_steps}/{b.steps} steps",
            f"{b.seconds:.1f}s",
        )
        for b in built
    ]


def plain_table(title: str, columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """A table as a CI log or a pipe gets it: aligned columns, no box, no width limit (a cut
    image reference cannot be copied); a cell of several lines takes as many lines."""
    grid = [list(columns)]
    for row in rows:
        cells = [cell.split("\n") for cell in row]
        for n in range(max(len(lines) for lines in cells)):
            grid.append([lines[n] if n < len(lines) else "" for lines in cells])
    widths = [max(len(line[i]) for line in grid) for i in range(len(columns))]
    text = [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in grid
    ]
    return "\n".join([title, *text])


def build_summary(built: list[BuiltImage], meta: Metadata, console: Console | None = None) -> None:
    """A table of what was built, and where to see the version info it carries: drawn by rich
    on a terminal, plain text elsewhere (without importing rich)."""
    title = f"Built {meta.info.version} ({meta.info.short_commit})"
    lines = [
        f"cache: {b.name}: {steps} steps from {ref} ({why})"
        for b in built
        for ref, why, steps in b.cache
    ]
    app = next((b for b in built if b.name == "app"), None)
    if app:
        lines.append(f"version.yml:  docker run --rm {app.tags[0]} cat /lara/config/version.yml")
    if console is None and not is_terminal(sys.stdout):
        print(plain_table(title, SUMMARY_COLUMNS, _summary_rows(built)), *lines, sep="\n")
        return
    from rich.table import Table

    console = console or summary_console()
    table = Table(title=title)
    for column in SUMMARY_COLUMNS:
        table.add_column(column, overflow="fold", no_wrap=column != "tags")
    for row in _summary_rows(built):
        table.add_row(*row)
    console.print(table)
    for line in lines:
        console.print(line, soft_wrap=True, markup=False)  # never cut: the command is copied
