"""The settings checked before anything is built (plan.validate): bad input as a hostile new
user would give it, through the real tasks."""

from __future__ import annotations

import pytest

from tests.fixtures.bad_input import (
    App,
    changes_nothing_and_fails_in_one_line,
    fails_in_one_line,
    nothing,
    whole_rows,
)

# --- bad input (tests/fixtures/bad_input.py) ---

# Settings that read but cannot be built with: (case, task args, environment, invoke.yaml extra
# lines, the error line must contain)
ONE_LINE_FAILURES = [
    (
        "an upper-case repository",
        ["build"],
        {"INVOKE_BUILDTOOLS_APP_REPOSITORY": "UPPER/Case"},
        "",
        "buildtools.app.repository = 'UPPER/Case' is not a valid image repository",
    ),
    (
        "a base image that is no reference",
        ["build"],
        {"INVOKE_BUILDTOOLS_APP_BASE_IMAGE": "Bad Image!!"},
        "",
        "buildtools.app.base_image = 'Bad Image!!' is not a valid image reference",
    ),
    (
        "latest as an extra branch tag",
        ["build", "--dry-run"],
        {"INVOKE_BUILDTOOLS_TAGS_EXTRA": "main=latest"},
        "",
        "gives branch 'main' the tag 'latest', which only releases",
    ),
    (
        "a pre-release as an extra branch tag",
        ["build", "--dry-run"],
        {"INVOKE_BUILDTOOLS_TAGS_EXTRA": "main=1.2.3-rc.1"},
        "",
        "gives branch 'main' the tag '1.2.3-rc.1', which only releases",
    ),
    (
        "a sha prefix that starts no tag",
        ["build", "--dry-run"],
        {},
        "  tags:\n    sha_prefix: -git\n",
        "buildtools.tags.sha_prefix = '-git' is not the start of a Docker tag",
    ),
    # 27.16: a prefix that collides with a floating tag blamed tags.extra (and its example).
    (
        "a sha prefix that is a floating tag",
        ["build", "--dry-run"],
        {"INVOKE_BUILDTOOLS_TAGS_SHA_PREFIX": "edge"},
        "",
        "config key buildtools.tags.sha_prefix = 'edge' makes commit tags look like 'edge' tags",
    ),
    (
        "a sha prefix that is a kind's prefix",
        ["version"],
        {"INVOKE_BUILDTOOLS_TAGS_SHA_PREFIX": "pr-"},
        "",
        "config key buildtools.tags.sha_prefix = 'pr-' makes commit tags look like 'pr-' tags",
    ),
    (
        "a sha prefix that starts a release branch",
        ["version"],
        {"INVOKE_BUILDTOOLS_TAGS_SHA_PREFIX": "ma"},
        "",
        "config key buildtools.tags.sha_prefix = 'ma' starts the release branch 'master'",
    ),
    (
        "a sha prefix that starts an extra tag",
        ["build", "--dry-run"],
        {"INVOKE_BUILDTOOLS_TAGS_SHA_PREFIX": "ed"},
        "",
        "config key buildtools.tags.sha_prefix = 'ed' starts the tag 'edge' that "
        "buildtools.tags.extra gives branch 'master'",
    ),
    (
        "a service named like the stack's own containers",
        ["build", "--dry-run"],
        {},
        "  smoke:\n    services:\n      app: {image: mariadb:11.2}\n",
        "has a service named 'app', which the stack's own containers use",
    ),
    (
        "a service name with capitals",
        ["build", "--dry-run"],
        {},
        "  smoke:\n    services:\n      Db_1: {image: mariadb:11.2}\n",
        "has a service named 'Db_1', which is not a lower-case name (fix: use a-z, digits",
    ),
]


@pytest.mark.parametrize("row", whole_rows(ONE_LINE_FAILURES))
def test_bad_input_is_one_line_and_a_non_zero_exit(app: App, row: tuple) -> None:
    fails_in_one_line(app, *row)


# Issue 18: settings checked before anything is built or pushed. Each row changes nothing
# (tests/fixtures/bad_input.py):
# (case, set-up (returns extra env; CWD runs the task elsewhere, {OLD} is put into the args),
#  task args, environment, invoke.yaml extra lines, the error line holds, it must not hold)
INTEGRITY_FAILURES = [
    (
        "16: a login in a registry address is never echoed",
        nothing,
        ["release", "--dry-run"],
        {"INVOKE_BUILDTOOLS_RELEASE_REGISTRIES": "https://bob:s3cr3tpw@reg.example.org"},
        "",
        "has 'https://***@reg.example.org', a registry address with a login in it",
        "s3cr3tpw",
    ),
    (
        "16: an extra tag with no letter names its key",
        nothing,
        ["version"],
        {"INVOKE_BUILDTOOLS_TAGS_EXTRA": "main=-"},
        "",
        "config key buildtools.tags.extra gives branch 'main' the tag '-'",
        None,
    ),
    (
        "17: a registry port out of range",
        nothing,
        ["release", "--dry-run"],
        {"INVOKE_BUILDTOOLS_RELEASE_REGISTRIES": "localhost:99999"},
        "",
        "whose port '99999' is not 1 to 65535",
        "unreachable",
    ),
    (
        "17: a release branch glob no branch can match",
        nothing,
        ["build", "--dry-run"],
        {"INVOKE_BUILDTOOLS_RELEASE_BRANCHES": "main feature"},
        "",
        "release.branches has 'main feature', which no git branch name can match",
        None,
    ),
    (
        "17: a build arg name Docker refuses",
        nothing,
        ["build", "--dry-run"],
        {"INVOKE_BUILDTOOLS_APP_BUILD_ARGS": "1BAD=x"},
        "",
        "buildtools.app.build_args has '1BAD', which is not a build arg name",
        None,
    ),
    (
        "17: a space in smoke.path",
        nothing,
        ["build", "--dry-run"],
        {"INVOKE_BUILDTOOLS_SMOKE_PATH": "/a b"},
        "",
        "buildtools.smoke.path = '/a b' is not a URL path",
        None,
    ),
    (
        "17: a build context that is not there, in a dry run",
        nothing,
        ["build", "--dry-run", "--context", "/nonexistent"],
        {},
        "",
        "--context /nonexistent is not a folder",
        None,
    ),
    (
        "17: a secret missing from the environment, before the build",
        nothing,
        ["ci"],
        {"INVOKE_BUILDTOOLS_SMOKE_ENV": "LBT_UNSET_SECRET_KEY"},
        "",
        "buildtools.smoke.env takes LBT_UNSET_SECRET_KEY from the environment, but it is not set",
        None,
    ),
]


@pytest.mark.parametrize("row", whole_rows(INTEGRITY_FAILURES))
def test_integrity_failures_are_one_line_and_change_nothing(app: App, row: tuple) -> None:
    changes_nothing_and_fails_in_one_line(app, *row)


def test_a_mistyped_invoke_buildtools_variable_is_a_warning_naming_the_key(app: App) -> None:
    """17: invoke ignores it silently; the release would go to the default registry."""
    done = app.invoke("version", env={"INVOKE_BUILDTOOLS_RELEASE_REGISTRY": "ghcr.io"})
    assert done.returncode == 0, done.stderr
    assert (
        "warning: environment variable INVOKE_BUILDTOOLS_RELEASE_REGISTRY sets no config key "
        "and is ignored (did you mean INVOKE_BUILDTOOLS_RELEASE_REGISTRIES?)"
    ) in done.stderr
