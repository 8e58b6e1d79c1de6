"""Terminal progress for long work: build steps now, push bytes for releases.

Everything goes to stderr so that stdout stays clean for ``--json`` and other script output.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


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
        how = "[dim]cached[/dim]" if cached else f"[green]{seconds:5.1f}s[/green]"
        self.console.print(f"{escape(self._instruction)}  {how}")

    def output(self, image: str, line: str) -> None:
        if self.verbose:
            self.console.print(f"[dim]{escape(line)}[/dim]")

    def close(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None
