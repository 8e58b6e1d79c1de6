"""The release rule: whether a build's images may be pushed, and why. One function, used by
``invoke release`` (which refuses) and ``invoke ci`` (which skips, or refuses a dirty tree).

It is a pure function of the build's facts and the release config, so every CI (Travis, GitHub
Actions, GitLab CI, or a laptop with the same variables) decides the same way.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from buildtools.config.schema import ReleaseConfig
from buildtools.errors import BuildToolsError
from buildtools.facts.buildinfo import BuildInfo

RELEASE, SKIP, REFUSE = "release", "skip", "refuse"


@dataclass(frozen=True)
class Decision:
    """``outcome`` is RELEASE, SKIP (not a release build: build and test only) or REFUSE (a
    release build that must not be pushed as it is). ``reason`` is the short line CI logs;
    ``problem`` and ``fix`` are the error ``invoke release`` gives when it may not push."""

    outcome: str
    reason: str
    problem: str = ""
    fix: str = ""

    @property
    def release(self) -> bool:
        return self.outcome == RELEASE

    def error(self) -> BuildToolsError:
        return BuildToolsError(self.problem, self.fix)


def release_pattern(branch: str, patterns: tuple[str, ...]) -> str | None:
    """The first of ``patterns`` that ``branch`` matches, or None. Patterns are fnmatch globs
    (``*`` is every branch, as LARA's workflow pushes today; ``release/*``; ``*`` also crosses
    ``/``), matched case-sensitively because git branch names are; a plain name is itself."""
    for pattern in patterns:
        if fnmatch.fnmatchcase(branch, pattern):
            return pattern
    return None


def decide(info: BuildInfo, config: ReleaseConfig) -> Decision:
    """Tag builds always release; release branches do; pull requests only when allowed;
    anything else does not. A release build with uncommitted changes is refused."""
    if info.pull_request is not None and not config.allow_pull_requests:
        return Decision(
            SKIP,
            f"pull request #{info.pull_request}: pull requests are never pushed",
            f"refusing to release pull request #{info.pull_request}: its code is not reviewed yet",
            "release from the merged branch or a tag, or set "
            "buildtools.release.allow_pull_requests",
        )
    if info.pull_request is not None:
        decision = Decision(RELEASE, f"pull request #{info.pull_request} (allow_pull_requests)")
    elif info.tag:
        decision = Decision(RELEASE, f"tag {info.tag}")
    elif info.branch is None:
        return Decision(
            SKIP,
            "a build with no branch or tag is not released",
            "refusing to release: no branch or tag is known for this build (detached HEAD?)",
            "pass --branch or --tag, or run it in CI, which says what is built",
        )
    elif (pattern := release_pattern(info.branch, config.branches)) is not None:
        matched = "" if pattern == info.branch else f" (matches {pattern})"
        decision = Decision(RELEASE, f"release branch {info.branch}{matched}")
    else:
        allowed = ", ".join(config.branches) or "none"
        return Decision(
            SKIP,
            f"branch {info.branch} is not released (release branches: {allowed})",
            f"refusing to release branch {info.branch!r}: release branches are "
            f"{', '.join(config.branches) or '(none)'}",
            "release from one of them or a tag, or add it to buildtools.release.branches",
        )
    if info.dirty:
        return Decision(
            REFUSE,
            f"{decision.reason}, but the working tree has uncommitted changes",
            "refusing to release: the working tree has uncommitted changes, so the images "
            "would not match any commit",
            "commit or stash the changes (git status shows them) and release again",
        )
    return decision


def check_releasable(info: BuildInfo, config: ReleaseConfig) -> Decision:
    """The decision for ``invoke release``: anything but RELEASE is its error."""
    decision = decide(info, config)
    if not decision.release:
        raise decision.error()
    return decision


def check_pull_request_release(config: ReleaseConfig, pull_request_tags: bool) -> None:
    """Releasing pull requests needs a tag for them: without ``tags.pull_requests`` every pull
    request would be built and tested, then fail with nothing to push. Refused before building."""
    if config.allow_pull_requests and not pull_request_tags:
        raise BuildToolsError(
            "buildtools.release.allow_pull_requests is on but buildtools.tags.pull_requests is "
            "off: a pull request's images would have no tag to push",
            "set buildtools.tags.pull_requests to true (tags pr-N), or turn "
            "allow_pull_requests off",
        )
