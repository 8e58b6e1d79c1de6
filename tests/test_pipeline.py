"""What `invoke ci` decides for each kind of build (pure; the e2e tests run it for real)."""

from __future__ import annotations

import pytest

from buildtools.buildinfo import BuildInfo
from buildtools.config import ReleaseConfig
from buildtools.decision import decide
from buildtools.pipeline import describe

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


def test_pull_requests_release_only_when_configured():
    allowed = ReleaseConfig(**{**CONFIG.__dict__, "allow_pull_requests": True})
    assert decide(info(branch="feature/x", pull_request=7), allowed).release is True


def test_describe_names_the_ci_the_ref_and_the_commit():
    assert describe(info(tag="v1.2.3")) == "travis build of tag v1.2.3 at 0123abc"
    assert describe(info(pull_request=7)) == "travis build of pull request #7 at 0123abc"
    assert describe(info(branch="main")) == "travis build of branch main at 0123abc"
    assert describe(BuildInfo(version="0", commit=SHA)) == "no CI build of detached HEAD at 0123abc"
