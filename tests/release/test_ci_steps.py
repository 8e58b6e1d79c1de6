"""What `invoke ci` decides for each kind of build (pure). That it plans once, before the first
build step, against a real registry and engine, is in test_pipeline_plan_first.py (the e2e tests
run whole CI jobs).
"""

from __future__ import annotations

import pytest

from buildtools.config.schema import ReleaseConfig
from buildtools.errors import BuildToolsError
from buildtools.facts.buildinfo import BuildInfo
from buildtools.plan.release_rule import check_pull_request_release, check_releasable, decide
from buildtools.release.ci_steps import describe

SHA = "0123abc4567890def0123abc4567890def012345"
CONFIG = ReleaseConfig(
    registries=(), branches=("master", "main"), allow_pull_requests=False, retries=1,
    retry_base_delay=0.0,
)  # fmt: skip


def info(**fields) -> BuildInfo:
    return BuildInfo(version="0.0.0", commit=SHA, ci="travis", **fields)


@pytest.mark.parametrize(
    "fields, release, reason",
    [
        ({"tag": "v1.2.3"}, True, "tag v1.2.3"),
        ({"branch": "master"}, True, "release branch master"),
        ({"branch": "feature/x"}, False, "branch feature/x is not released"),
        ({}, False, "a build with no branch or tag is not released"),
        ({"branch": "feature/x", "pull_request": 7}, False, "pull requests are never pushed"),
        # A PR into master is still a PR: its branch fields must not make it a release.
        ({"branch": "master", "pull_request": 7}, False, "pull requests are never pushed"),
    ],
)
def test_decide(fields, release, reason):
    decision = decide(info(**fields), CONFIG)
    assert decision.release is release
    assert reason in decision.reason


def globs(*branches: str) -> ReleaseConfig:
    return ReleaseConfig(**{**CONFIG.__dict__, "branches": branches})


# (publish.branches, branch, released, the reason contains)
GLOBS = [
    (("*",), "master", True, "release branch master (matches *)"),
    (("*",), "feature/deep/x", True, "release branch feature/deep/x (matches *)"),
    (("release/*",), "release/2.1", True, "release branch release/2.1 (matches release/*)"),
    (("release/*",), "release", False, "branch release is not released"),
    (("release/*",), "hotfix/release/2", False, "(release branches: release/*)"),
    (("master", "v?.x"), "v2.x", True, "(matches v?.x)"),
    (("master", "v?.x"), "v10.x", False, "branch v10.x is not released"),
    (("[mp]*",), "production", True, "(matches [mp]*)"),
    (("Master",), "master", False, "branch master is not released"),  # git names are exact
    (("master", "*"), "master", True, "release branch master"),
    ((), "master", False, "(release branches: none)"),
]


@pytest.mark.parametrize(("branches", "branch", "release", "reason"), GLOBS)
def test_release_branches_are_globs(branches, branch, release, reason):
    decision = decide(info(branch=branch), globs(*branches))
    assert decision.release is release
    assert reason in decision.reason


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"branch": "master", "pull_request": 7}, "pull requests are never pushed"),
        ({}, "a build with no branch or tag is not released"),
        ({"branch": "master", "dirty": True}, "but the working tree has uncommitted changes"),
    ],
    ids=["a pull request", "no branch", "a dirty tree"],
)
def test_star_still_refuses_what_is_never_released(fields, reason):
    decision = decide(info(**fields), globs("*"))
    assert decision.release is False
    assert reason in decision.reason


def test_a_refused_glob_branch_keeps_the_error_wording():
    error = decide(info(branch="feature/x"), globs("release/*")).error()
    assert str(error) == (
        "refusing to release branch 'feature/x': release branches are release/* (fix: release "
        "from one of them or a tag, or add it to buildtools.release.branches)"
    )


def test_pull_requests_release_only_when_configured():
    allowed = ReleaseConfig(**{**CONFIG.__dict__, "allow_pull_requests": True})
    assert decide(info(branch="feature/x", pull_request=7), allowed).release is True


def test_describe_names_the_ci_the_ref_and_the_commit():
    assert describe(info(tag="v1.2.3")) == "travis build of tag v1.2.3 at 0123abc"
    assert describe(info(pull_request=7)) == "travis build of pull request #7 at 0123abc"
    assert describe(info(branch="main")) == "travis build of branch main at 0123abc"
    assert describe(BuildInfo(version="0", commit=SHA)) == "no CI build of detached HEAD at 0123abc"


RELEASE = ReleaseConfig(
    registries=(),
    branches=("master", "main"),
    allow_pull_requests=False,
    retries=1,
    retry_base_delay=0.0,
)


@pytest.mark.parametrize(
    ("facts", "config", "refusal"),
    [
        ({"dirty": True, "tag": "v1.0.0"}, RELEASE, "uncommitted changes"),
        ({"pull_request": 7, "branch": "feature"}, RELEASE, "pull request #7"),
        ({"branch": "feature/x"}, RELEASE, "release branches are master, main"),
        ({}, RELEASE, "no branch or tag is known"),
        ({"branch": "master"}, RELEASE, None),
        ({"tag": "v1.0.0", "branch": None}, RELEASE, None),  # tag builds: always
        ({"tag": "v1.0.0", "branch": "feature/x"}, RELEASE, None),
        (
            {"pull_request": 7},
            ReleaseConfig((), ("master",), True, 1, 0.0),
            None,
        ),
    ],
)
def test_what_may_be_released(facts: dict, config: ReleaseConfig, refusal: str | None) -> None:
    values = {"dirty": False, "pull_request": None, "branch": None, "tag": None, **facts}
    info = BuildInfo(version="0.0.0", commit="0123abc4567890def0123abc4567890def012345", **values)
    if refusal is None:
        check_releasable(info, config)
    else:
        with pytest.raises(BuildToolsError, match=refusal):
            check_releasable(info, config)


def test_releasing_pull_requests_without_their_tags_is_refused_naming_the_key() -> None:
    """Issue 18.9: otherwise every PR build is built and tested, then has nothing to push."""
    allowed = ReleaseConfig(**{**CONFIG.__dict__, "allow_pull_requests": True})
    with pytest.raises(BuildToolsError) as failure:
        check_pull_request_release(allowed, pull_request_tags=False)
    assert "buildtools.tags.pull_requests" in str(failure.value)
    check_pull_request_release(allowed, pull_request_tags=True)
    check_pull_request_release(CONFIG, pull_request_tags=False)
