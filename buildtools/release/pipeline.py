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

from buildtools.config.schema import Settings
from buildtools.engine.build_spec import BuiltImage
from buildtools.facts.buildinfo import Overrides
from buildtools.facts.read import Run
from buildtools.registry import targets
from buildtools.release import build as builder
from buildtools.release import prepare, signing, steps, work
from buildtools.release.prepare import Options, Plan
from buildtools.release.steps import Outcomes, Session, Step

if TYPE_CHECKING:
    from buildtools.release.publish import ReleaseResult


def dry_run_reason(plan: Plan) -> str | None:
    return "dry run" if plan.options.dry_run else None


def not_promoted(plan: Plan) -> str | None:
    if plan.promotion is not None:
        return None
    if plan.not_promoting is not None:
        return f"not promoting: {plan.not_promoting}"
    if not plan.releases:
        return "nothing is released"
    return "promotion is off (--no-promote or buildtools.release.promote)"


def promoted(plan: Plan) -> str | None:
    return "promoted this commit's tested images: nothing built" if plan.promotion else None


def first_reason(*reasons: str | None) -> str | None:
    return next((reason for reason in reasons if reason is not None), None)


LOOK_UP_CACHE = Step(
    "look up cache",
    work.look_up_cache,
    lambda plan: first_reason(
        promoted(plan), dry_run_reason(plan), "--no-cache" if plan.options.nocache else None
    ),
)
BUILD = Step(
    "build", work.build_images, lambda plan: first_reason(promoted(plan), dry_run_reason(plan))
)
PUSH_STAGE_CACHES = Step(
    "push stage caches",
    work.push_stage_caches,
    lambda plan: first_reason(
        promoted(plan),
        dry_run_reason(plan),
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
            source=plan.tree,
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


PROMOTE = Step("promote", work.promote, not_promoted)
RELEASE_STEPS = (
    PROMOTE,
    Step(
        "build",  # what is missing, or not this build's
        work.build_missing,
        lambda plan: first_reason(
            promoted(plan),
            dry_run_reason(plan),
            None
            if any(image.image_id is None for image in plan.local)
            else "this build's images are on the engine",
        ),
    ),
    Step("push", _push, promoted),
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
