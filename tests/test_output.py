"""The build summary as a CI log or a pipe gets it: nothing a user copies is cut or wrapped."""

from __future__ import annotations

import io

import pytest

from buildtools import config, output
from buildtools.buildinfo import BuildInfo
from buildtools.images import BuiltImage
from buildtools.metadata import plan
from tests.fixtures.project import ROOT

SHA = "0123abc4567890def0123abc4567890def012345"


def test_summary_off_a_terminal_never_wraps_a_reference_or_a_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    branch = "feature/" + "a-rather-long-branch-name-" * 3
    meta = plan(
        config.load(config.merged({}), ROOT),
        BuildInfo(version="0.0.0", commit=SHA, branch=branch),
    )
    app_ref = f"registry.example.org:5000/lara/app:{meta.tags[-1].name}"
    built = [BuiltImage("app", "sha256:" + "f" * 64, (app_ref,), 10**8, 20, 19, 3.2)]
    out = io.StringIO()  # not a terminal, as `invoke build | cat` or a CI log
    monkeypatch.setattr("sys.stdout", out)

    output.build_summary(built, meta)

    lines = out.getvalue().splitlines()
    command = f"docker run --rm {app_ref} cat /lara/config/version.yml"
    assert any(line.endswith(command) for line in lines), out.getvalue()
    assert any(app_ref in line for line in lines if "docker run" not in line), out.getvalue()
