"""What a build is told instead of what git and the CI say (--commit, --tag, SOURCE_DATE_EPOCH):
used where it is true of the checkout, refused in one line where it is not.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from buildtools.errors import BuildToolsError
from buildtools.facts.buildinfo import Overrides
from buildtools.facts.read import gather
from tests.fixtures.build_facts import collect
from tests.fixtures.git import GitRepo


def test_source_date_epoch_wins(repo: GitRepo) -> None:
    info = collect(repo.path, {"SOURCE_DATE_EPOCH": "86400"})
    assert info.build_date == "1970-01-02T00:00:00Z"


@pytest.mark.parametrize("value", ["yesterday", "1.5", "-1", "0x10", "²", "99999999999999999999"])
def test_malformed_source_date_epoch(repo: GitRepo, value: str) -> None:
    with pytest.raises(BuildToolsError, match="SOURCE_DATE_EPOCH"):
        collect(repo.path, {"SOURCE_DATE_EPOCH": value})


def test_not_a_git_repo_without_commit_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(BuildToolsError, match="not in a git checkout"):
        collect(tmp_path, {})


def test_not_a_git_repo_with_commit_override_works(tmp_path: Path) -> None:
    sha = "abcdef0123456789abcdef0123456789abcdef01"
    overrides = Overrides(branch="master", commit=sha.upper())
    info = collect(tmp_path, {"SOURCE_DATE_EPOCH": "0"}, overrides)
    assert (info.commit, info.short_commit, info.branch) == (sha, "abcdef0", "master")
    assert info.version == "0.0.0-master.gabcdef0"
    assert info.build_date == "1970-01-01T00:00:00Z"
    assert (info.dirty, info.known_versions) == (False, ())
    _, warnings = gather(tmp_path, {}, overrides)
    assert "not in a git checkout" in warnings[0]


def test_short_commit_override_is_expanded_from_git(repo: GitRepo) -> None:
    info = collect(repo.path, {}, Overrides(commit=repo.head()[:8]))
    assert info.commit == repo.head()
    assert info.branch == "master"


def test_commit_other_than_head_is_refused_inside_a_checkout(repo: GitRepo) -> None:
    """The images are built from the working tree: labelling them as another commit would
    release HEAD's (maybe dirty) code under that commit's name."""
    old = repo.head()
    repo.commit()
    repo.write("history.txt", "dirty\n")
    with pytest.raises(BuildToolsError, match=f"--commit {old[:12]} is not the checkout's HEAD"):
        gather(repo.path, {}, Overrides(commit=old, branch="main"))


def test_tag_override_must_be_in_git_at_head(repo: GitRepo) -> None:
    with pytest.raises(BuildToolsError, match=r"--tag names tag 'v9\.9\.9', but that tag does not"):
        gather(repo.path, {}, Overrides(tag="v9.9.9"))
    repo.tag("v1.0.0")
    repo.commit()
    with pytest.raises(BuildToolsError, match="points at") as caught:
        gather(repo.path, {}, Overrides(tag="v1.0.0"))
    assert "push the tag" not in str(caught.value)


@pytest.mark.parametrize("commit", ["xyz1234", "abc", "12345678-"])
def test_bad_commit_override(repo: GitRepo, commit: str) -> None:
    with pytest.raises(BuildToolsError, match="not a commit hash"):
        collect(repo.path, {}, Overrides(commit=commit))
