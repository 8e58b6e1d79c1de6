"""Names that are no Docker tag as they are: branches and tags sanitized, shortened with a hash,
given a prefix saying their kind where they would pose as another kind, or refused in one line
before anything is built.
"""

from __future__ import annotations

import json

import pytest

from buildtools.errors import BuildToolsError
from buildtools.plan.tags import VALID_TAG, TagPolicy, choose, prefixed, sanitize
from tests.fixtures.bad_input import (
    NO_ENGINE,
    App,
    app_yaml,
    changes_nothing_and_fails_in_one_line,
    row_id,
    whole_rows,
)
from tests.fixtures.tag_policy import DOCKER_TAG, compute, info, names


@pytest.mark.parametrize(
    "name, expected",
    [
        ("master", "master"),
        ("feature/foo", "feature-foo"),
        ("a//b\\\\c", "a-b-c"),
        ("-leading", "leading"),
        (".hidden", "hidden"),
        ("_ok", "_ok"),
        ("trailing/", "trailing"),
        ("UPPER.case_1", "UPPER.case_1"),
        ("x" * 128, "x" * 128),
    ],
)
def test_sanitize(name: str, expected: str) -> None:
    assert sanitize(name) == expected


def test_sanitize_is_deterministic_for_long_names() -> None:
    name = "x" * 129
    assert sanitize(name) == sanitize(name)
    assert len(sanitize(name)) == 128
    assert sanitize(name) != "x" * 128


@pytest.mark.parametrize("name", ["", "///", "..", "-.-", "…", "🚀"])
def test_sanitize_refuses_names_without_any_valid_character(name: str) -> None:
    with pytest.raises(BuildToolsError, match="cannot be made into a Docker tag"):
        sanitize(name)


def test_a_branch_named_like_another_branchs_extra_tag_is_prefixed() -> None:
    extra = {"master": ["edge", "nightly"]}
    assert names(compute(info(branch="nightly"), extra=extra)) == ["sha-0123abc", "branch-nightly"]
    assert names(compute(info(branch="master"), extra={"master": ["master", "edge"]})) == [
        "sha-0123abc",
        "master",
        "edge",
    ]


def test_a_custom_sha_prefix_is_a_kind_prefix_too() -> None:
    got = compute(info(branch="git-hooks"), sha_prefix="git-")
    assert names(got) == ["git-0123abc", "branch-git-hooks"]


def test_non_ascii_names_get_distinct_tags() -> None:
    first, second = sanitize("фича"), sanitize("ошибка")
    assert first != second and DOCKER_TAG.match(first) and DOCKER_TAG.match(second)
    assert sanitize("фича") == first  # the same branch always gets the same tag
    assert sanitize("ünïcode") == "unicode"


def test_a_git_tag_too_long_for_docker_is_refused_before_anything() -> None:
    long_release = "v2.0.0-" + "a" * 130
    with pytest.raises(BuildToolsError, match="would be the Docker tag of 136 characters"):
        choose(info(tag=long_release))
    with pytest.raises(BuildToolsError, match="Docker allows at most 128"):
        choose(info(tag="deploy-" + "b" * 125))


def test_a_long_branch_cache_tag_is_shortened_with_a_hash() -> None:
    branch_a = TagPolicy().branch_tag("x" * 120 + "a")
    branch_b = TagPolicy().branch_tag("x" * 120 + "b")
    a, b = prefixed("cache-app-", branch_a), prefixed("cache-app-", branch_b)
    assert len(a) == len(b) == 128 and a != b
    assert DOCKER_TAG.match(a) and a.startswith("cache-app-xxx")


# --- bad input (tests/fixtures/bad_input.py): names that cannot be tags as they are ---


def _long_release_tag(app: App) -> dict[str, str]:
    app.repo.tag("v2.0.0-" + "a" * 130)
    return {}


def _long_plain_tag(app: App) -> dict[str, str]:
    app.repo.tag("deploy-" + "b" * 125)
    return {}


# Issue 18: git tags too long for Docker. Each row changes nothing (tests/fixtures/bad_input.py):
# (case, set-up (returns extra env; CWD runs the task elsewhere, {OLD} is put into the args),
#  task args, environment, invoke.yaml extra lines, the error line holds, it must not hold)
INTEGRITY_FAILURES = [
    (
        "7: a release tag too long for Docker",
        _long_release_tag,
        ["build", "--dry-run"],
        {},
        "",
        "would be the Docker tag of 136 characters; Docker allows at most 128",
        None,
    ),
    (
        "7: a plain git tag too long for Docker",
        _long_plain_tag,
        ["version"],
        {},
        "",
        "Docker allows at most 128",
        None,
    ),
]


@pytest.mark.parametrize("row", whole_rows(INTEGRITY_FAILURES))
def test_integrity_failures_are_one_line_and_change_nothing(app: App, row: tuple) -> None:
    changes_nothing_and_fails_in_one_line(app, *row)


# A name that would pose as another kind of tag gets a prefix saying its kind, before anything
# is built: (case, set-up git commands, environment, invoke.yaml extra, expected image tags
# with {sha}, a tag that must not be among them).
POSING_NAMES = [
    (
        "2: a git tag named latest on a feature branch",
        [["checkout", "-q", "-b", "feature/x"], ["tag", "latest"]],
        {},
        "",
        ["tag-latest", "sha-{sha}"],
        "latest",
    ),
    (
        "2: a git tag named 1.2",
        [["tag", "1.2"]],
        {},
        "",
        ["tag-1.2", "sha-{sha}"],
        "1.2",
    ),
    (
        "2: a git tag named like the release branch",
        [["tag", "main"]],
        {},
        "",
        ["tag-main", "sha-{sha}"],
        "main",
    ),
    (
        "2: a branch named edge, every branch released",
        [["checkout", "-q", "-b", "edge"]],
        {"INVOKE_BUILDTOOLS_RELEASE_BRANCHES": "*"},
        "",
        ["sha-{sha}", "branch-edge"],
        "edge",
    ),
    (
        "2: a branch named like a PR tag",
        [["checkout", "-q", "-b", "pr-5"]],
        {"INVOKE_BUILDTOOLS_RELEASE_BRANCHES": "*"},
        "",
        ["sha-{sha}", "branch-pr-5"],
        "pr-5",
    ),
    (
        "2: a branch named like a stage cache",
        [["checkout", "-q", "-b", "cache-app-master"]],
        {"INVOKE_BUILDTOOLS_RELEASE_BRANCHES": "*"},
        "",
        ["sha-{sha}", "branch-cache-app-master"],
        "cache-app-master",
    ),
    (
        "7: a 120-character branch",
        [["checkout", "-q", "-b", "feature/" + "c" * 120]],
        {},
        "",
        None,
        None,
    ),
    (
        "18: a non-ASCII branch",
        [["checkout", "-q", "-b", "\u0444\u0438\u0447\u0430"]],
        {},
        "",
        None,
        None,
    ),
    (
        "18: a Docker Hub branch named like a version, git has other tags",
        [["tag", "v1.0.0", "HEAD"], ["commit", "-q", "--allow-empty", "-m", "next"]],
        {"SOURCE_BRANCH": "1.2.0", "SOURCE_COMMIT": "{head}"},
        "",
        ["sha-{sha}", "branch-1.2.0"],
        "1.2.0",
    ),
]


@pytest.mark.parametrize(
    ("case", "commands", "env", "extra", "expected", "never"),
    POSING_NAMES,
    ids=[row_id(row) for row in POSING_NAMES],
)
def test_names_posing_as_another_kind_get_a_prefix_before_anything_is_built(
    app: App,
    case: str,
    commands: list[list[str]],
    env: dict[str, str],
    extra: str,
    expected: list[str] | None,
    never: str | None,
) -> None:
    for command in commands:
        app.repo.git(*command)
    head = app.repo.head()
    env = {key: value.replace("{head}", head) for key, value in env.items()}
    done = app.invoke(
        "build", "--dry-run", "--json", env={**NO_ENGINE, **env}, yaml=app_yaml(app.name, extra)
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    plans = json.loads(done.stdout)
    app_plan = next(plan for plan in plans if plan["name"] == "app")
    app_tags = [ref.rpartition(":")[2] for ref in app_plan["tags"]]
    assert all(VALID_TAG.match(tag) and len(tag) <= 128 for tag in app_tags), app_tags
    if expected is not None:
        assert app_tags == [tag.format(sha=head[:7]) for tag in expected]
    if never is not None:
        assert never not in app_tags
