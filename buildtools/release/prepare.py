"""A task's one plan, made once before its first step: facts -> plan -> steps.

Everything a task reads before it changes anything goes here: the build's facts
(:class:`buildtools.facts.read.Run`), its tags and labels (:class:`Metadata`, with the releases
the registries hold), the app Dockerfile, the release decision, the registries (checked:
reachable, login accepted), whether this commit's tested images can be promoted, and which of
this build's images are already on the engine. The :class:`Plan` is frozen: every step reads
it, none recomputes any of it, so the images are built with exactly the names and tags that
are pushed, and the cache is looked up by them (:meth:`Metadata.branch_tag`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from buildtools.attest.keyring import Keys, load_keys
from buildtools.config import checks
from buildtools.config.schema import Settings
from buildtools.errors import BuildToolsError
from buildtools.facts.read import Run
from buildtools.plan import metadata
from buildtools.plan.metadata import Metadata
from buildtools.release import build as builder
from buildtools.release.steps import Session

# Releasing and its registries are imported where they are used: `invoke build` needs none.
if TYPE_CHECKING:
    from buildtools.engine.records import Store
    from buildtools.facts.source_tree import CommitTree
    from buildtools.plan.build_record import BuildRecord
    from buildtools.plan.build_source import Wanted
    from buildtools.plan.push_order import ReleaseImage
    from buildtools.plan.release_rule import Decision
    from buildtools.registry.targets import TagLists, Target
    from buildtools.release.promote import Promotion


@dataclass(frozen=True)
class Options:
    """What the task was asked to do (its flags)."""

    only: str = ""
    dockerfile: Path | None = None
    context: Path | None = None
    nocache: bool = False
    dry_run: bool = False
    force: bool = False
    smoke_test: bool = True
    promote: bool = True
    worktree: bool = False  # build the directory as it is (never releasable)


@dataclass(frozen=True)
class Plan:
    """Everything the steps of one task read. ``targets`` are the registries to push to,
    already checked and asked which releases they hold; empty when nothing is released.
    ``notes`` say why a release build will not push; ``not_promoting`` why a release is built
    instead of promoted (None when no promotion was tried); ``local`` this build's images
    found on the engine (image_id None when missing), ``passed_over`` the local images that are
    not this build's."""

    run: Run
    meta: Metadata
    options: Options = field(default_factory=Options)
    dockerfile_text: str | None = None
    warnings: tuple[str, ...] = ()  # said before the first step
    decision: Decision | None = None
    targets: tuple[Target, ...] = ()
    tag_lists: TagLists = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    promotion: Promotion | None = None
    not_promoting: str | None = None
    local: tuple[ReleaseImage, ...] = ()
    passed_over: tuple[str, ...] = ()
    # The keys that sign what is pushed and check what is promoted (loaded in the preflight).
    keys: Keys = field(default_factory=Keys)
    # The commit's tree the app is built from (None: the directory, a working-tree build) and
    # where this checkout keeps its build records (None outside git).
    tree: CommitTree | None = None
    store: Store | None = None
    source_notes: tuple[str, ...] = ()  # what the build source leaves out, or that it is none

    @property
    def settings(self) -> Settings:
        return self.run.settings

    @property
    def releases(self) -> bool:
        return bool(self.targets)

    def record_of(self, image_id: str | None) -> BuildRecord | None:
        """The build record of a local image as stored now (a reused image's, or a built one's
        after `invoke ci` added its smoke test); None when there is none."""
        return self.store.load(image_id) if self.store is not None else None

    @property
    def branch_build(self) -> bool:
        """A branch build (not a tag's): only these push stage caches for the next runner."""
        return bool(self.meta.info.branch and not self.meta.info.tag)


def roles(settings: Settings) -> list[tuple[str, str]]:
    return [("app", settings.app.repository), ("nginx", settings.nginx.image.repository)]


def repositories(settings: Settings) -> list[str]:
    return [repository for _, repository in roles(settings)]


def for_build(run: Run, options: Options) -> Plan:
    """`invoke build`'s plan: the metadata, and the app Dockerfile read and checked (its first
    error raised, its warnings said), and the build context checked, all before the engine."""
    settings = run.settings
    text = None
    if options.only != "nginx":
        text = builder.read_app_dockerfile(settings, options.dockerfile)
    found = builder.check_app_dockerfile(settings, options.only, options.dockerfile, text)
    if options.only in ("", "app"):
        checks.check_context(options.context or settings.app.context, bool(options.context))
    meta = metadata.of_run(run)
    plan = with_source(Plan(run, meta, options, text, warnings=(*meta.warnings, *found)))
    if plan.tree is not None and plan.dockerfile_text != text:  # the commit's own, checked too
        builder.check_app_dockerfile(
            settings, options.only, options.dockerfile, plan.dockerfile_text
        )
    return plan


def with_source(plan: Plan, releasing: bool = False) -> Plan:
    """``plan`` with the app's build source decided (:mod:`buildtools.release.sourcing`): the
    commit's tree and Dockerfile, or the directory, whose facts then say dirty (the tags,
    labels and version made again from them); its notes added to the warnings."""
    from buildtools.release import sourcing

    options = plan.options
    sourced = sourcing.decide(
        plan.run,
        context=options.context,
        dockerfile=options.dockerfile,
        releasing=releasing,
        worktree=options.worktree,
        app=options.only != "nginx",
    )
    meta = plan.meta
    if sourced.run is not plan.run:
        meta = metadata.of_run(sourced.run)
        warnings = (*meta.warnings, *plan.warnings[len(plan.meta.warnings) :])
    else:
        warnings = plan.warnings
    return dataclasses.replace(
        plan,
        run=sourced.run,
        meta=meta,
        dockerfile_text=sourced.dockerfile_text or plan.dockerfile_text,
        tree=sourced.tree,
        store=sourced.store,
        warnings=(*warnings, *sourced.notes),
        source_notes=sourced.notes,
    )


def checked_targets(run: Run, session: Session) -> list[Target]:
    from buildtools.registry import targets

    reporter = session.push_reporter
    return targets.configured(run.settings.release, run.env, on_retry=reporter.retry)


def with_registries(run: Run, found: list[Target], options: Options, **fields) -> Plan:
    """The plan from registries already checked: the tags chosen with the versions they hold
    (a backport must not move ``latest``)."""
    from buildtools.plan.rollback import held
    from buildtools.registry import targets

    lists = targets.tag_lists(found, repositories(run.settings))
    meta = metadata.of_run(run, targets.versions_in(lists), held(lists), options.force)
    return Plan(
        run, meta, options, targets=tuple(found), tag_lists=lists, warnings=meta.warnings, **fields
    )


def with_promotion(plan: Plan) -> Plan:
    """``plan`` with this commit's tested images prepared for promotion (reads only), or with
    the reason they cannot be; unchanged when promotion is off or nothing is released."""
    from buildtools.plan.manifest_rewrite import CannotPromote
    from buildtools.release import promote

    settings, options = plan.settings, plan.options
    if not (plan.releases and options.promote and settings.release.promote == "auto"):
        return plan
    text = plan.dockerfile_text or builder.read_app_dockerfile(settings)
    try:
        promotion = promote.prepare(
            settings, plan.meta, plan.targets, text, force=options.force,
            tag_lists=plan.tag_lists, store=plan.store, verify_key=plan.keys.verify,
        )  # fmt: skip
    except CannotPromote as exc:
        return dataclasses.replace(plan, dockerfile_text=text, not_promoting=exc.why)
    return dataclasses.replace(plan, dockerfile_text=text, promotion=promotion)


def for_release(run: Run, options: Options, session: Session) -> Plan:
    """`invoke release`'s plan without the engine: refuse what may not be released, check
    every registry once, choose the tags with what they hold, prepare the promotion. When there
    is none, :func:`with_local_images` completes it."""
    from buildtools.plan.release_rule import check_pull_request_release, check_releasable
    from buildtools.registry import targets

    settings = run.settings
    check_releasable(run.info, settings.release)
    check_pull_request_release(settings.release, settings.pull_request_tags)
    from buildtools.release import sourcing

    keys = load_keys(settings.release, run.env, signs=True)  # unusable: stops here
    found = checked_targets(run, session)
    targets.preflight(found, repositories(settings))
    # The commit's tree (git only): a context outside the checkout stops here, before the engine.
    sourced = sourcing.decide(run, context=None, dockerfile=None, releasing=True)
    plan = with_registries(
        run, found, options, dockerfile_text=sourced.dockerfile_text, tree=sourced.tree,
        store=sourced.store, keys=keys,
    )  # fmt: skip
    return with_promotion(dataclasses.replace(plan, warnings=(*plan.warnings, *sourced.notes)))


def with_local_images(plan: Plan, session: Session) -> Plan:
    """A release plan that promotes nothing, with this build's images as the engine has them
    (what is missing is built from this same plan) and the app Dockerfile (its stages)."""
    from buildtools.release import identity

    if plan.promotion is not None:
        return plan
    settings = plan.settings
    text = plan.dockerfile_text
    if text is None and not plan.options.dry_run:
        text = builder.read_app_dockerfile(settings)
    store = plan.store
    local, passed_over = identity.local_images(
        session.client(),
        roles(settings),
        plan.meta,
        records=store.load if store is not None else lambda image_id: None,
        wanted=wanted_inputs(plan, text),
    )
    return dataclasses.replace(
        plan, dockerfile_text=text, local=tuple(local), passed_over=tuple(passed_over)
    )


def wanted_inputs(plan: Plan, dockerfile_text: str | None) -> dict[str, Wanted]:
    """What this release would build each image from, which a local image's build record
    must say to be released as it is: the commit, the context's tree, the Dockerfile and every
    build arg but ``BASE_IMAGE`` (resolved by the engine at build time; its record keeps it)."""
    from buildtools.plan.build_source import Wanted, digest

    settings, meta, commit = plan.settings, plan.meta, plan.meta.info.commit
    args = {**settings.app.build_args, **builder.metadata_buildargs(meta)}
    app = Wanted(
        "app",
        commit,
        context_tree=plan.tree.tree_id if plan.tree is not None else "",
        dockerfile_digest=digest(dockerfile_text) if dockerfile_text is not None else "",
        build_args=args,
    )
    return {
        "app": app,
        "nginx": Wanted("nginx", commit, build_args=settings.nginx.image.build_args),
    }


def for_ci(run: Run, decision: Decision, options: Options, session: Session, text: str) -> Plan:
    """`invoke ci`'s plan before the first build step: for a release, check every registry and
    read its releases now, so a wrong password fails in seconds and the images carry exactly
    the tags that are pushed. A registry that asks for a login this build has no credentials
    for: a pull request (a fork's) builds without pushing; a tag build fails; a release
    branch builds and says loudly that nothing is released. ``text``: the app Dockerfile."""
    from buildtools.registry import targets

    def unreleased(*notes: str) -> Plan:
        meta = metadata.of_run(run)
        plan = Plan(run, meta, options, text, meta.warnings, decision, notes=notes)
        return with_source(plan)

    if not decision.release:
        return unreleased()
    keys = load_keys(run.settings.release, run.env, signs=True)  # unusable: stops here
    found = checked_targets(run, session)
    missing = targets.check(found, repositories(run.settings))
    if not missing:
        plan = with_registries(
            run, found, options, dockerfile_text=text, decision=decision, keys=keys
        )
        return with_promotion(with_source(plan, releasing=True))
    info = run.info
    error = targets.missing_error(missing)
    kind = "registry" if len(missing) == 1 else "registries"
    names = f"{kind} {', '.join(m.registry for m in missing)}"
    done = "built and tested" if options.smoke_test else "built (smoke test skipped)"
    if info.pull_request is not None:
        return unreleased(
            f"not releasing: {names} asks for a login and this build has no credentials for "
            f"it (normal for pull requests from forks); the images are {done}, not pushed"
        )
    if info.tag:
        raise BuildToolsError(
            f"tag {info.tag} cannot be released: {error.problem}", error.fix
        ) from None
    return unreleased(
        f"NOT RELEASED: release branch {info.branch} is not pushed: {error.problem}; "
        f"the images are {done} only (fix: {error.fix})"
    )
