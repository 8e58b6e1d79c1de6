"""`invoke ci` as ordered steps over one plan: promote this commit's tested images, or look up
the cache, build, smoke-test the pair, release it if the rule says so, push the stage caches and
sign; the first line it says is what this run will do, from the plan
(:mod:`buildtools.release.pipeline` has the steps it shares with build and release).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from buildtools.config import schema
from buildtools.config.schema import Settings
from buildtools.engine.build_spec import BuiltImage
from buildtools.facts.buildinfo import BuildInfo
from buildtools.facts.read import Run
from buildtools.release import build as builder
from buildtools.release import prepare, signing, steps, work
from buildtools.release.pipeline import (
    LOOK_UP_CACHE,
    PUSH_STAGE_CACHES,
    SIGN,
    first_reason,
    not_promoted,
    promoted,
    released,
)
from buildtools.release.prepare import Options, Plan
from buildtools.release.steps import Outcomes, Session, Step

if TYPE_CHECKING:
    from buildtools.release.publish import ReleaseResult


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


def _ci_promote(plan: Plan, done: Outcomes, session: Session) -> ReleaseResult:
    result = work.promote(plan, done, session)
    sha = plan.meta.sha_tag
    tested = (
        f"no smoke test here (invoke ci smoke-tested them before it pushed {sha})"
        if plan.options.smoke_test
        else "no smoke test (--no-smoke)"
    )
    session.say(f"ci: promoted the {sha} images to the release tags: nothing built, {tested}")
    for line in result.warnings:
        session.say(f"ci: {line}")
    return result


def _ci_build(plan: Plan, done: Outcomes, session: Session) -> tuple[BuiltImage, ...]:
    built = work.build_images(plan, done, session)
    for image in built:
        session.say(f"ci: {image.name}: {work.describe_cache(image)}")
    return built


def _smoke_test(plan: Plan, done: Outcomes, session: Session) -> dict[str, Any]:
    from buildtools.engine import stack

    started = signing.now()
    info = plan.run.info
    by_name = {b.name: b.tags[0] for b in done["build"]}
    name = stack.run_name("lara-ci", info.commit)
    passed = stack.smoke(
        session.client(),
        by_name["app"],
        by_name["nginx"],
        info.version,
        name,
        cfg=plan.settings.smoke,
        env=plan.run.env,
        say=session.say,
    )
    passed = {**passed, "started": started, "finished": signing.now()}  # for its attestation
    work.record_smoke_test(plan, done["build"], name, passed)
    asset = f"; {passed['asset']} comes from the sidecar, immutable" if passed["asset"] else ""
    session.say(
        f"ci: smoke test passed: GET {passed['path']} through the sidecar shows "
        f"{passed['expected']!r}{asset} ({info.short_commit})"
    )
    return passed


def _ci_release(plan: Plan, done: Outcomes, session: Session) -> ReleaseResult:
    from buildtools.plan.release_rule import REFUSE

    if plan.decision is not None and plan.decision.outcome == REFUSE:
        raise plan.decision.error()  # built and tested; refused where it would be pushed
    return work.push(plan, work.release_images(plan, done["build"]), done, session)


def _not_released(plan: Plan) -> str | None:
    from buildtools.plan.release_rule import REFUSE

    decision = plan.decision
    if plan.releases or (decision is not None and decision.outcome == REFUSE):
        return None
    return plan.notes[0] if plan.notes else decision.reason if decision else "not a release"


CI_STEPS = (
    Step("promote", _ci_promote, not_promoted),
    LOOK_UP_CACHE,
    Step("build", _ci_build, promoted),
    Step(
        "smoke test",
        _smoke_test,
        lambda plan: first_reason(
            promoted(plan),
            None
            if plan.options.smoke_test
            else "SMOKE TEST SKIPPED (--no-smoke): the images were built but never started",
        ),
        loud=lambda plan: plan.promotion is None,
    ),
    Step("push", _ci_release, lambda plan: first_reason(promoted(plan), _not_released(plan))),
    SIGN,
    PUSH_STAGE_CACHES,
)


@dataclass(frozen=True)
class CiResult:
    """`invoke ci`'s plan and its steps' outcomes; :meth:`as_dict` is its ``--json``."""

    plan: Plan
    done: Outcomes

    @property
    def released(self) -> ReleaseResult | None:
        return released(self.plan, self.done)

    def as_dict(self) -> dict[str, Any]:
        plan, done = self.plan, self.done
        decision = plan.decision
        reason = decision.reason if decision else ""
        if not plan.releases and plan.notes:
            reason = plan.notes[0]
        lookup: work.CacheSources | None = done.get("look up cache")
        result = self.released
        return {
            "build": describe(plan.run.info),
            "decision": {"release": plan.releases, "reason": reason},
            "images": [b.as_dict() for b in done["build"] or ()],
            "cache_sources": [r.as_dict() for r in lookup.pulled] if lookup else [],
            "released": result.as_dict() if result else None,
        }


def intent(plan: Plan) -> str:
    """What `invoke ci` will do for ``plan``, in a few words: the steps that will run."""
    running = {step.name for step in CI_STEPS if step.skip(plan) is None}
    if "promote" in running:
        return "promote this commit's tested images (nothing to build), release"
    planned = ["build"] if "build" in running else []
    if planned:
        planned.append("smoke test" if "smoke test" in running else "NO smoke test")
    planned += ["release"] if "push" in running else []
    return ", ".join(planned) or "nothing"


def ci(
    settings: Settings, env: Mapping[str, str], options: Options, session: Session,
    dockerfile_text: str | None = None, quiet: bool = False,
) -> CiResult:  # fmt: skip
    """`invoke ci`: decide, check the registries and plan once, then build both images,
    smoke-test them together and release that plan if the rule says so. Git and the CI
    environment are read once; each registry is checked once, before any engine work.
    ``dockerfile_text``: the app Dockerfile, if the task read it already; ``quiet``: the
    release's summary is not said (it is in the result)."""
    from buildtools.plan.release_rule import check_pull_request_release, decide

    text = dockerfile_text or builder.read_app_dockerfile(settings)  # before the engine
    for line in builder.check_app_dockerfile(settings, dockerfile_text=text):
        session.warn(line)
    if options.smoke_test:
        schema.check_smoke_env(settings, env)
    run = Run.read(settings, env)
    if options.smoke_test:
        # Labelled so before the smoke test runs: true of every registry copy, since nothing
        # is pushed unless it passed (a local copy is never released by another task).
        run = dataclasses.replace(run, info=dataclasses.replace(run.info, smoke_gated=True))
    check_pull_request_release(settings.release, settings.pull_request_tags)
    decision = decide(run.info, settings.release)
    plan = prepare.for_ci(run, decision, options, session, text)
    # The first line: what this run will do, from the plan (a promotion builds nothing).
    session.say(f"ci: {describe(run.info)}: {intent(plan)} ({decision.reason})")
    for note in (*plan.notes, *plan.source_notes):
        session.say(f"ci: {note}")
    if plan.not_promoting is not None:
        session.say(f"ci: not promoting: {plan.not_promoting}; building")
    done = steps.run(CI_STEPS, plan, session)
    result = CiResult(plan, done)
    for note in plan.notes:  # said first; said again last, where a CI log is read
        session.say(f"ci: {note}")
    if result.released is not None and not quiet:
        session.say(result.released.text())
    return result
