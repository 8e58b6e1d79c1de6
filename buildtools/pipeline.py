"""What `invoke ci` does for one CI build: build, smoke test, and release only where it should.

The decision is a pure function of the build's metadata and the release config, so every CI
(Travis, GitHub Actions, GitLab CI, or a laptop with the same variables) decides the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from buildtools import build as builder
from buildtools import buildinfo, engine, progress, stack
from buildtools import release as releaser
from buildtools.buildinfo import BuildInfo
from buildtools.config import ReleaseConfig, Settings


@dataclass(frozen=True)
class Decision:
    release: bool
    reason: str


def decide(info: BuildInfo, config: ReleaseConfig) -> Decision:
    """Whether this build's images are pushed, and why (a dirty tree is refused later, loudly)."""
    if info.pull_request is not None:
        if config.allow_pull_requests:
            return Decision(True, f"pull request #{info.pull_request} (allow_pull_requests)")
        return Decision(False, f"pull request #{info.pull_request}: pull requests are never pushed")
    if info.tag:
        return Decision(True, f"tag {info.tag}")
    if info.branch and info.branch in config.branches:
        return Decision(True, f"release branch {info.branch}")
    allowed = ", ".join(config.branches) or "none"
    what = f"branch {info.branch}" if info.branch else "a build with no branch or tag"
    return Decision(False, f"{what} is not released (release branches: {allowed})")


def describe(info: BuildInfo) -> str:
    """One line for the CI log: which CI, what ref, which commit."""
    if info.tag:
        ref = f"tag {info.tag}"
    elif info.pull_request is not None:
        ref = f"pull request #{info.pull_request}"
    elif info.branch:
        ref = f"branch {info.branch}"
    else:
        ref = "detached HEAD"
    return f"{info.ci or 'no CI'} build of {ref} at {info.short_commit}"


def run(
    settings: Settings, env: Mapping[str, str], *, quiet: bool = False, say=print
) -> dict[str, Any]:
    """Build both images, smoke-test them together, then release if the decision says so."""
    meta = buildinfo.from_settings(settings, env)
    decision = decide(meta.info, settings.release)
    plan = "build, smoke test, release" if decision.release else "build, smoke test"
    say(f"ci: {describe(meta.info)}: {plan} ({decision.reason})")
    client = engine.connect()
    reporter = None if quiet else progress.BuildProgress()
    try:
        built = builder.build_all(client, settings, meta, reporter=reporter)
    finally:
        if reporter:
            reporter.close()
    app, sidecar = (b.tags[0] for b in built)
    smoke = stack.smoke(client, app, sidecar, meta.info.commit, f"lara-ci-{meta.info.short_commit}")
    say(
        f"ci: smoke test passed: the sidecar serves {smoke['asset']} and the app reports "
        f"{smoke['version']['version']} at {meta.info.short_commit}"
    )
    result: dict[str, Any] = {
        "build": describe(meta.info),
        "decision": {"release": decision.release, "reason": decision.reason},
        "images": [b.as_dict() for b in built],
        "released": None,
    }
    if not decision.release:
        return result
    targets = releaser.targets(settings.release, env)
    anonymous = [t.name for t in targets if t.auth_config is None]
    if anonymous:
        say(
            f"ci: not releasing: no credentials for {', '.join(anonymous)} in this build's "
            "environment (normal for pull requests from forks); images were built and tested"
        )
        result["decision"] = {"release": False, "reason": "no registry credentials"}
        return result
    push_reporter = releaser.QuietReporter() if quiet else releaser.LineReporter()
    meta, targets = releaser.prepare(settings, env, None, push_reporter)
    released = releaser.publish(client, settings, meta, targets, reporter=push_reporter)
    result["released"] = released.as_dict()
    if not quiet:
        say(released.text())
    return result
