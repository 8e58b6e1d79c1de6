"""What may be released (plan.release_rule): bad input as a hostile new user would give it,
through the real tasks."""

from __future__ import annotations

import pytest

from tests.fixtures.bad_input import NO_ENGINE, TRAVIS_PR, App, fails_in_one_line, whole_rows

# --- bad input (tests/fixtures/bad_input.py) ---

# Builds that are not released: (case, task args, environment, invoke.yaml extra lines, the error
# line must contain)
ONE_LINE_FAILURES = [
    (
        "false from the environment means false",
        ["release", "--dry-run"],
        {
            **TRAVIS_PR,
            "INVOKE_BUILDTOOLS_RELEASE_ALLOW_PULL_REQUESTS": "false",
            "INVOKE_BUILDTOOLS_TAGS_PULL_REQUESTS": "FALSE",
        },
        "",
        "refusing to release pull request #5",
    ),
    (
        "false from the environment over true in invoke.yaml",
        ["release", "--dry-run"],
        {**TRAVIS_PR, "INVOKE_BUILDTOOLS_RELEASE_ALLOW_PULL_REQUESTS": "false"},
        "  release:\n    allow_pull_requests: true\n",
        "refusing to release pull request #5",
    ),
    (
        "releasing pull requests without their tags (ci)",
        ["ci"],
        {**NO_ENGINE, **TRAVIS_PR, "INVOKE_BUILDTOOLS_RELEASE_ALLOW_PULL_REQUESTS": "true"},
        "",
        "allow_pull_requests is on but buildtools.tags.pull_requests is off",
    ),
    (
        "releasing pull requests without their tags (release)",
        ["release", "--dry-run"],
        {**NO_ENGINE, **TRAVIS_PR, "INVOKE_BUILDTOOLS_RELEASE_ALLOW_PULL_REQUESTS": "true"},
        "",
        "allow_pull_requests is on but buildtools.tags.pull_requests is off",
    ),
]


@pytest.mark.parametrize(
    "row", whole_rows(ONE_LINE_FAILURES, real={"releasing pull requests without their tags (ci)"})
)
def test_bad_input_is_one_line_and_a_non_zero_exit(app: App, row: tuple) -> None:
    fails_in_one_line(app, *row)
