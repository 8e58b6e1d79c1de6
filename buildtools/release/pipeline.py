"""The tasks as ordered steps over one plan: facts -> plan -> steps -> result.

One task invocation reads git and the CI environment once (:meth:`Run.read`), makes its
:class:`~buildtools.release.prepare.Plan` once (for a release, after every registry was checked
and asked which releases it holds), then runs its steps (:mod:`buildtools.release.steps`) in
order; each step's outcome is a value, and the task's result is made from them at the end.
Like goreleaser's pipeline, a step says for itself why it is skipped, so ``--dry-run`` lists
the steps as they would run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from buildtools.config import schema
from buildtools.config.schema import Settings
from buildtools.engine.build_spec import BuiltImage
from buildtools.facts.buildinfo import BuildInfo, Overrides
from buildtools.facts.read import Run
from buildtools.registry import targets
from buildtools.release import build as builder
from buildtools.release import prepare, signing, steps, work
from buildtools.release.prepare import Options, Plan
from buildtools.release.steps import Outcomes, Session, Step

if TYPE_CHECKING:
    from buildtools.release.publish import ReleaseResult


def _dry_run(plan: Plan) -> str | None:
    return "dry run" if plan.options.dry_run else None


def _not_promoted(plan: Plan) -> str | None:
    if plan.promotion is not None:
        return None
    if plan.not_promoting is not None:
        return f"not promoting: {plan.not_promoting}"
    if not plan.releases:
        return "nothing is released"
    return "promotion is off (--no-promote or buildtools.release.promote)"


def _promoted(plan: Plan) -> str | None:
    return "promoted this commit's tested images: nothing built" if plan.promotion else None


def _first(*reasons: str | None) -> str | None:
    return next((reason for reason in reasons if reason is not None), None)


LOOK_UP_CACHE = Step(
    "look up cache",
    work.look_up_cache,
    lambda plan: _first(
        _promoted(plan), _dry_run(plan), "--no-cache" if plan.options.nocache else None
    ),
)
BUILD = Step("build", work.build_images, lambda plan: _first(_promoted(plan), _dry_run(plan)))
PUSH_STAGE_CACHES = Step(
    "push stage caches",
    work.push_stage_caches,
    lambda plan: _first(
        _promoted(plan),
        _dry_run(plan),
        None if plan.releases else "nothing is released",
        None if plan.branch_build else "not a branch build: stage caches are a branch's",
    ),
)


SIGN = Step(
    "sign",
    signing.sign_release,
    signing.not_signing,
    # Said once, where it matters: a release that pushes and signs nothing.
    loud=lambda plan: plan.releases and not plan.options.dry_run and plan.keys.signing is None,
)


def would_run(task_steps: tuple[Step[Plan], ...], plan: Plan) -> list[str]:
    """What ``--dry-run`` shows of the steps: how a run without it would take them."""
    real = dataclasses.replace(plan, options=dataclasses.replace(plan.options, dry_run=False))
    return ["steps without --dry-run:", *steps.listing(task_steps, real)]


# --- invoke build ------------------------------------------------------------------------------

BUILD_STEPS = (LOOK_UP_CACHE, BUILD)


@dataclass(frozen=True)
class BuildResult:
    """`invoke build`'s plan and its steps' outcomes: the images built (none in a dry run)."""

    plan: Plan
    done: Outcomes

    @property
    def built(self) -> tuple[BuiltImage, ...]:
        return self.done["build"] or ()

    def specs(self) -> list[dict[str, Any]]:
        """What the dry run shows: each image's tags, build args, labels and cache sources."""
        plan, options = self.plan, self.plan.options
        return builder.dry_run_specs(
            plan.settings,
            plan.meta,
            options.only,
            dockerfile_text=plan.dockerfile_text,
            dockerfile=options.dockerfile,
            context=options.context,
        )

    def listing(self) -> list[str]:
        return would_run(BUILD_STEPS, self.plan)


def build(run: Run, options: Options, session: Session) -> BuildResult:
    """`invoke build`: the plan (its warnings said first), then the build steps."""
    plan = prepare.for_build(run, options)
    for line in plan.warnings:
        session.warn(line)
    return BuildResult(plan, steps.run(BUILD_STEPS, plan, session))


# --- invoke release ----------------------------------------------------------------------------


def _push(plan: Plan, done: Outcomes, session: Session) -> ReleaseResult:
    return work.push(plan, done["build"] or plan.local, done, session)


PROMOTE = Step("promote", work.promote, _not_promoted)
RELEASE_STEPS = (
    PROMOTE,
    Step(
        "build",  # what is missing, or not this build's
        work.build_missing,
        lambda plan: _first(
            _promoted(plan),
            _dry_run(plan),
            None
            if any(image.image_id is None for image in plan.local)
            else "this build's images are on the engine",
        ),
    ),
    Step("push", _push, _promoted),
    SIGN,
    PUSH_STAGE_CACHES,
)


def released(plan: Plan, done: Outcomes, *after: str) -> ReleaseResult | None:
    """The release the steps made (None when nothing was released): the promotion's, or the
    pushes with the stage caches, with every warning in the order it arose; ``after``: lines
    said before the steps that belong to the result too."""
    promoted: ReleaseResult | None = done.get("promote")
    pushed: ReleaseResult | None = done.get("push")
    signed = list(done.get("sign") or ())
    meta = plan.meta
    # A dry run says where each registry's credentials would go, before anything is sent.
    routes = targets.credential_routes(plan.targets) if plan.options.dry_run else []
    if promoted is not None:
        warnings = [*meta.warnings, *promoted.warnings]
        return dataclasses.replace(
            promoted,
            version=meta.info.version,
            warnings=warnings,
            credentials=routes,
            signatures=signed,
        )
    if pushed is None:
        return None
    return dataclasses.replace(
        pushed,
        pushes=[*pushed.pushes, *(done.get("push stage caches") or ())],
        version=meta.info.version,
        warnings=[*meta.warnings, *plan.passed_over, *pushed.warnings, *after],
        credentials=routes,
        signatures=signed,
    )


@dataclass(frozen=True)
class ReleaseRun:
    """`invoke release`'s plan, its steps' outcomes and the release they made."""

    plan: Plan
    done: Outcomes
    result: ReleaseResult

    def listing(self) -> list[str]:
        return would_run(RELEASE_STEPS, self.plan)


def release(
    settings: Settings, env: Mapping[str, str], overrides: Overrides | None, options: Options,
    session: Session, warn: bool = True,
) -> ReleaseRun:  # fmt: skip
    """`invoke release`: refuse what may not be released, check the registries and plan once,
    then promote this commit's tested images when every registry holds them (no engine), or
    else (and only then) build what is missing and push, all from that plan. ``warn``: say
    the warnings as they arise (they are in the result too)."""
    plan = prepare.for_release(Run.read(settings, env, overrides), options, session)
    fallback = (
        [f"not promoting: {plan.not_promoting}; building the release instead"]
        if plan.not_promoting is not None
        else []
    )
    for line in [*plan.warnings, *fallback] if warn else ():
        session.warn(line)  # before the engine is asked: promotion needs none
    plan = prepare.with_local_images(plan, session)
    done = steps.run(RELEASE_STEPS, plan, session)
    result = released(plan, done, *fallback)
    assert result is not None  # a release plan always promotes or pushes
    promoted: ReleaseResult | None = done["promote"]
    later = promoted.warnings if promoted else [*plan.passed_over, *done["push"].warnings]
    cleared = cleared_by_force(plan)
    for line in [*later, *cleared] if warn else ():
        session.warn(line)
    return ReleaseRun(plan, done, result)


def cleared_by_force(plan: prepare.Plan) -> list[str]:
    """After a forced release: the rollback markers of the floating tags it moved are gone
    (:mod:`buildtools.plan.rollback`), so the next release moves them as usual again."""
    from buildtools.plan.rollback import held
    from buildtools.release import rollback

    if not plan.options.force or plan.options.dry_run:
        return []
    moved = set(held(plan.tag_lists)) & {t.name for t in plan.meta.tags if t.floating}
    lines = []
    for tag in sorted(moved):
        done = rollback.clear_in(plan.targets, plan.settings, tag)
        lines.extend(f"cleared rollback marker {ref}" for ref in done.markers)
    return lines


# --- invoke ci ---------------------------------------------------------------------------------


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
    Step("promote", _ci_promote, _not_promoted),
    LOOK_UP_CACHE,
    Step("build", _ci_build, _promoted),
    Step(
        "smoke test",
        _smoke_test,
        lambda plan: _first(
            _promoted(plan),
            None
            if plan.options.smoke_test
            else "SMOKE TEST SKIPPED (--no-smoke): the images were built but never started",
        ),
        loud=lambda plan: plan.promotion is None,
    ),
    Step("push", _ci_release, lambda plan: _first(_promoted(plan), _not_released(plan))),
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
