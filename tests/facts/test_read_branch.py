"""Issue 26, case 7: ``--branch`` must agree with git (facts.read, facts.gitinfo.branch_check).

A branch given on the command line is the user's word: refused when git says the commit is not
on it (not reachable from the local branch nor from any ``refs/remotes/*/<branch>``, origin
asked when the checkout does not show it), a warning when git cannot tell. The CI's variables
(Travis's detached HEAD) are the CI's word and stay as they were. Real repositories, cloned
through ``file://`` so that origin is a real remote.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from buildtools.errors import BuildToolsError
from buildtools.facts.buildinfo import Overrides
from buildtools.facts.read import gather
from tests.fixtures.bad_input import TRAVIS_MAIN, App, fails_in_one_line, whole_rows
from tests.fixtures.git import GitRepo


def on_a_feature_branch(repo: GitRepo) -> str:
    """A commit on ``feature`` only (master stays behind it)."""
    repo.branch("feature")
    return repo.commit("feature work")


def test_a_branch_the_commit_is_not_on_is_refused(repo: GitRepo) -> None:
    master = repo.head()
    commit = on_a_feature_branch(repo)
    with pytest.raises(BuildToolsError) as caught:
        gather(repo.path, {}, Overrides(branch="master"))
    error = caught.value
    assert f"--branch 'master': commit {commit[:7]} is not on that branch" in error.problem
    assert f"heads/master at {master[:7]}" in error.problem
    assert "leave out --branch" in error.fix and "\n" not in str(error)


def test_the_branch_the_commit_is_on_is_taken(repo: GitRepo) -> None:
    on_a_feature_branch(repo)
    info, warnings = gather(repo.path, {}, Overrides(branch="feature"))
    assert info.branch == "feature" and warnings == ()
    # An older commit of the branch is on it too (reachable from its tip).
    repo.git("checkout", "-q", "--detach", "master")
    info, _ = gather(repo.path, {}, Overrides(branch="feature"))
    assert info.branch == "feature"


def test_a_remote_tracking_branch_counts(repo: GitRepo, tmp_path: Path) -> None:
    clone = repo.clone(tmp_path / "clone")
    clone.detach()
    clone.git("branch", "-q", "-D", "master")  # only refs/remotes/origin/master is left
    info, warnings = gather(clone.path, {}, Overrides(branch="master"))
    assert info.branch == "master" and warnings == ()


def test_a_branch_the_clone_lacks_is_fetched_from_origin(repo: GitRepo, tmp_path: Path) -> None:
    commit = on_a_feature_branch(repo)
    repo.checkout("master")
    repo.git("merge", "-q", "--ff-only", "feature")  # the feature commit is on master now
    clone = repo.clone(tmp_path / "clone", depth=1, branch="feature")
    clone.git("config", "remote.origin.fetch", "+refs/heads/feature:refs/remotes/origin/feature")
    assert "origin/master" not in clone.git("branch", "-a")
    info, warnings = gather(clone.path, {}, Overrides(branch="master"))
    assert (info.commit, info.branch, warnings) == (commit, "master", ())
    assert clone.git("rev-parse", "refs/remotes/origin/master") == commit


def test_a_branch_nobody_has_is_refused(repo: GitRepo, tmp_path: Path) -> None:
    clone = repo.clone(tmp_path / "clone")
    with pytest.raises(BuildToolsError, match="neither this checkout nor origin has a branch"):
        gather(clone.path, {}, Overrides(branch="release-9"))
    with pytest.raises(BuildToolsError, match="this checkout has no branch release-9"):
        gather(repo.path, {}, Overrides(branch="release-9"))  # no remote: git knows it all


def test_git_that_cannot_tell_is_a_warning_with_the_fetch(repo: GitRepo, tmp_path: Path) -> None:
    on_a_feature_branch(repo)
    clone = repo.clone(tmp_path / "clone", depth=1, branch="feature")
    clone.git("config", "remote.origin.fetch", "+refs/heads/feature:refs/remotes/origin/feature")
    clone.git("remote", "set-url", "origin", f"file://{tmp_path / 'gone'}")  # origin is away
    info, warnings = gather(clone.path, {}, Overrides(branch="master"))
    assert info.branch == "master"
    assert len(warnings) == 1
    assert warnings[0].startswith("git cannot confirm --branch 'master'")
    assert "git fetch origin master" in warnings[0]


@pytest.mark.parametrize("name", ["*", "a..b", "with space", "ends.lock"])
def test_a_name_git_does_not_allow_is_refused(repo: GitRepo, name: str) -> None:
    refs = repo.git("for-each-ref")
    with pytest.raises(BuildToolsError, match="is not a name git allows for a branch"):
        gather(repo.path, {}, Overrides(branch=name))
    assert repo.git("for-each-ref") == refs  # nothing fetched, nothing written


def test_the_ci_word_is_kept_for_a_detached_head(repo: GitRepo, tmp_path: Path) -> None:
    """Travis names the branch in TRAVIS_BRANCH; git alone cannot (detached, shallow): as
    before, the CI's variables are believed, only the command line's --branch is checked."""
    commit = on_a_feature_branch(repo)
    repo.detach()
    info, _ = gather(repo.path, {"TRAVIS": "true", "TRAVIS_BRANCH": "master"})
    assert (info.commit, info.branch) == (commit, "master")


def _feature_commit(app: App) -> dict[str, str]:
    app.repo.branch("feature")
    app.repo.commit("feature work")
    return {}


# Through the real task: (case, task args, environment, invoke.yaml extra lines, error holds)
TASK_FAILURES = [
    (
        "release --branch main from a feature branch",
        ["release", "--dry-run", "--branch", "main"],
        {},
        "",
        "--branch 'main': commit",
    ),
    (
        "version --branch of a branch git does not have",
        ["version", "--branch", "nope"],
        TRAVIS_MAIN,
        "",
        "this checkout has no branch nope",
    ),
]


@pytest.mark.parametrize(
    "row", whole_rows(TASK_FAILURES, real=("release --branch main from a feature branch",))
)
def test_the_tasks_refuse_a_branch_git_contradicts(app: App, row: tuple) -> None:
    _feature_commit(app)
    fails_in_one_line(app, *row)
