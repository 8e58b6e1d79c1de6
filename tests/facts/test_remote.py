"""facts.remote: the remote's branches (git ls-remote), each one's last commits (the clone)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from buildtools.errors import BuildToolsError
from buildtools.facts import remote
from tests.fixtures.git import BASE_TIME, git_env, init_repo


def test_branches_deleted_on_the_remote_are_gone_and_each_keeps_its_last_commits(
    tmp_path: Path,
) -> None:
    env = git_env(tmp_path / "home")
    origin = init_repo(tmp_path / "origin", env)
    master = [origin.commit(f"m{n}") for n in range(3)]
    origin.branch("old")
    old = origin.commit("old work")
    origin.checkout("master")
    clone = origin.clone(tmp_path / "clone")
    origin.git("branch", "-D", "old")

    found = remote.read(clone.path, "origin", keep=2)

    assert found.branches == {"master": (master[2], master[1])}
    # The clone still knows the deleted branch's commit: it is dated, by git.
    assert found.dates[old[:7]] == dt.datetime.fromtimestamp(clone.commit_time(old), dt.UTC)
    assert found.dates[master[0][:7]].timestamp() > BASE_TIME


def test_a_branch_head_the_clone_lacks_is_one_line_saying_to_fetch(tmp_path: Path) -> None:
    env = git_env(tmp_path / "home")
    origin = init_repo(tmp_path / "origin", env)
    clone = origin.clone(tmp_path / "clone")
    origin.branch("feature")
    head = origin.commit("not fetched yet")

    with pytest.raises(BuildToolsError) as caught:
        remote.read(clone.path, "origin", keep=20)
    assert str(caught.value) == (
        f"branch feature of origin is at {head[:7]}, which this clone does not have "
        "(fix: fetch it first (git fetch origin; in CI a full clone: fetch-depth: 0))"
    )


def test_a_remote_that_does_not_answer_is_one_line(tmp_path: Path) -> None:
    env = git_env(tmp_path / "home")
    clone = init_repo(tmp_path / "clone", env)
    clone.git("remote", "add", "origin", str(tmp_path / "nowhere"))

    with pytest.raises(BuildToolsError) as caught:
        remote.read(clone.path, "origin", keep=20)
    assert caught.value.problem.startswith(f"git ls-remote failed in {clone.path}:")
    assert "buildtools.prune.remote" in caught.value.fix
