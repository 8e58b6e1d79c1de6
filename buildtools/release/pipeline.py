"""The tasks' orchestration: read the facts once, plan once, then build and release.

One task invocation reads git and the CI environment once (:meth:`Run.read`). When the build
is to be released, the registries are checked (reachable, login accepted) and asked which
releases they hold *before* the first build step, and that one :class:`Plan` is what the images
are built with (version.yml's ``image_tags``, the labels) and what is pushed. Building what is
missing before a release happens here, above both :mod:`buildtools.release.build` and
:mod:`buildtools.release.publish`, which know nothing of each other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import docker
import docker.errors

from buildtools.config.schema import Settings
from buildtools.engine import build_spec, cache, connect
from buildtools.errors import BuildToolsError
from buildtools.facts.buildinfo import BuildInfo, Overrides
from buildtools.facts.read import Run
from buildtools.plan import metadata, push_order
from buildtools.plan.dockerfile import stages as dockerfile_stages
from buildtools.plan.metadata import Metadata
from buildtools.release import build as builder
from buildtools.release import progress
from buildtools.release.progress import PushReporter

# Releasing, its registries and the smoke test are imported where they are used: `invoke build`
# runs none of them, and each of its runs would import them for nothing.
if TYPE_CHECKING:
    from buildtools.plan.release_rule import Decision
    from buildtools.registry.targets import Target
    from buildtools.release import publish


def cache_sources(
    client: docker.DockerClient,
    settings: Settings,
    meta: Metadata,
    env: Mapping[str, str],
    say: Callable[[str], None],
    only: str = "",
    dockerfile_text: str = "",
) -> tuple[dict[str, tuple[str, ...]], list[cache.Resolved]]:
    """Pull earlier images of both repositories (and of the app's stages) from the registries
    (see :mod:`buildtools.engine.cache`) and add the newest local ones: each build's ``cache_from``.
    ``dockerfile_text`` is the app Dockerfile, read once by the task."""
    found: dict[str, tuple[str, ...]] = {}
    resolved: list[cache.Resolved] = []
    wanted: list[tuple[str, str, str]] = []
    for name, repository in roles(settings):
        if only and only != name:
            continue
        wanted.append((name, repository, ""))
        if name == "app":
            for stage in dockerfile_stages(dockerfile_text):
                wanted.append((f"app:{stage}", repository, cache.stage_prefix(stage)))
    for name, repository, prefix in wanted:
        pulled = cache.resolve(
            client, settings, meta, env, repository, name, prefix=prefix, say=say
        )
        resolved.append(pulled)
        # Nothing pulled: no cache_from, so the engine's own cache serves as always and the
        # local images need no listing (a tenth of a second on a busy engine).
        local = cache.local_sources(client, repository) if pulled.refs else []
        found[name] = cache.sources(pulled, local)
    return found, resolved


def credit_cache(
    client: docker.DockerClient,
    settings: Settings,
    built: list[build_spec.BuiltImage],
    resolved: list[cache.Resolved],
) -> list[build_spec.BuiltImage]:
    """Each built image with the pulled source that served its steps (for the summary)."""
    reasons = {ref: why for r in resolved for ref, why in r.reasons.items()}
    bases = {"app": settings.app.base_image, "nginx": settings.nginx.image.base_image}
    bases.update({b.name: settings.app.base_image for b in built if b.name.startswith("app:")})
    credited = []
    for image in built:
        refs = [ref for r in resolved if r.image == image.name for ref in r.refs]
        steps = cache.served(client, image.id, bases.get(image.name, ""), refs) if refs else {}
        entries = tuple((ref, reasons.get(ref, ""), n) for ref, n in steps.items())
        credited.append(dataclasses.replace(image, cache=entries))
    return credited


def build_images(
    client: docker.DockerClient,
    settings: Settings,
    meta: Metadata,
    env: Mapping[str, str],
    *,
    say: Callable[[str], None],
    reporter: build_spec.BuildReporter | None = None,
    pulled: list[cache.Resolved] | None = None,
    dockerfile_text: str | None = None,
    **options: Any,
) -> list[build_spec.BuiltImage]:
    """Pull cache sources, build (app, then sidecar), and credit the sources; ``pulled``, when
    given, receives what was pulled (for `invoke ci --json`: the bytes a fresh runner fetched).
    ``dockerfile_text``: the app Dockerfile as the task read it (read here when not given)."""
    nocache = bool(options.get("nocache"))
    only = options.get("only", "")
    if only != "nginx" and dockerfile_text is None:
        dockerfile_text = builder.read_app_dockerfile(settings, options.get("dockerfile"))
    found, resolved = (
        ({}, [])
        if nocache
        else cache_sources(client, settings, meta, env, say, only, dockerfile_text or "")
    )
    if pulled is not None:
        pulled.extend(resolved)
    built = builder.build_all(
        client,
        settings,
        meta,
        reporter=reporter,
        cache_from=found,
        dockerfile_text=dockerfile_text,
        **options,
    )
    return credit_cache(client, settings, built, resolved)


def repositories(settings: Settings) -> list[str]:
    return [settings.app.repository, settings.nginx.image.repository]


def roles(settings: Settings) -> list[tuple[str, str]]:
    return [("app", settings.app.repository), ("nginx", settings.nginx.image.repository)]


@dataclass(frozen=True)
class Plan:
    """A task's one plan, made before any engine work: what is built and what is published
    both come from ``meta``. ``targets`` are the registries to push to, already checked
    (reachable, login accepted) and asked which releases they hold; empty when nothing is
    released. ``notes`` say why a release build will not push."""

    meta: Metadata
    targets: tuple[Target, ...] = ()
    notes: tuple[str, ...] = ()
    # The tags each registry held per repository when the plan was made (read once).
    tag_lists: targets.TagLists = dataclasses.field(default_factory=dict)

    @property
    def releases(self) -> bool:
        return bool(self.targets)


def configured_targets(run: Run, reporter: PushReporter | None = None) -> list[Target]:
    from buildtools.registry import targets

    on_retry = reporter.retry if reporter is not None else None
    return targets.configured(run.settings.release, run.env, on_retry=on_retry)


def plan_release(run: Run, found: Sequence[Target]) -> Plan:
    """The release plan from registries already checked: the tags planned with the versions
    they hold (a backport must not move ``latest``). Nothing is pushed or tagged."""
    from buildtools.registry import targets

    lists = targets.tag_lists(found, repositories(run.settings))
    return Plan(metadata.of_run(run, targets.versions_in(lists)), tuple(found), tag_lists=lists)


def plan_ci(run: Run, decision: Decision, reporter: PushReporter, smoke_test: bool) -> Plan:
    """`invoke ci`'s plan before the first build step: for a release, check every registry and
    read its releases now, so a wrong password fails in seconds and the images carry exactly
    the tags that are pushed. A registry that asks for a login this build has no credentials
    for: a pull request (a fork's) builds without pushing; a tag build fails; a release
    branch builds and says loudly that nothing is released."""
    from buildtools.registry import targets

    if not decision.release:
        return Plan(metadata.of_run(run))
    found = configured_targets(run, reporter)
    missing = targets.check(found, repositories(run.settings))
    if not missing:
        return plan_release(run, found)
    info = run.info
    error = targets.missing_error(missing)
    kind = "registry" if len(missing) == 1 else "registries"
    names = f"{kind} {', '.join(m.registry for m in missing)}"
    done = "built and tested" if smoke_test else "built (smoke test skipped)"
    if info.pull_request is not None:
        note = (
            f"not releasing: {names} asks for a login and this build has no credentials for "
            f"it (normal for pull requests from forks); the images are {done}, not pushed"
        )
        return Plan(metadata.of_run(run), notes=(note,))
    if info.tag:
        raise BuildToolsError(
            f"tag {info.tag} cannot be released: {error.problem}", error.fix
        ) from None
    note = (
        f"NOT RELEASED: release branch {info.branch} is not pushed: {error.problem}; "
        f"the images are {done} only (fix: {error.fix})"
    )
    return Plan(metadata.of_run(run), notes=(note,))


def publish(
    client: docker.DockerClient,
    settings: Settings,
    plan: Plan,
    *,
    force: bool = False,
    dry_run: bool = False,
    reporter: PushReporter | None = None,
    build_reporter: Any = None,
    dockerfile_text: str | None = None,
) -> publish.ReleaseResult:
    """Release the images built for this build (this commit, clean, this version), building
    them first from the same plan when they are missing or not this build's."""
    from buildtools.registry import targets
    from buildtools.release import publish

    meta = plan.meta
    found, passed_over = publish.local_images(client, roles(settings), meta)
    if not dry_run and any(image.image_id is None for image in found):
        dockerfile_text = dockerfile_text or builder.read_app_dockerfile(settings)
        builder.build_all(
            client, settings, meta, reporter=build_reporter, dockerfile_text=dockerfile_text
        )
        found, _ = publish.local_images(client, roles(settings), meta)
    result = publish.push_all(
        client,
        found,
        meta.tags,
        plan.targets,
        retry=targets.retry_policy(settings.release),
        force=force,
        dry_run=dry_run,
        reporter=reporter,
        expected=publish.Expected.of(meta),
    )
    if not dry_run:
        stages = dockerfile_stages(dockerfile_text or builder.read_app_dockerfile(settings))
        result.pushes.extend(push_stage_caches(client, settings, plan, stages, reporter))
    result.version = meta.info.version
    result.warnings = [*meta.warnings, *passed_over, *result.warnings]
    return result


def push_stage_caches(
    client: docker.DockerClient,
    settings: Settings,
    plan: Plan,
    stages: Sequence[str],
    reporter: PushReporter | None,
) -> list[push_order.Push]:
    """The app's stage images, pushed as ``cache-<stage>-<branch>`` for the next fresh runner
    (branch builds only; never a release tag)."""
    from buildtools.registry import targets
    from buildtools.release import publish

    meta = plan.meta
    if not (meta.info.branch and not meta.info.tag):
        return []
    pushes: list[push_order.Push] = []
    for stage in stages:
        ref = builder.stage_ref(settings.app.repository, meta, stage)
        try:
            image_id = client.images.get(ref).id
        except docker.errors.ImageNotFound:
            continue
        tag = ref.rpartition(":")[2]
        stage_image = push_order.ReleaseImage(f"app:{stage}", settings.app.repository, image_id)
        done = publish.push_all(
            client,
            [stage_image],
            [(tag, True)],
            plan.targets,
            retry=targets.retry_policy(settings.release),
            reporter=reporter,
        )
        pushes.extend(done.pushes)
    return pushes


def try_promote(
    settings: Settings,
    plan: Plan,
    dockerfile_text: str,
    *,
    force: bool = False,
    dry_run: bool = False,
    reporter: PushReporter | None = None,
) -> publish.ReleaseResult | str:
    """The release promoted from this commit's tested ``sha-`` images (no engine: see
    :mod:`buildtools.release.promote`), or the one line saying why it is built instead."""
    from buildtools.release import promote as promoter

    return promoter.attempt(
        settings,
        plan.meta,
        plan.targets,
        dockerfile_text,
        force=force,
        dry_run=dry_run,
        reporter=reporter,
        tag_lists=plan.tag_lists,
    )


def release_task(
    settings: Settings,
    env: Mapping[str, str],
    overrides: Overrides | None,
    *,
    force: bool = False,
    dry_run: bool = False,
    quiet: bool = False,
    warn: Callable[[str], None] | None = None,
    promote: bool = True,
) -> publish.ReleaseResult:
    """`invoke release`: refuse what may not be released, check the registries and plan once,
    then promote this commit's tested images when every registry holds them (no engine), or
    else (and only then) build what is missing and push, all from that plan."""
    from buildtools.plan.release_rule import check_pull_request_release, check_releasable
    from buildtools.registry import targets

    run = Run.read(settings, env, overrides)
    check_releasable(run.info, settings.release)
    check_pull_request_release(settings.release, settings.pull_request_tags)
    reporter = progress.QuietReporter() if quiet else progress.LineReporter()
    found = configured_targets(run, reporter)
    targets.preflight(found, repositories(settings))
    plan = plan_release(run, found)
    for line in plan.meta.warnings if warn else ():
        warn(line)
    fallback: list[str] = []
    text: str | None = None  # read once: promotion and a fallback build both need it
    if promote and settings.release.promote == "auto":
        text = builder.read_app_dockerfile(settings)
        attempted = try_promote(
            settings, plan, text, force=force, dry_run=dry_run, reporter=reporter
        )
        if not isinstance(attempted, str):
            for line in attempted.warnings[len(plan.meta.warnings) :] if warn else ():
                warn(line)
            attempted.credentials = targets.credential_routes(found) if dry_run else []
            return attempted
        fallback.append(f"not promoting: {attempted}; building the release instead")
        for line in fallback if warn else ():
            warn(line)
    client = connect.connect()
    build_progress = None if quiet else progress.BuildProgress()
    try:
        result = publish(
            client,
            settings,
            plan,
            force=force,
            dry_run=dry_run,
            reporter=reporter,
            build_reporter=build_progress,
            dockerfile_text=text,
        )
    finally:
        if build_progress:
            build_progress.close()
    for line in result.warnings[len(plan.meta.warnings) :] if warn else ():
        warn(line)
    result.warnings.extend(fallback)
    result.credentials = targets.credential_routes(found) if dry_run else []
    return result


def describe_cache(image: build_spec.BuiltImage) -> str:
    """One line: steps rebuilt and where the cached ones came from."""
    rebuilt = image.steps - image.cached_steps
    served = "; ".join(f"{n} steps from {ref} ({why})" for ref, why, n in image.cache)
    return f"{rebuilt} of {image.steps} steps rebuilt" + (f", {served}" if served else "")


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


def ci(
    settings: Settings,
    env: Mapping[str, str],
    *,
    quiet: bool = False,
    say: Callable[[str], None] = print,
    smoke_test: bool = True,
    dockerfile_text: str | None = None,
    promote: bool = True,
) -> dict[str, Any]:
    """`invoke ci`: decide, check the registries and plan once, then build both images,
    smoke-test them together and release that plan if the rule says so. Git and the CI
    environment are read once; each registry is checked once, before any engine work."""
    from buildtools.engine import stack
    from buildtools.plan.release_rule import REFUSE, check_pull_request_release, decide

    run = Run.read(settings, env)
    if smoke_test:
        # Labelled so before the smoke test runs: true of every registry copy, since nothing
        # is pushed unless it passed (a local copy is never released by another task).
        run = dataclasses.replace(run, info=dataclasses.replace(run.info, smoke_gated=True))
    info = run.info
    check_pull_request_release(settings.release, settings.pull_request_tags)
    decision = decide(info, settings.release)
    steps = ["build", "smoke test" if smoke_test else "NO smoke test"]
    steps += ["release"] if decision.release else []
    say(f"ci: {describe(info)}: {', '.join(steps)} ({decision.reason})")
    push_reporter = progress.QuietReporter() if quiet else progress.LineReporter()
    plan = plan_ci(run, decision, push_reporter, smoke_test)
    for note in plan.notes:
        say(f"ci: {note}")
    dockerfile_text = dockerfile_text or builder.read_app_dockerfile(settings)
    meta = plan.meta
    if plan.releases and promote and settings.release.promote == "auto":
        attempted = try_promote(settings, plan, dockerfile_text, reporter=push_reporter)
        if isinstance(attempted, str):
            say(f"ci: not promoting: {attempted}; building")
        else:
            tested = (
                f"no smoke test here (invoke ci smoke-tested them before it pushed {meta.sha_tag})"
                if smoke_test
                else "no smoke test (--no-smoke)"
            )
            say(
                f"ci: promoted the {meta.sha_tag} images to the release tags: nothing built, "
                f"{tested}"
            )
            for line in attempted.warnings[len(meta.warnings) :]:
                say(f"ci: {line}")
            if not quiet:
                say(attempted.text())
            return {
                "build": describe(info),
                "decision": {"release": True, "reason": decision.reason},
                "images": [],
                "cache_sources": [],
                "released": attempted.as_dict(),
            }
    client = connect.connect()
    reporter = None if quiet else progress.BuildProgress()
    pulled: list[cache.Resolved] = []
    try:
        built = build_images(
            client,
            settings,
            meta,
            env,
            say=say,
            reporter=reporter,
            pulled=pulled,
            dockerfile_text=dockerfile_text,
        )
    finally:
        if reporter:
            reporter.close()
    for image in built:
        say(f"ci: {image.name}: {describe_cache(image)}")
    by_name = {b.name: b.tags[0] for b in built}
    app, sidecar = by_name["app"], by_name["nginx"]
    if smoke_test:
        passed = stack.smoke(
            client,
            app,
            sidecar,
            info.version,
            stack.run_name("lara-ci", info.commit),
            cfg=settings.smoke,
            env=env,
            say=say,
        )
        asset = f"; {passed['asset']} comes from the sidecar, immutable" if passed["asset"] else ""
        say(
            f"ci: smoke test passed: GET {passed['path']} through the sidecar shows "
            f"{passed['expected']!r}{asset} ({info.short_commit})"
        )
    else:
        say("ci: SMOKE TEST SKIPPED (--no-smoke): the images were built but never started")
    released = plan.releases
    reason = decision.reason if released or not plan.notes else plan.notes[0]
    result: dict[str, Any] = {
        "build": describe(info),
        "decision": {"release": released, "reason": reason},
        "images": [b.as_dict() for b in built],
        "cache_sources": [r.as_dict() for r in pulled],
        "released": None,
    }
    if decision.outcome == REFUSE:
        raise decision.error()
    if not released:
        for note in plan.notes:  # said first; said again last, where a CI log is read
            say(f"ci: {note}")
        return result
    published = publish(
        client, settings, plan, reporter=push_reporter, dockerfile_text=dockerfile_text
    )
    result["released"] = published.as_dict()
    if not quiet:
        say(published.text())
    return result
