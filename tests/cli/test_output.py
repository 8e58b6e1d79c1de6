"""The build summary as a CI log or a pipe gets it: nothing a user copies is cut or wrapped."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from buildtools.cli import output
from buildtools.config import schema
from buildtools.engine.build_spec import BuiltImage
from buildtools.facts.buildinfo import BuildInfo
from buildtools.plan.metadata import Metadata, of_info
from tests.fixtures.project import ROOT

SHA = "0123abc4567890def0123abc4567890def012345"


@pytest.fixture(autouse=True)
def log_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pipe as a CI log is: a CI that sets FORCE_COLOR or TTY_COMPATIBLE (for pytest's own
    colours) would make every stream here a terminal, by rich's rules and ours."""
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(name, raising=False)


def long_branch_build() -> tuple[Metadata, str, list[BuiltImage]]:
    """A build of a long branch name: its image reference is longer than 80 columns."""
    branch = "feature/" + "a-rather-long-branch-name-" * 3
    meta = of_info(
        schema.load(schema.merged({}), ROOT),
        BuildInfo(version="0.0.0", commit=SHA, branch=branch),
    )
    app_ref = f"registry.example.org:5000/lara/app:{meta.tags[-1].name}"
    return meta, app_ref, [BuiltImage("app", "sha256:" + "f" * 64, (app_ref,), 10**8, 20, 19, 3.2)]


def test_summary_off_a_terminal_never_wraps_a_reference_or_a_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    meta, app_ref, built = long_branch_build()
    out = io.StringIO()  # not a terminal, as `invoke build | cat` or a CI log
    monkeypatch.setattr("sys.stdout", out)

    output.build_summary(built, meta)

    lines = out.getvalue().splitlines()
    command = f"docker run --rm {app_ref} cat /lara/config/version.yml"
    assert any(line.endswith(command) for line in lines), out.getvalue()
    assert any(app_ref in line for line in lines if "docker run" not in line), out.getvalue()


@pytest.mark.parametrize("variable", ["FORCE_COLOR", "TTY_COMPATIBLE"])
def test_a_ci_log_that_asks_for_colour_gets_references_and_the_command_whole(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    """FORCE_COLOR=1 (or TTY_COMPATIBLE=1) in a CI job makes its log a terminal, for colour:
    it has no width, and rich's default 80 columns would fold a reference over lines."""
    monkeypatch.setenv(variable, "1")
    meta, app_ref, built = long_branch_build()
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)

    output.build_summary(built, meta)

    shown = out.getvalue()
    assert "\x1b[" in shown, "a log that asks for colour gets it"
    assert f"docker run --rm {app_ref} cat /lara/config/version.yml" in shown, shown
    assert any(app_ref in line for line in shown.splitlines() if "docker run" not in line), shown


def test_off_a_terminal_the_summary_is_plain_columns_and_rich_is_never_imported() -> None:
    """A CI log gets aligned columns (a tag per line), and the no-op build does not pay for
    rich's import, which only a terminal uses."""
    script = (
        "import sys\n"
        "from buildtools.cli import output\n"
        "from buildtools.engine.build_spec import BuiltImage\n"
        "from buildtools.plan.metadata import Metadata\n"
        "from buildtools.facts.buildinfo import BuildInfo\n"
        f"info = BuildInfo(version='1.2.3', commit={SHA!r})\n"
        "built = [BuiltImage('app', 'sha256:' + 'a' * 64, ('lara/app:1.2.3', 'lara/app:latest'),"
        " 161.9e6, 25, 25, 0.2)]\n"
        "output.build_summary(built, Metadata(info=info, tags=(), labels={}, warnings=()))\n"
        "print('rich imported' if any(m.split('.')[0] == 'rich' for m in sys.modules) else '')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert done.stdout.splitlines() == [
        "Built 1.2.3 (0123abc)",
        "image  tags             id            size      from cache   time",
        "app    lara/app:1.2.3   aaaaaaaaaaaa  161.9 MB  25/25 steps  0.2s",
        "       lara/app:latest",
        "version.yml:  docker run --rm lara/app:1.2.3 cat /lara/config/version.yml",
        "",
    ]


def test_on_a_terminal_rich_draws_the_table() -> None:
    from rich.console import Console

    meta = of_info(schema.load(schema.merged({}), ROOT), BuildInfo(version="1.2.3", commit=SHA))
    built = [BuiltImage("app", "sha256:" + "a" * 64, ("lara/app:1.2.3",), 10**8, 20, 19, 3.2)]
    out = io.StringIO()
    output.build_summary(
        built, meta, Console(file=out, force_terminal=True, width=120, color_system=None)
    )
    assert "┃ image" in out.getvalue() and "19/20 steps" in out.getvalue()
