"""Terminal progress for long work, in one place: build steps and push bytes.

Everything goes to stderr so that stdout stays clean for ``--json`` and other script output.
Off a terminal (a CI log, a pipe) the lines are plain prints and rich is never imported: it
is a twentieth of a no-op build's time, and only a terminal shows what it draws.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from buildtools.plan.push_order import Push

if TYPE_CHECKING:
    from rich.console import Console


def is_terminal(stream: TextIO | None) -> bool:
    """Whether rich would treat ``stream`` as a terminal, by its own rules (``TTY_COMPATIBLE``,
    then ``FORCE_COLOR``, then ``isatty``), asked without importing it."""
    compatible = os.environ.get("TTY_COMPATIBLE", "")
    if compatible in ("0", "1"):
        return compatible == "1"
    if "FORCE_COLOR" in os.environ:
        return os.environ["FORCE_COLOR"] != ""
    return isatty(stream)


def isatty(stream: TextIO | None) -> bool:
    """Whether ``stream`` really is a terminal (not only said to be one by the environment)."""
    check = getattr(stream, "isatty", None)
    try:
        return bool(check and check())
    except ValueError:  # a closed stream
        return False


def _print_line(line: str, stream: TextIO | None) -> None:
    """One plain line on ``stream``, at once. A closed stderr (``2>&-``: Python's ``sys.stderr``
    is None) takes nothing: ``print`` would send the line to stdout, into what a script reads."""
    if stream is not None:
        print(line, file=stream, flush=True)


def stderr_console() -> Console:
    """Build steps as written: ``:100:`` in a RUN line is text, not an emoji."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


class BuildProgress:
    """One line per build step: number, instruction, and whether it came from cache."""

    def __init__(self, console: Console | None = None, verbose: bool = False) -> None:
        terminal = console.is_terminal if console is not None else is_terminal(sys.stderr)
        # A rich console on a terminal only; elsewhere plain lines on its file (or stderr).
        self.console = (console or stderr_console()) if terminal else None
        self.stream = console.file if console is not None else sys.stderr
        self.verbose = verbose
        self._status: Any = None
        self._instruction = ""

    def step(self, image: str, number: int, total: int, instruction: str) -> None:
        short = " ".join(instruction.split())
        short = short if len(short) <= 70 else short[:67] + "..."
        self._instruction = f"[{image}] step {number:>2}/{total}  {short}"
        if self.verbose or self.console is None:
            return
        from rich.text import Text

        # A Text, not a string: the spinner would read markup and emoji codes from a string
        # (the console's emoji=False does not reach it), so `:thumbs_up:` in a RUN line was 👍.
        if self._status is None:
            self._status = self.console.status(Text(self._instruction))
            self._status.start()
        else:
            self._status.update(Text(self._instruction))

    def step_done(self, image: str, number: int, cached: bool, seconds: float) -> None:
        if self.console is None:
            how = "cached" if cached else f"{seconds:5.1f}s"
            _print_line(f"{self._instruction}  {how}", self.stream)
            return
        from rich.markup import escape

        how = "[dim]cached[/dim]" if cached else f"[green]{seconds:5.1f}s[/green]"
        self.console.print(f"{escape(self._instruction)}  {how}")

    def output(self, image: str, line: str) -> None:
        if not self.verbose:
            return
        if self.console is None:
            _print_line(line, self.stream)
            return
        from rich.markup import escape

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

    def __init__(self, stream: TextIO | None = None, terminal: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr  # None: stderr is closed
        self.terminal = is_terminal(self.stream) if terminal is None else terminal
        self.console: Console | None = None
        if self.terminal:
            from rich.console import Console

            self.console = Console(  # stderr=True: a closed stderr is rich's null file, not stdout
                file=self.stream,
                stderr=True,
                highlight=False,
                soft_wrap=True,
                emoji=False,
                force_terminal=True,
            )
        self._layers: dict[str, tuple[str, int, int]] = {}
        self._progress: Any = None
        self._task: Any = None

    def _print(self, line: str) -> None:
        if self.console is not None:
            self.console.print(line, markup=False)
        else:
            _print_line(line, self.stream)

    def start(self, push: Push) -> None:
        self._layers = {}
        self._print(f"pushing {push.reference}")
        if self.console is not None:
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
            self._print(f"  {layer}: {status}")
        if self._progress is not None:
            done = sum(c for _, c, _ in self._layers.values())
            total_bytes = sum(max(c, t) for _, c, t in self._layers.values())
            self._progress.update(self._task, completed=done, total=total_bytes or None)

    def retry(self, what: str, attempt: int, delay: float, reason: str) -> None:
        self._print(f"  {what}: retry {attempt} in {delay:.1f}s ({reason})")

    def finish(self, push: Push) -> None:
        self._stop()
        sent = sum(c for status, c, _ in self._layers.values() if status == "Pushed")
        self._print(f"  {push.tag}: {push.digest} ({_size(sent)} sent, verified)")

    def _stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def close(self) -> None:
        self._stop()
