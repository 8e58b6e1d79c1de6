"""What a build is of, read from git, the CI's variables and the flags (facts.read): bad
input as a hostile new user would give it, through the real tasks."""

from __future__ import annotations

import dataclasses
import functools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from buildtools.config import schema
from buildtools.errors import BuildToolsError
from buildtools.facts import gitinfo, read
from buildtools.plan import metadata, tags
from tests.fixtures.bad_input import (
    ROOT,
    TEXT,
    TRAVIS_MAIN,
    App,
    changes_nothing_and_fails_in_one_line,
    fails_in_one_line,
    nothing,
    whole_rows,
)
from tests.fixtures.git import GitRepo, git_env, init_repo

# --- bad input (tests/fixtures/bad_input.py) ---

# A CI or git ref that is not the checkout's: (case, task args, environment, invoke.yaml extra
# lines, the error line must contain)
ONE_LINE_FAILURES = [
    (
        "a CI tag git does not have",
        ["release", "--dry-run"],
        {"TRAVIS": "true", "TRAVIS_TAG": "v9.9.9", "TRAVIS_BRANCH": "v9.9.9"},
        "",
        "TRAVIS_TAG names tag 'v9.9.9', but that tag does not exist in git",
    ),
    (
        "a GitHub tag ref git does not have",
        ["version"],
        {"GITHUB_ACTIONS": "true", "GITHUB_REF": "refs/tags/v8.0.0"},
        "",
        "GITHUB_REF names tag 'v8.0.0'",
    ),
    (
        "a CI commit that is not the checkout",
        ["release", "--dry-run"],
        {"TRAVIS": "true", "TRAVIS_BRANCH": "main", "TRAVIS_COMMIT": "0123abc" * 5 + "01234"},
        "",
        "TRAVIS_COMMIT says commit 0123abc0123a, but the checkout is at",
    ),
]


@pytest.mark.parametrize("row", whole_rows(ONE_LINE_FAILURES))
def test_bad_input_is_one_line_and_a_non_zero_exit(app: App, row: tuple) -> None:
    fails_in_one_line(app, *row)


def _older_commit_dirty(app: App) -> dict[str, str]:
    old = app.repo.head()
    app.repo.commit("newer")
    app.repo.write("history.txt", "uncommitted\n")
    return {"OLD": old}


def _tag_elsewhere(app: App) -> dict[str, str]:
    app.repo.tag("v1.0.0")
    app.repo.commit("after the release")
    return {}


# Issue 18, release integrity: --commit/--tag and CI refs that git contradicts. Each row changes
# nothing (tests/fixtures/bad_input.py):
# (case, set-up (returns extra env; CWD runs the task elsewhere, {OLD} is put into the args),
#  task args, environment, invoke.yaml extra lines, the error line holds, it must not hold)
INTEGRITY_FAILURES = [
    (
        "3: --commit other than HEAD, on a dirty tree",
        _older_commit_dirty,
        ["release", "--dry-run", "--branch", "main", "--commit", "{OLD}"],
        {},
        "",
        "is not the checkout's HEAD",
        "--commit to build",
    ),
    (
        "3: --tag git does not have",
        nothing,
        ["release", "--dry-run", "--tag", "v9.9.9"],
        {},
        "",
        "--tag names tag 'v9.9.9', but that tag does not exist in git",
        "pass --commit",
    ),
    (
        "3: a CI commit that is not the checkout names no bypass",
        nothing,
        ["version"],
        {**TRAVIS_MAIN, "TRAVIS_COMMIT": "0123abc" * 5 + "01234"},
        "",
        "TRAVIS_COMMIT says commit 0123abc0123a, but the checkout is at",
        "--commit",
    ),
    (
        "16: a CI tag that exists elsewhere is not told to be pushed",
        _tag_elsewhere,
        ["version"],
        {"TRAVIS": "true", "TRAVIS_TAG": "v1.0.0", "TRAVIS_BRANCH": "v1.0.0"},
        "",
        "TRAVIS_TAG names tag 'v1.0.0', but that tag points at",
        "push the tag",
    ),
]


@pytest.mark.parametrize("row", whole_rows(INTEGRITY_FAILURES))
def test_integrity_failures_are_one_line_and_change_nothing(app: App, row: tuple) -> None:
    changes_nothing_and_fails_in_one_line(app, *row)


def test_two_release_tags_on_one_commit_say_which_is_built(app: App) -> None:
    app.repo.tag("v1.0.0")
    app.repo.tag("v1.0.1")
    done = app.invoke("version", "--format", "json")
    assert done.returncode == 0 and '"version": "1.0.1"' in done.stdout
    assert "carries the release tags v1.0.1, v1.0.0: building v1.0.1" in done.stderr


# --- any CI environment: a build or one line, never a traceback ---

CI_VARIABLES = (
    "CI",
    "TRAVIS",
    "TRAVIS_BRANCH",
    "TRAVIS_TAG",
    "TRAVIS_COMMIT",
    "TRAVIS_PULL_REQUEST",
    "TRAVIS_PULL_REQUEST_BRANCH",
    "TRAVIS_BUILD_NUMBER",
    "GITHUB_ACTIONS",
    "GITHUB_REF",
    "GITHUB_SHA",
    "GITHUB_HEAD_REF",
    "GITLAB_CI",
    "CI_COMMIT_TAG",
    "CI_COMMIT_BRANCH",
    "CI_COMMIT_SHA",
    "CI_MERGE_REQUEST_IID",
    "SOURCE_BRANCH",
    "SOURCE_COMMIT",
    "SOURCE_DATE_EPOCH",
)


@pytest.fixture(scope="module")
def one_commit(tmp_path_factory: pytest.TempPathFactory) -> GitRepo:
    base = tmp_path_factory.mktemp("prop")
    repo = init_repo(base / "repo", git_env(base / "home"))
    repo.tag("v1.0.0")
    return repo


@pytest.fixture
def git_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The checkout's git facts read once for all examples (it does not change between them;
    the environment is what varies): 150 examples of six git processes were 4 s of CPU."""
    cached = functools.cache(gitinfo.read)
    monkeypatch.setattr(gitinfo, "read", cached)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(env=st.dictionaries(st.sampled_from(CI_VARIABLES), TEXT, max_size=6))
def test_any_ci_environment_is_a_build_or_one_line(
    one_commit: GitRepo, git_read_once: None, env: dict
) -> None:
    env = {**env, "TRAVIS": env.get("TRAVIS", "true")} if "TRAVIS_TAG" in env else env
    try:
        meta = metadata.of_run(
            read.Run.read(
                dataclasses.replace(
                    schema.load(schema.merged({}), ROOT), repo=one_commit.path.resolve()
                ),
                env,
            )
        )
    except BuildToolsError as exc:
        assert "\n" not in str(exc) and exc.problem
        return
    assert meta.info.commit and all(tags.VALID_TAG.match(t.name) for t in meta.tags)
