"""gitinfo.read against real repositories: what git can and cannot tell about HEAD."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from buildtools.errors import BuildToolsError
from buildtools.facts import gitinfo
from tests.fixtures.bad_input import (
    INVOKE,
    NO_ENGINE,
    REAL_CLI,
    App,
    app_yaml,
    changes_nothing_and_fails_in_one_line,
    whole_rows,
)
from tests.fixtures.git import GitRepo, fast_import_repo, git_env


def test_plain_branch(repo: GitRepo) -> None:
    facts = gitinfo.read(repo.path)
    assert facts.branch == "master"
    assert facts.commit == repo.head()
    assert facts.commit_time == repo.commit_time()
    assert facts.head_tags == ()
    assert (facts.dirty, facts.shallow) == (False, False)
    assert (facts.last_tag, facts.commits_since_tag) == (None, None)
    assert facts.root == repo.path


def test_nested_branch_and_subdirectory(repo: GitRepo) -> None:
    repo.branch("feature/foo")
    repo.write("sub/dir/file.txt", "x")
    repo.commit()
    assert gitinfo.read(repo.path / "sub" / "dir").branch == "feature/foo"


def test_detached_head_has_no_branch(repo: GitRepo) -> None:
    first = repo.head()
    repo.commit()
    repo.detach(first)
    facts = gitinfo.read(repo.path)
    assert facts.branch is None
    assert facts.commit == first


def test_tags_on_head_highest_version_first_and_annotated_peeled(repo: GitRepo) -> None:
    repo.tag("v1.2.3")
    repo.tag("v1.10.0", annotated=True)
    repo.tag("deploy-prod")
    repo.tag("v1.10.0-rc.1")
    facts = gitinfo.read(repo.path)
    assert facts.head_tags == ("v1.10.0", "v1.10.0-rc.1", "v1.2.3", "deploy-prod")
    assert (facts.last_tag, facts.commits_since_tag) in {("v1.10.0", 0), ("v1.2.3", 0)}


def test_last_tag_and_commits_since_ignore_non_version_tags(repo: GitRepo) -> None:
    repo.tag("v1.0.0", annotated=True)
    repo.commit()
    repo.commit()
    repo.tag("nightly")
    repo.tag("v2-beta")  # looks like a version to a glob, but is not one
    repo.commit()
    facts = gitinfo.read(repo.path)
    assert (facts.last_tag, facts.commits_since_tag) == ("v1.0.0", 3)
    assert facts.head_tags == ()
    assert facts.tag_names == {"v1.0.0", "nightly", "v2-beta"}
    assert facts.versions == ("1.0.0",)


def test_versions_from_all_tags_sorted_and_deduplicated(repo: GitRepo) -> None:
    repo.tag("v2.0.0")
    repo.commit()
    repo.tag("1.10.0")
    repo.tag("v1.9.0-rc.1")
    repo.tag("v1.10.0")
    repo.tag("not-a-version")
    assert gitinfo.read(repo.path).versions == ("1.9.0-rc.1", "1.10.0", "2.0.0")


def test_dirty_tree_tracked_change(repo: GitRepo) -> None:
    repo.write("history.txt", "edited\n")
    assert gitinfo.read(repo.path).dirty is True


def test_staged_change_is_dirty(repo: GitRepo) -> None:
    repo.write("new.txt", "x")
    repo.git("add", "new.txt")
    assert gitinfo.read(repo.path).dirty is True


def test_untracked_files_are_dirty_only_when_configured(repo: GitRepo) -> None:
    repo.write("build-output.log", "x")
    assert gitinfo.read(repo.path).dirty is False
    assert gitinfo.read(repo.path, untracked_is_dirty=True).dirty is True


def test_shallow_clone_without_reachable_tag(repo: GitRepo, tmp_path: Path) -> None:
    repo.tag("v1.0.0")
    repo.commit()
    repo.commit()
    clone = repo.clone(tmp_path / "shallow", depth=1)
    facts = gitinfo.read(clone.path)
    assert facts.shallow is True
    assert (facts.last_tag, facts.commits_since_tag) == (None, None)
    assert facts.commit == repo.head()
    assert facts.branch == "master"


def test_travis_style_tag_clone(repo: GitRepo, tmp_path: Path) -> None:
    for _ in range(3):
        repo.commit()
    repo.tag("v1.2.3", annotated=True)
    repo.commit()
    clone = repo.travis_clone(tmp_path / "travis", "v1.2.3", depth=2)
    facts = gitinfo.read(clone.path)
    assert facts.branch is None
    assert facts.head_tags == ("v1.2.3",)
    assert facts.shallow is True


def test_not_a_git_repo_names_the_path_and_the_fix(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(BuildToolsError) as info:
        gitinfo.read(plain)
    message = str(info.value)
    assert str(plain) in message
    assert "--commit" in message
    assert "\n" not in message


def test_missing_path_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(BuildToolsError, match="not in a git checkout"):
        gitinfo.read(tmp_path / "nowhere")


def test_repository_without_commits(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    GitRepo(empty, git_env(tmp_path)).git("init", "-q")
    with pytest.raises(BuildToolsError, match="no commits"):
        gitinfo.read(empty)


def test_fast_on_5000_commits_and_500_tags(tmp_path: Path) -> None:
    big = fast_import_repo(tmp_path / "big", git_env(tmp_path), commits=5000, tag_every=10)
    big.commit("after the last tag")
    gitinfo.read(big.path)  # warm the page cache
    best = min(_timed(lambda: gitinfo.read(big.path)) for _ in range(3))
    facts = gitinfo.read(big.path)
    assert len(facts.tag_names) == 500
    assert (facts.last_tag, facts.commits_since_tag) == ("v0.500.0", 1)
    assert best < 0.5, f"reading git facts took {best:.2f}s"


def _timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def test_a_missing_tag_is_fetched_at_the_clones_own_depth(repo: GitRepo, tmp_path: Path) -> None:
    """A ``--depth 10 --no-tags`` clone (as CI makes) stays 10 deep when the tag it lacks is
    fetched: git describe and the version keep the history they had."""
    for _ in range(20):
        repo.commit()
    repo.tag("v1.1.0")
    dest = tmp_path / "ci"
    repo.git("clone", "-q", "--depth=10", "--no-tags", f"file://{repo.path}", str(dest))
    clone = GitRepo(dest, dict(repo.env))
    assert clone.git("rev-list", "--count", "HEAD") == "10"
    assert clone.git("tag") == ""

    target = gitinfo.fetch_tag(clone.path, "v1.1.0", shallow=True)

    assert target == repo.head()
    assert clone.git("rev-list", "--count", "HEAD") == "10"
    assert clone.git("rev-parse", "--is-shallow-repository") == "true"


def test_a_folder_inside_another_checkout_is_not_described_by_it(repo: GitRepo) -> None:
    app = repo.path / "src" / "lara"
    app.mkdir(parents=True)
    (app / "tasks.py").write_text("")
    with pytest.raises(gitinfo.NotACheckout, match="is not a git checkout of its own") as caught:
        gitinfo.read(app)
    assert f"inside the checkout {repo.path}" in str(caught.value)


def test_a_tracked_folder_of_a_checkout_is_read_from_it(repo: GitRepo) -> None:
    """A monorepo: the app is a folder the checkout tracks."""
    repo.write("apps/lara/tasks.py", "")
    repo.commit("add the app")
    assert gitinfo.read(repo.path / "apps" / "lara").commit == repo.head()


def test_a_tag_that_only_looks_like_a_version_is_skipped(repo: GitRepo) -> None:
    repo.tag("v1.0.0")
    repo.commit()
    repo.tag("1.2.3.4")  # matches the version glob, is no semantic version
    repo.commit()
    assert gitinfo.read(repo.path).last_tag == "v1.0.0"
    assert gitinfo.read(repo.path).commits_since_tag == 2


def test_120000_tags_that_are_no_versions(repo: GitRepo) -> None:
    """One --exclude per such tag overflowed the command line (Argument list too long)."""
    repo.tag("v1.0.0")
    repo.commit()
    head = repo.head()
    # Written as one packed-refs file, as git itself keeps many tags (seconds, not minutes).
    refs = [(f"refs/tags/{n}-nightly", head) for n in range(120_000)]
    refs.append(("refs/tags/v1.0.0", repo.git("rev-parse", "v1.0.0")))
    (repo.path / ".git" / "refs" / "tags" / "v1.0.0").unlink()
    lines = "".join(f"{sha} {ref}\n" for ref, sha in sorted(refs))
    (repo.path / ".git" / "packed-refs").write_text(f"# pack-refs with: sorted \n{lines}")

    facts = gitinfo.read(repo.path)

    assert (facts.last_tag, facts.commits_since_tag) == ("v1.0.0", 1)
    assert len(facts.tag_names) == 120_001


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a checkout to another user needs root")
def test_a_checkout_owned_by_another_user_names_safe_directory(
    repo: GitRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CI container running as root on a checkout mounted from the host: git refuses it."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)  # no safe.directory of the machine's
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for path in [repo.path, *repo.path.rglob("*")]:
        os.lchown(path, 12345, 12345)
    with pytest.raises(BuildToolsError, match="owned by another user") as caught:
        gitinfo.read(repo.path)
    assert f"git config --global --add safe.directory {repo.path}" in str(caught.value)
    assert "no commits" not in str(caught.value)


def test_a_bare_repository_says_so(repo: GitRepo, tmp_path: Path) -> None:
    bare = tmp_path / "bare.git"
    repo.git("clone", "-q", "--bare", str(repo.path), str(bare))
    with pytest.raises(BuildToolsError, match="is a bare git repository") as caught:
        gitinfo.read(bare)
    assert "fsck" not in str(caught.value)


def test_git_not_installed_is_one_line_naming_the_fix(
    repo: GitRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GitPython alone refused to be imported (a 30-line ImportError), then its first command
    was a traceback: now the reader says it in one line, and --commit is the way around."""
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH without git
    with pytest.raises(gitinfo.NotACheckout) as failure:
        gitinfo.read(repo.path)
    assert failure.value.problem == "git is not installed (no git command on PATH)"
    assert "apt-get install git" in failure.value.fix


def test_the_cli_without_git_prints_one_line_and_fails(repo: GitRepo, tmp_path: Path) -> None:
    """The console script, with only the venv (python, invoke) on PATH: no traceback."""
    venv_bin = Path(sys.executable).parent
    invoke = venv_bin / "invoke"
    repo.write("tasks.py", "from buildtools.tasks import ns  # noqa: F401\n")
    env = {"HOME": str(tmp_path), "PATH": str(venv_bin)}
    done = subprocess.run(
        [str(invoke), "version"], cwd=repo.path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "error: git is not installed (no git command on PATH) (fix: install git (Debian: "
        "apt-get install git), or pass --commit (with --branch or --tag) to build without git)"
    ]


# --- bad input (tests/fixtures/bad_input.py) ---

AS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="giving a checkout away needs root")


def _inside_another_checkout(app: App) -> dict[str, str]:
    inner = app.path / "src" / "lara"
    inner.mkdir(parents=True)
    (inner / "tasks.py").write_text("from buildtools.tasks import ns  # noqa: F401\n")
    (inner / "invoke.yaml").write_text(app_yaml(app.name))
    return {"CWD": str(inner)}


def _bare_clone(app: App) -> dict[str, str]:
    bare = app.path.parent / "bare.git"
    app.repo.git("clone", "-q", "--bare", str(app.path), str(bare))
    return {"INVOKE_BUILDTOOLS_REPO": str(bare)}


def _owned_by_another_user(app: App) -> dict[str, str]:
    for path in [app.path, *app.path.rglob("*")]:
        os.lchown(path, 12345, 12345)
    return {}


# Issue 18: checkouts git cannot build from. Each row changes nothing (tests/fixtures/bad_input.py):
# (case, set-up (returns extra env; CWD runs the task elsewhere, {OLD} is put into the args),
#  task args, environment, invoke.yaml extra lines, the error line holds, it must not hold)
INTEGRITY_FAILURES = [
    pytest.param(
        "4: an app folder inside another repository",
        _inside_another_checkout,
        ["release", "--dry-run"],
        {},
        "",
        "is not a git checkout of its own: it is inside the checkout",
        None,
        marks=REAL_CLI,
    ),
    pytest.param(
        "16: a checkout owned by another user",
        _owned_by_another_user,
        ["version"],
        {},
        "",
        "it is owned by another user (git's safe.directory check) (fix: if you trust it: git "
        "config --global --add safe.directory",
        "no commits",
        marks=[AS_ROOT, REAL_CLI],
    ),
    (
        "16: a bare repository",
        _bare_clone,
        ["version"],
        {},
        "",
        "is a bare git repository: it has no working tree to build",
        "fsck",
    ),
]


@pytest.mark.parametrize("row", whole_rows(INTEGRITY_FAILURES))
def test_integrity_failures_are_one_line_and_change_nothing(app: App, row: tuple) -> None:
    changes_nothing_and_fails_in_one_line(app, *row)


@REAL_CLI
def test_a_tag_missing_from_a_shallow_clone_keeps_the_clones_depth(app: App) -> None:
    """8: a `--depth 10 --no-tags` clone (as CI makes) stays 10 deep after the tag is fetched."""
    for n in range(15):
        app.repo.commit(f"work {n}")
    app.repo.tag("v1.1.0")
    dest = app.path.parent / "ci-clone"
    app.repo.git("clone", "-q", "--depth=10", "--no-tags", f"file://{app.path}", str(dest))
    clone = GitRepo(dest, dict(app.repo.env))
    assert clone.git("rev-list", "--count", "HEAD") == "10"
    env = {"TRAVIS": "true", "TRAVIS_TAG": "v1.1.0", "TRAVIS_BRANCH": "v1.1.0"}
    done = subprocess.run(
        [str(INVOKE), "version", "--format", "json"],
        cwd=dest,
        env={**app.env, **NO_ENGINE, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["version"] == "1.1.0"
    assert clone.git("rev-list", "--count", "HEAD") == "10"
