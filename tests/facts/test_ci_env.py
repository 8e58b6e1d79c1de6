"""CI detection: each provider's variables, exactly as the provider sets them."""

from __future__ import annotations

import pytest

from buildtools.errors import BuildToolsError
from buildtools.facts.ci_env import CIContext, detect
from tests.fixtures.bad_input import (
    TRAVIS_MAIN,
    App,
    changes_nothing_and_fails_in_one_line,
    fails_in_one_line,
    goes_on_with_a_warning,
    nothing,
    whole_rows,
)

SHA = "0123456789abcdef0123456789abcdef01234567"

TRAVIS = {"CI": "true", "TRAVIS": "true", "TRAVIS_COMMIT": SHA, "TRAVIS_BUILD_NUMBER": "42"}
TRAVIS_URL = "https://app.travis-ci.com/github/org/lara/builds/9"
GITHUB = {
    "CI": "true",
    "GITHUB_ACTIONS": "true",
    "GITHUB_SHA": SHA,
    "GITHUB_RUN_NUMBER": "7",
    "GITHUB_RUN_ID": "123456",
    "GITHUB_REPOSITORY": "org/lara",
    "GITHUB_SERVER_URL": "https://github.com",
}
GITHUB_URL = "https://github.com/org/lara/actions/runs/123456"
GITLAB = {
    "CI": "true",
    "GITLAB_CI": "true",
    "CI_COMMIT_SHA": SHA,
    "CI_PIPELINE_IID": "88",
    "CI_JOB_URL": "https://gitlab.example.org/org/lara/-/jobs/5",
}
DOCKERHUB = {"SOURCE_COMMIT": SHA, "DOCKER_REPO": "index.docker.io/org/lara"}

CASES = {
    "travis push": (
        {
            **TRAVIS,
            "TRAVIS_BRANCH": "feature/foo",
            "TRAVIS_TAG": "",
            "TRAVIS_PULL_REQUEST": "false",
            "TRAVIS_EVENT_TYPE": "push",
            "TRAVIS_BUILD_WEB_URL": TRAVIS_URL,
        },
        CIContext(
            "travis",
            branch="feature/foo",
            commit=SHA,
            event="push",
            build_number="42",
            build_url=TRAVIS_URL,
        ),
    ),
    "travis tag: TRAVIS_BRANCH is the tag, not a branch": (
        {
            **TRAVIS,
            "TRAVIS_BRANCH": "v1.2.3",
            "TRAVIS_TAG": "v1.2.3",
            "TRAVIS_PULL_REQUEST": "false",
            "TRAVIS_EVENT_TYPE": "push",
        },
        CIContext("travis", tag="v1.2.3", commit=SHA, event="push", build_number="42"),
    ),
    "travis PR: TRAVIS_BRANCH is the target": (
        {
            **TRAVIS,
            "TRAVIS_BRANCH": "master",
            "TRAVIS_TAG": "",
            "TRAVIS_PULL_REQUEST": "17",
            "TRAVIS_PULL_REQUEST_BRANCH": "fix/login",
            "TRAVIS_EVENT_TYPE": "pull_request",
        },
        CIContext(
            "travis",
            branch="fix/login",
            commit=SHA,
            pull_request=17,
            base_branch="master",
            event="pull_request",
            build_number="42",
        ),
    ),
    "github push": (
        {**GITHUB, "GITHUB_REF": "refs/heads/feature/foo", "GITHUB_EVENT_NAME": "push"},
        CIContext(
            "github",
            branch="feature/foo",
            commit=SHA,
            event="push",
            build_number="7",
            build_url=GITHUB_URL,
        ),
    ),
    "github tag": (
        {**GITHUB, "GITHUB_REF": "refs/tags/v1.2.3", "GITHUB_EVENT_NAME": "push"},
        CIContext(
            "github", tag="v1.2.3", commit=SHA, event="push", build_number="7", build_url=GITHUB_URL
        ),
    ),
    "github PR": (
        {
            **GITHUB,
            "GITHUB_REF": "refs/pull/5/merge",
            "GITHUB_HEAD_REF": "fix/login",
            "GITHUB_BASE_REF": "master",
            "GITHUB_EVENT_NAME": "pull_request",
        },
        CIContext(
            "github",
            branch="fix/login",
            commit=SHA,
            pull_request=5,
            base_branch="master",
            event="pull_request",
            build_number="7",
            build_url=GITHUB_URL,
        ),
    ),
    "gitlab branch": (
        {
            **GITLAB,
            "CI_COMMIT_BRANCH": "feature/foo",
            "CI_COMMIT_REF_NAME": "feature/foo",
            "CI_PIPELINE_SOURCE": "push",
        },
        CIContext(
            "gitlab",
            branch="feature/foo",
            commit=SHA,
            event="push",
            build_number="88",
            build_url=GITLAB["CI_JOB_URL"],
        ),
    ),
    "gitlab tag": (
        {**GITLAB, "CI_COMMIT_TAG": "v1.2.3", "CI_COMMIT_REF_NAME": "v1.2.3"},
        CIContext(
            "gitlab", tag="v1.2.3", commit=SHA, build_number="88", build_url=GITLAB["CI_JOB_URL"]
        ),
    ),
    "gitlab MR": (
        {
            **GITLAB,
            "CI_MERGE_REQUEST_IID": "3",
            "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "fix/x",
            "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "master",
            "CI_PIPELINE_SOURCE": "merge_request_event",
        },
        CIContext(
            "gitlab",
            branch="fix/x",
            commit=SHA,
            pull_request=3,
            base_branch="master",
            event="merge_request_event",
            build_number="88",
            build_url=GITLAB["CI_JOB_URL"],
        ),
    ),
    "docker hub branch": (
        {**DOCKERHUB, "SOURCE_BRANCH": "master"},
        CIContext("dockerhub", branch="master", commit=SHA),
    ),
    "docker hub version-shaped ref is a tag": (
        {**DOCKERHUB, "SOURCE_BRANCH": "v2.0.0-rc.1"},
        CIContext("dockerhub", tag="v2.0.0-rc.1", commit=SHA),
    ),
    "generic CI": ({"CI": "true"}, CIContext("ci")),
    "no CI": ({"HOME": "/root", "PATH": "/usr/bin"}, None),
}


@pytest.mark.parametrize("env, expected", list(CASES.values()), ids=list(CASES))
def test_detect(env: dict[str, str], expected: CIContext | None) -> None:
    assert detect(env) == expected


def test_docker_hub_ref_that_git_knows_as_a_tag_is_a_tag() -> None:
    env = {**DOCKERHUB, "SOURCE_BRANCH": "production-2024"}
    assert detect(env).branch == "production-2024"
    tagged = detect(env, tag_names={"production-2024"})
    assert (tagged.tag, tagged.branch) == ("production-2024", None)


def test_github_without_server_url_defaults_to_github_com() -> None:
    env = {k: v for k, v in GITHUB.items() if k != "GITHUB_SERVER_URL"}
    assert detect({**env, "GITHUB_REF": "refs/heads/master"}).build_url == GITHUB_URL


@pytest.mark.parametrize("value", ["yes", "-3", "²", "12a"])
def test_malformed_travis_pull_request_is_a_user_error(value: str) -> None:
    env = {**TRAVIS, "TRAVIS_BRANCH": "master", "TRAVIS_PULL_REQUEST": value}
    with pytest.raises(BuildToolsError, match="is neither 'false' nor a pull-request number"):
        detect(env)


def test_knows_ref() -> None:
    assert not CIContext("ci").knows_ref
    assert CIContext("travis", pull_request=0).knows_ref
    assert CIContext("travis", tag="v1").knows_ref


def test_a_version_shaped_docker_hub_branch_is_a_branch_when_git_has_other_tags() -> None:
    env = {**DOCKERHUB, "SOURCE_BRANCH": "1.2.0"}
    assert detect(env, tag_names={"v1.1.0"}).branch == "1.2.0"
    assert detect(env, tag_names={"v1.1.0", "1.2.0"}).tag == "1.2.0"


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({**TRAVIS, **GITHUB, "GITHUB_REF": "refs/heads/master"}, ("TRAVIS=", "GITHUB_ACTIONS=")),
        ({**GITLAB, **DOCKERHUB, "SOURCE_BRANCH": "master"}, ("GITLAB_CI=", "SOURCE_BRANCH=")),
        (
            {**TRAVIS, "TRAVIS_TAG": "v1.0.0", "TRAVIS_PULL_REQUEST": "5"},
            ("TRAVIS_TAG='v1.0.0'", "TRAVIS_PULL_REQUEST=5"),
        ),
        (
            {**GITLAB, "CI_COMMIT_TAG": "v1.0.0", "CI_MERGE_REQUEST_IID": "3"},
            ("CI_COMMIT_TAG='v1.0.0'", "CI_MERGE_REQUEST_IID=3"),
        ),
    ],
    ids=["Travis and GitHub", "GitLab and Docker Hub", "Travis tag and PR", "GitLab tag and MR"],
)
def test_contradictory_ci_variables_are_refused_naming_both(env: dict, names: tuple) -> None:
    with pytest.raises(BuildToolsError) as caught:
        detect(env)
    assert all(name in str(caught.value) for name in names), str(caught.value)


# --- bad input (tests/fixtures/bad_input.py) ---

# A CI variable that cannot become a tag: (case, task args, environment, invoke.yaml extra lines,
# the error line must contain)
ONE_LINE_FAILURES = [
    (
        "a line break in a CI variable",
        ["version"],
        {"GITHUB_ACTIONS": "TRUE", "GITHUB_REF": "refs/heads/a\nLARA_TAG=evil"},
        "",
        "GITHUB_REF='refs/heads/a\\nLARA_TAG=evil' holds a control character",
    ),
]


@pytest.mark.parametrize("row", whole_rows(ONE_LINE_FAILURES))
def test_bad_input_is_one_line_and_a_non_zero_exit(app: App, row: tuple) -> None:
    fails_in_one_line(app, *row)


# Issue 18: CI variables that contradict each other. Each row changes nothing
# (tests/fixtures/bad_input.py):
# (case, set-up (returns extra env; CWD runs the task elsewhere, {OLD} is put into the args),
#  task args, environment, invoke.yaml extra lines, the error line holds, it must not hold)
INTEGRITY_FAILURES = [
    (
        "18: Travis and GitHub at once",
        nothing,
        ["version"],
        {**TRAVIS_MAIN, "GITHUB_ACTIONS": "true", "GITHUB_REF": "refs/heads/main"},
        "",
        "two CI services run this build: TRAVIS='true' and GITHUB_ACTIONS='true'",
        None,
    ),
    (
        "18: a tag build that is also a pull request",
        nothing,
        ["version"],
        {"TRAVIS": "true", "TRAVIS_TAG": "v1.0.0", "TRAVIS_PULL_REQUEST": "5"},
        "",
        "TRAVIS_TAG='v1.0.0' and TRAVIS_PULL_REQUEST=5 both set",
        None,
    ),
]


@pytest.mark.parametrize("row", whole_rows(INTEGRITY_FAILURES))
def test_integrity_failures_are_one_line_and_change_nothing(app: App, row: tuple) -> None:
    changes_nothing_and_fails_in_one_line(app, *row)


# A CI variable that is ignored: (case, task args, environment, invoke.yaml extra lines, the warning
# holds)
DOUBTFUL = [
    (
        "ignored GITHUB_REF",
        ["version"],
        {"GITHUB_ACTIONS": "true", "GITHUB_REF": "garbage"},
        "",
        "GITHUB_REF='garbage' is not refs/heads/",
    ),
]


@pytest.mark.parametrize("row", whole_rows(DOUBTFUL))
def test_doubtful_input_goes_on_with_a_warning(app: App, row: tuple) -> None:
    goes_on_with_a_warning(app, *row)
