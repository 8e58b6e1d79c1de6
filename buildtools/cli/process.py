"""The process around a task: exit codes, error lines, signals, pipes, closed descriptors,
``--json`` and where lines go, so that each task in ``tasks.py`` is a few lines.

Kept light: ``tasks.py`` imports it at start-up, before any task runs (no docker, no rich).
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import json
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from invoke.exceptions import Exit

from buildtools.errors import INTERRUPTED, BuildToolsError


def freeze_at_exit() -> None:
    """At exit the interpreter's last garbage collections walk every object the imports made
    (invoke, docker-py, GitPython): ~150 ms, more than a no-op build's engine work. Frozen
    first, they are skipped; the process is ending, and its memory goes back to the system
    with it. atexit handlers (temporary files, logging) run as before, and objects freed by
    reference counts still are. Registered once, however often this is called."""
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def one_line(text: str) -> str:
    """Error text as one plain line: colour codes (from build output) only on a terminal."""
    text = " ".join(text.split("\n"))
    return text if sys.stderr.isatty() else _ANSI.sub("", text)


class _ReaderMayLeave:
    """A stdout or stderr whose reader may stop reading (``invoke build 2>&1 | head -1``): the
    first write that finds the pipe closed sends the rest of the output to /dev/null, and the
    task goes on to its own end, so its exit status is the build's, not a broken pipe's."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        # Why the output could not be written (a full disk), said once the task ends.
        self.failed: OSError | None = None

    def _drain(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as exc:
            self._lost(exc)
        return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            self._lost(exc)

    def _lost(self, exc: OSError) -> None:
        """The reader left (a broken pipe: fine, it has what it wanted) or the output cannot
        be written (ENOSPC with >/dev/full, EIO: said when the task ends); the rest goes to
        /dev/null either way, and the task goes on."""
        if not isinstance(exc, BrokenPipeError):
            self.failed = self.failed or exc
        self._drain()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def _output_outlives_its_reader() -> Iterator[None]:
    """sys.stdout and sys.stderr as :class:`_ReaderMayLeave` for the task, the originals
    after it (their descriptors then point at /dev/null if the reader left)."""
    original = sys.stdout, sys.stderr
    out = _ReaderMayLeave(sys.stdout)
    sys.stdout, sys.stderr = out, _ReaderMayLeave(sys.stderr)
    try:
        yield
        sys.stdout.flush()
    finally:
        sys.stdout, sys.stderr = original
    if out.failed is not None:
        why = out.failed.strerror or out.failed
        raise BuildToolsError(
            f"the task's output could not be written to stdout ({why})",
            "free space where stdout goes, or send it elsewhere",
        )


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM ends a task as Ctrl-C does, so the same cleanup runs and the same line says what
    was left: it is how a CI cancels a job (GitLab, GitHub Actions), how `timeout` and
    `docker stop` end one; by default it kills Python at once, leaving a smoke test's
    containers and network on the engine and no word on a release's state. The previous
    handler comes back afterwards (tasks also run in-process, e.g. in the tests)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def json_error(exc: BuildToolsError) -> str:
    """A failed ``--json`` task's stdout: a script reads the same problem and fix as the one
    line on stderr, as an object it can tell from a result (``"error"`` at the top)."""
    error = {"problem": exc.problem, "fix": exc.fix, "exit_code": exc.exit_code}
    return json.dumps({"error": error}, indent=2)


@contextlib.contextmanager
def reported(as_json: bool = False) -> Iterator[None]:
    """Turn a BuildToolsError into a one-line message and a non-zero exit, no traceback; and
    Ctrl-C (or SIGTERM) into exit 130 with one line (the code that was interrupted says what
    was left). A reader of the output that stopped early (``| head``) does not stop the task:
    the rest of its output goes nowhere and its exit status is its own. ``as_json``: a
    failure is also a JSON object on stdout (:func:`json_error`), never nothing."""
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            # Closed by the caller (`>&-`, `2>&-`): Python then has None there, and a print to
            # a None stderr lands on stdout, in the JSON a script reads. Nowhere, instead.
            setattr(sys, name, open(os.devnull, "w"))  # noqa: SIM115 (the process's own)
    try:
        with _terminate_as_interrupt(), _output_outlives_its_reader():
            yield
            sys.stdout.flush()  # here, not at exit, where a closed pipe is a traceback
    except BuildToolsError as exc:
        if as_json:
            with contextlib.suppress(OSError, ValueError):
                print(json_error(exc), flush=True)
        prefix = "" if exc.exit_code == INTERRUPTED else "error: "
        raise Exit(one_line(f"{prefix}{exc}"), code=exc.exit_code) from None
    except KeyboardInterrupt:
        if as_json:
            with contextlib.suppress(OSError, ValueError):
                print(json_error(BuildToolsError("interrupted", exit_code=INTERRUPTED)), flush=True)
        raise Exit("interrupted", code=INTERRUPTED) from None


def to_stderr(line: str) -> None:
    print(line, file=sys.stderr)


def to_stdout(line: str) -> None:
    print(line)


def warn(line: str) -> None:
    print(f"warning: {line}", file=sys.stderr)


def show(as_json: bool, data: Callable[[], Any], text: Callable[[], str | None]) -> None:
    """A task's result on stdout: ``data()`` as JSON for scripts (``--json``), else
    ``text()`` for people (None: the task has shown it already)."""
    if as_json:
        print(json.dumps(data(), indent=2))
        return
    shown = text()
    if shown is not None:
        print(shown)


def session(*, as_json: bool = False, quiet: bool = False, verbose: bool = False, say=to_stderr):
    """The steps' :class:`~buildtools.release.steps.Session` for a task's output mode: with
    ``--json`` (or ``--quiet``) no progress display, and pushes only counted, not drawn."""
    from buildtools.release import progress
    from buildtools.release.steps import Session

    reporter = progress.QuietReporter() if as_json else progress.LineReporter()
    return Session(say, reporter, warn, build_display=not (as_json or quiet), verbose=verbose)
