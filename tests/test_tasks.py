"""The invoke tasks as a whole (buildtools/tasks.py): their own flags' bad input, the in-process
runner the bad-input cases use, and what a shell's pipes do to the console script. Each module's
bad-input cases are beside its tests (tests/fixtures/bad_input.py)."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.fixtures import invoke_cli
from tests.fixtures.bad_input import (
    INVOKE,
    NO_ENGINE,
    REAL_CLI,
    TRAVIS_PR,
    App,
    fails_in_one_line,
    one_error,
    rows,
    whole_rows,
)

# Task flags the tasks check themselves: (case, task args, environment, invoke.yaml extra lines, the
# error line must contain)
ONE_LINE_FAILURES = [
    (
        "a --branch flag with a control character",
        ["version", "--branch", "a\x1b[31mred"],
        {},
        "",
        "--branch 'a\\x1b[31mred' holds a control character",
    ),
    (
        "a stack name Docker refuses",
        ["down", "--name", "a b"],
        {},
        "",
        "--name 'a b' cannot start container names",
    ),
    (
        "a port that is no number",
        ["up", "--port", "abc"],
        {},
        "",
        "--port 'abc' is not a port number",
    ),
]


@pytest.mark.parametrize("row", whole_rows(ONE_LINE_FAILURES))
def test_bad_input_is_one_line_and_a_non_zero_exit(app: App, row: tuple) -> None:
    fails_in_one_line(app, *row)


# The same invocation both ways, one of each kind of outcome (the rows marked real_cli beside
# each module's tests are the kinds these do not show): (case, args, environment, config file
# name and text).
BOTH_WAYS = [
    (
        "a task's one-line error",
        ["version"],
        {"INVOKE_BUILDTOOLS_GIT_UNTRACKED_IS_DIRTY": "x"},
        None,
    ),
    ("a config file invoke would fail on", ["version"], {}, ("invoke.py", "1 / 0\n")),
    (
        "a warning, then the plan",
        ["build", "--dry-run"],
        {**NO_ENGINE, "INVOKE_BUILDTOOLS_APP_DOCKERFILE": "Dockerfile.early"},
        None,
    ),
    ("JSON on stdout", ["build", "--dry-run", "--json"], NO_ENGINE, None),
    ("an unknown task", ["nope"], {}, None),
]


@pytest.mark.parametrize(("args", "env", "config_file"), rows(BOTH_WAYS))
def test_in_process_runs_print_what_the_command_line_prints(
    app: App, args: list[str], env: dict[str, str], config_file: tuple[str, str] | None
) -> None:
    """The in-process runner is only a shortcut: exit code, stdout and stderr are the console
    script's, byte for byte."""
    if config_file is not None:
        (app.path / "invoke.yaml").unlink()
        (app.path / config_file[0]).write_text(config_file[1])
    full = {**app.env, **env}
    real = invoke_cli.real(args, app.path, full)
    inside = invoke_cli.in_process(args, app.path, full)
    assert (inside.returncode, inside.stdout, inside.stderr) == (
        real.returncode,
        real.stdout,
        real.stderr,
    )


def in_bash(app: App, script: str) -> subprocess.CompletedProcess[str]:
    """``script`` run by bash in the app, with no engine: what a shell's pipes and closed
    descriptors do to the console script."""
    return subprocess.run(
        ["bash", "-c", script],
        cwd=app.path,
        env={**app.env, **NO_ENGINE},
        capture_output=True,
        text=True,
        timeout=300,
    )


@REAL_CLI
def test_a_closed_stdout_ends_the_task_quietly(app: App) -> None:
    """15: `invoke build --dry-run --json | head -1`: no BrokenPipeError traceback."""
    done = in_bash(app, f"{INVOKE} build --dry-run --json | head -1; echo rc=${{PIPESTATUS[0]}}")
    assert done.stdout.splitlines() == ["[", "rc=0"], done.stdout
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr


@REAL_CLI
@pytest.mark.parametrize("closed", [">&-", "2>&-"])
def test_a_closed_stdout_or_stderr_is_no_traceback_and_no_stray_line(app: App, closed: str) -> None:
    """`invoke … >&-` crashed flushing a stdout Python had set to None; with `2>&-`, warnings
    went to stdout, into the JSON a script reads. A dirty tree gives the build a warning."""
    app.repo.write("notes.txt", "uncommitted\n")
    done = in_bash(app, f"{INVOKE} build --dry-run --json {closed}; echo rc=$?")
    assert done.stdout.endswith("rc=0\n"), done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    if closed == "2>&-":
        plans = json.loads(done.stdout.removesuffix("rc=0\n"))
        assert [plan["name"] for plan in plans] == ["app", "nginx"]
        assert "warning" not in done.stdout.split("rc=0")[0].split("]")[-1]


@pytest.mark.parametrize(
    ("args", "env", "problem"),
    [
        (["build", "--json"], NO_ENGINE, "no Docker Engine answers at unix:///nonexistent"),
        (["release", "--json", "--dry-run"], TRAVIS_PR, "refusing to release"),
        (["ci", "--json"], {**TRAVIS_PR, **NO_ENGINE}, "no Docker Engine answers at unix:///"),
        (["version", "--format", "json", "--commit", "xyz"], {}, "--commit 'xyz'"),
    ],
)
def test_a_failed_json_task_says_why_in_json_on_stdout(app: App, args, env, problem) -> None:
    """13: `--json` printed nothing on failure: a script read an empty stdout. It gets the
    problem and the fix as an object, the exit status stays non-zero, stderr keeps its line."""
    done = app.invoke(*args, env=env)
    line = one_error(done)
    error = json.loads(done.stdout)["error"]
    assert problem in error["problem"], error
    assert error["fix"] and error["exit_code"] == done.returncode == 1
    assert line == f"error: {error['problem']} (fix: {error['fix']})"


@REAL_CLI
def test_a_full_stdout_is_one_line_and_a_failure_not_a_traceback(app: App) -> None:
    """Hostile pass: `invoke … >/dev/full` ended in an OSError traceback (ENOSPC)."""
    done = in_bash(app, f"{INVOKE} build --dry-run --json >/dev/full; echo rc=$? >&2")
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    assert lines[-1] == "rc=1"
    assert lines[-2] == (
        "error: the task's output could not be written to stdout (No space left on device) "
        "(fix: free space where stdout goes, or send it elsewhere)"
    )
