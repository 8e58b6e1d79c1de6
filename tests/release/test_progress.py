"""Build and push progress as a user gets it: on stderr only, whatever stderr is."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest

from buildtools.plan.push_order import Push
from buildtools.release import progress

PUSH = Push(
    "app",
    "sha256:" + "1" * 64,
    "registry.example.org:5000",
    "lara/app",
    "registry.example.org:5000/lara/app",
    "1.2.3",
    False,
    "push",
    digest="sha256:" + "d" * 64,
    verified=True,
)


@pytest.fixture(autouse=True)
def log_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pipe as a CI log is: a CI that sets FORCE_COLOR or TTY_COMPATIBLE (for pytest's own
    colours) would make every stream here a terminal."""
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(name, raising=False)


def show_a_build() -> None:
    build = progress.BuildProgress(verbose=False)
    build.step("app", 1, 2, "FROM lara-buildtools/debian:latest")
    build.step_done("app", 1, True, 0.0)
    build.close()
    verbose = progress.BuildProgress(verbose=True)
    verbose.step("app", 2, 2, "RUN echo hello")
    verbose.output("app", "hello")
    verbose.step_done("app", 2, False, 0.4)
    verbose.close()


def show_a_push() -> None:
    push = progress.LineReporter()
    push.start(PUSH)
    push.layer(PUSH, "0123abcd", "Pushed", 1000, 1000)
    push.retry("push 1.2.3", 1, 0.5, "connection reset")
    push.finish(PUSH)
    push.close()


@pytest.mark.parametrize("show", [show_a_build, show_a_push])
@pytest.mark.parametrize("tty_compatible", ["", "1"])
def test_a_closed_stderr_takes_the_progress_and_stdout_gets_none_of_it(
    monkeypatch: pytest.MonkeyPatch, tty_compatible: str, show: Callable[[], None]
) -> None:
    """``invoke build 2>&-`` (Python's ``sys.stderr`` is then None): the progress is dropped;
    printed to stdout instead, it would land in the summary or the output a script reads."""
    if tty_compatible:
        monkeypatch.setenv("TTY_COMPATIBLE", tty_compatible)
    stdout = io.StringIO()
    monkeypatch.setattr("sys.stdout", stdout)
    monkeypatch.setattr("sys.stderr", None)

    show()

    assert stdout.getvalue() == ""


def test_off_a_terminal_stderr_gets_each_line_plain(monkeypatch: pytest.MonkeyPatch) -> None:
    stdout, stderr = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stdout", stdout)
    monkeypatch.setattr("sys.stderr", stderr)

    show_a_build()
    show_a_push()

    assert stdout.getvalue() == ""
    assert stderr.getvalue().splitlines() == [
        "[app] step  1/2  FROM lara-buildtools/debian:latest  cached",
        "hello",
        "[app] step  2/2  RUN echo hello    0.4s",
        "pushing registry.example.org:5000/lara/app:1.2.3",
        "  0123abcd: Pushed",
        "  push 1.2.3: retry 1 in 0.5s (connection reset)",
        f"  1.2.3: {PUSH.digest} (1.0 kB sent, verified)",
    ]


def test_on_a_terminal_the_running_step_shows_its_text_as_written() -> None:
    """The spinner line is the Dockerfile's text: ``:thumbs_up:`` is no emoji there, ``[bold]``
    no style, as in the finished step's line."""
    from rich.console import Console

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=200, color_system=None, emoji=False)
    build = progress.BuildProgress(console)
    instruction = "RUN echo ':thumbs_up: [bold]done[/]'"

    build.step("app", 1, 2, instruction)
    build.step("app", 2, 2, instruction)
    build.close()

    assert f"[app] step  2/2  {instruction}" in out.getvalue(), out.getvalue()
