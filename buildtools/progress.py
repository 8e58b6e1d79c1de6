"""Terminal progress for long work, in one place: build steps and push bytes.

Everything goes to stderr so that stdout stays clean for ``--json`` and other script output.
"""

from __future__ import annotations

import sys
from typing import Any, Protocol

from rich.console import Console
from rich.markup import escape

from buildtools.pushplan import Push


def stderr_console() -> Console:
    """Build steps as written: ``:100:`` in a RUN line is text, not an emoji."""
    return Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


class BuildProgress:
    """One line per build step: number, instruction, and whether it came from cache."""

    def __init__(self, console: Console | None = None, verbose: bool = False) -> None:
        self.console = console or stderr_console()
        self.verbose = verbose
        self._status = None
        self._instruction = ""

    def step(self, image: str, number: int, total: int, instruction: str) -> None:
        short = " ".join(instruction.split())
        short = short if len(short) <= 70 else short[:67] + "..."
        self._instruction = f"[{image}] step {number:>2}/{total}  {short}"
        if self.verbose or not self.console.is_terminal:
            return
        if self._status is None:
            self._status = self.console.status(escape(self._instruction))
            self._status.start()
        else:
            self._status.update(escape(self._instruction))

    def step_done(self, image: str, number: int, cached: bool, seconds: float) -> None:
        if not self.console.is_terminal:
            # A log (CI, a pipe) gets the same line as plain text: rich's markup and layout
            # only strip themselves off there, at a cost on every step of every build.
            how = "cached" if cached else f"{seconds:5.1f}s"
            print(f"{self._instruction}  {how}", file=self.console.file, flush=True)
            return
        how = "[dim]cached[/dim]" if cached else f"[green]{seconds:5.1f}s[/green]"
        self.console.print(f"{escape(self._instruction)}  {how}")

    def output(self, image: str, line: str) -> None:
        if self.verbose:
            self.console.print(f"[dim]{escape(line)}[/dim]")

    def close(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None


class PushReporter(Protocol):
    def start(self, push: Push) -> None: ...
    def layer(self, push: Push, layer: str, status: str, current: int, total: int) -> None: ...
    def retry(self, what: str, attempt: int, delay: float, reason: str) -> None: ...
    def finish(self, push: Push) -> None:
        """``push`` is the record of the finished push (its digest, verified)."""
        ...

    def close(self) -> None: ...


class QuietReporter:
    """No output (``--json``)."""

    def start(self, push: Push) -> None:
        pass

    def layer(self, push: Push, layer: str, status: str, current: int, total: int) -> None:
        pass

    def retry(self, what: str, attempt: int, delay: float, reason: str) -> None:
        pass

    def finish(self, push: Push) -> None:
        pass

    def close(self) -> None:
        pass


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


class LineReporter:
    """Plain progress lines on stderr: one per push, per layer state change, per retry.

    On a terminal, the bytes of the running push are shown with a rich progress bar.
    """

    def __init__(self, stream: Any = None, terminal: bool | None = None) -> None:
        from rich.console import Console

        self.console = Console(
            file=stream or sys.stderr,
            highlight=False,
            soft_wrap=True,
            emoji=False,
            force_terminal=terminal,
        )
        self._layers: dict[str, tuple[str, int, int]] = {}
        self._progress: Any = None
        self._task: Any = None

    def start(self, push: Push) -> None:
        self._layers = {}
        self.console.print(f"pushing {push.reference}", markup=False)
        if self.console.is_terminal:
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

            self._progress = Progress(
                TextColumn("  {task.description}"),
                BarColumn(),
                DownloadColumn(),
                console=self.console,
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task(push.tag, total=None)

    def layer(self, push: Push, layer: str, status: str, current: int, total: int) -> None:
        before = self._layers.get(layer, ("", 0, 0))
        self._layers[layer] = (status, current or before[1], max(total, before[2]))
        if status != before[0] and status not in ("Pushing", "Preparing", "Waiting"):
            self.console.print(f"  {layer}: {status}", markup=False)
        if self._progress is not None:
            done = sum(c for _, c, _ in self._layers.values())
            total_bytes = sum(max(c, t) for _, c, t in self._layers.values())
            self._progress.update(self._task, completed=done, total=total_bytes or None)

    def retry(self, what: str, attempt: int, delay: float, reason: str) -> None:
        self.console.print(f"  {what}: retry {attempt} in {delay:.1f}s ({reason})", markup=False)

    def finish(self, push: Push) -> None:
        self._stop()
        sent = sum(c for status, c, _ in self._layers.values() if status == "Pushed")
        self.console.print(
            f"  {push.tag}: {push.digest} ({_size(sent)} sent, verified)", markup=False
        )

    def _stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def close(self) -> None:
        self._stop()
