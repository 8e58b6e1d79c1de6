"""`invoke version` as users and CI scripts run it: real git, CI variables, from the project
root. The Travis tag build runs the console script in a child process; the other cases run
invoke's Program inside the test process (tests/fixtures/invoke_cli.py), which prints the same
and saves a Python start-up per case."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.fixtures import invoke_cli
from tests.fixtures.git import GitRepo

ROOT = Path(__file__).resolve().parents[1]


def run_version(
    repo: Path, *args: str, real_cli: bool = False, **env: str
) -> subprocess.CompletedProcess[str]:
    """``invoke version`` from the project root, on ``repo``, with only the given CI variables."""
    clean = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    clean["INVOKE_BUILDTOOLS_REPO"] = str(repo)
    return invoke_cli.run(["version", *args], ROOT, {**clean, **env}, real_cli=real_cli)


def test_travis_tag_build_reports_the_tag_not_a_branch(repo: GitRepo, tmp_path: Path) -> None:
    repo.commit()
    repo.tag("v1.2.3", annotated=True)
    repo.commit("after the release")
    clone = repo.travis_clone(tmp_path / "travis", "v1.2.3")
    sha = clone.head()
    travis = {
        "CI": "true",
        "TRAVIS": "true",
        "TRAVIS_BRANCH": "v1.2.3",
        "TRAVIS_TAG": "v1.2.3",
        "TRAVIS_PULL_REQUEST": "false",
        "TRAVIS_PULL_REQUEST_BRANCH": "",
        "TRAVIS_COMMIT": sha,
        "TRAVIS_EVENT_TYPE": "push",
        "TRAVIS_BUILD_NUMBER": "57",
        "TRAVIS_BUILD_WEB_URL": "https://app.travis-ci.com/github/org/lara/builds/57",
    }
    result = run_version(clone.path, "--format", "json", real_cli=True, **travis)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["tag"] == "v1.2.3"
    assert data["branch"] is None
    assert data["version"] == "1.2.3"
    assert data["commit"] == sha
    assert data["ci"] == "travis"
    assert data["build_number"] == "57"
    assert data["image_tags"] == ["1.2.3", f"sha-{sha[:7]}", "1.2", "1", "latest"]
    assert "v1.2.3" not in data["image_tags"]


def test_local_branch_yaml(repo: GitRepo) -> None:
    repo.branch("feature/foo")
    result = run_version(repo.path)
    assert result.returncode == 0, result.stderr
    data = yaml.safe_load(result.stdout)
    sha = repo.head()[:7]
    assert data["branch"] == "feature/foo"
    assert data["image_tags"] == [f"sha-{sha}", "feature-foo"]
    assert data["build_date"] == "2023-11-14T22:14:20Z"
    assert "tag feature-foo (floating): branch feature/foo" in result.stderr


def test_overrides_and_env_format(repo: GitRepo) -> None:
    repo.tag("v2.0.0")
    result = run_version(repo.path, "--format", "env", "--branch", "master", "--tag", "v2.0.0")
    assert result.returncode == 0, result.stderr
    assert "LARA_TAG=v2.0.0" in result.stdout.splitlines()
    sha = repo.head()[:7]
    assert f"LARA_IMAGE_TAGS=2.0.0,sha-{sha},2.0,2,latest" in result.stdout.splitlines()


def test_without_git_when_commit_is_given(tmp_path: Path) -> None:
    sha = "abcdef0123456789abcdef0123456789abcdef01"
    result = run_version(tmp_path, "-f", "json", "--commit", sha, "--branch", "master")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["image_tags"] == ["sha-abcdef0", "master", "edge"]


@pytest.mark.parametrize(
    "args, env, message",
    [
        (["--format", "xml"], {}, "unknown format 'xml'"),
        ([], {"SOURCE_DATE_EPOCH": "last tuesday"}, "SOURCE_DATE_EPOCH='last tuesday'"),
        ([], {"NOT_A_REPO": "1"}, "is not in a git checkout"),
        (["--commit", "not-hex"], {}, "not a commit hash"),
    ],
)
def test_bad_input_is_one_line_and_fails(
    repo: GitRepo, tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    path = tmp_path / "plain" if env.pop("NOT_A_REPO", None) else repo.path
    path.mkdir(exist_ok=True)
    result = run_version(path, *args, **env)
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in result.stderr
