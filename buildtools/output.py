"""Human-readable output of the tasks: plans, summaries, warnings (JSON is printed by the tasks)."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.table import Table

from buildtools.images import BuiltImage
from buildtools.metadata import Metadata


def warnings(lines: Iterable[str]) -> None:
    for line in lines:
        print(f"warning: {line}", file=sys.stderr)


def plan_text(plans: list[dict[str, Any]]) -> str:
    """--dry-run text: one block per image with its tags, build args and labels."""
    out: list[str] = []
    for plan in plans:
        out.append(f"{plan['name']} image (would build {plan['dockerfile']} in {plan['context']})")
        out.extend(f"  tag    {tag}" for tag in plan["tags"])
        for key, value in plan["buildargs"].items():
            shown = value if "\n" not in value else f"<{value.count(chr(10))} lines of YAML>"
            out.append(f"  arg    {key}={shown}")
        out.extend(f"  label  {key}={value}" for key, value in plan["labels"].items())
        out.extend(f"  cache  {ref}" for ref in plan.get("cache_candidates", []))
    return "\n".join(out)


def summary_console() -> Console:
    """The console for summaries. Off a terminal (a CI log, ``invoke build | cat``) rich would
    wrap at 80 columns and cut image references and the copy-paste command: no width there.
    No emoji codes: ``:100:`` in a tag or a step is text (and their table costs an import)."""
    console = Console(highlight=False, emoji=False)
    return console if console.is_terminal else Console(highlight=False, emoji=False, width=10_000)


def build_summary(built: list[BuiltImage], meta: Metadata, console: Console | None = None) -> None:
    """A table of what was built, and where to see the version info it carries."""
    console = console or summary_console()
    table = Table(title=f"Built {meta.info.version} ({meta.info.short_commit})")
    for column in ("image", "tags", "id", "size", "from cache", "time"):
        table.add_column(column, overflow="fold", no_wrap=column != "tags")
    for b in built:
        table.add_row(
            b.name,
            "\n".join(b.tags),
            b.id.removeprefix("sha256:")[:12],
            f"{b.size / 1e6:.1f} MB",
            f"{b.cached_steps}/{b.steps} steps",
            f"{b.seconds:.1f}s",
        )
    console.print(table)
    for b in built:
        for ref, why, steps in b.cache:
            console.print(f"cache: {b.name}: {steps} steps from {ref} ({why})", soft_wrap=True)
    app = next((b for b in built if b.name == "app"), None)
    if app:
        command = f"docker run --rm {app.tags[0]} cat /lara/config/version.yml"
        console.print(f"version.yml:  {command}", soft_wrap=True)  # never cut: it is copied
