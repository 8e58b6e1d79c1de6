"""The tasks' orchestration: read the facts once, plan purely, then build and release.

One task invocation reads git and the CI environment once (:meth:`Run.read`); everything after
that is planned from the frozen result. A release builds the targets and checks each registry
once, asks them which releases exist, and re-plans only the tags (:func:`prepare_release`).
Building what is missing before a release happens here, above both :mod:`buildtools.build`
and :mod:`buildtools.release`, which know nothing of each other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors

from buildtools import build as builder
from buildtools import (
    cache,
    engine,
    images,
    progress,
    pushplan,
    release,
    stack,
    targets,
)
from buildtools.buildinfo import BuildInfo, Overrides
from buildtools.config import Settings
from buildtools.decision import check_releasable, decide
from buildtools.dockerfile import stages as dockerfile_stages
from buildtools.facts import Run
from buildtools.metadata import Metadata
from buildtools.progress import PushReporter
from buildtools.targets import Target


def cache_sources(
    client: docker.DockerClient,
    settings: Settings,
    meta: Metadata,
    env: Mapping[str, str],
    say: Callable[[str], None],
    only: str = "",
    dockerfile: Path | None = None,
) -> tuple[dict[str, tuple[str, ...]], list[cache.Resolved]]:
    """Pull earlier images of both repositories (and of the app's stages) from the registries
    (see :mod:`buildtools.cache`) and add the newest local ones: each build's ``cache_from``."""
    found: dict[str, tuple[str, ...]] = {}
    resolved: list[cache.Resolved] = []
    wanted: list[tuple[str, str, str]] = []
    for name, repository in roles(settings):
        if only and only != name:
            continue
        wanted.append((name, repository, ""))
        if name == "app":
            text = images.read_dockerfile(dockerfile or settings.app.dockerfile)
            for stage in dockerfile_stages(text):
                wanted.append((f"app:{stage}", repository, cache.stage_prefix(stage)))
    for name, repository, prefix in wanted:
        pulled = cache.resolve(
            client, settings, meta, env, repository, name, prefix=prefix, say=say
        )
        resolved.append(pulled)
        found[name] = cache.sources(pulled, cache.local_sources(client, repository))
    return found, resolved


def credit_cache(
    client: docker.DockerClient,
    settings: Settings,
    built: list[images.BuiltImage],
    resolved: list[cache.Resolved],
) -> list[images.BuiltImage]:
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
    reporter: images.BuildReporter | None = None,
    pulled: list[cache.Resolved] | None = None,
    **options: Any,
) -> list[images.BuiltImage]:
    """Pull cache sources, build (app, then sidecar), and credit the sources; ``pulled``, when
    given, receives what was pulled (for `invoke ci --json`: the bytes a fresh runner fetched)."""
    nocache = bool(options.get("nocache"))
    found, resolved = (
        ({}, [])
        if nocache
        else cache_sources(
            client, settings, meta, env, say, options.get("only", ""), options.get("dockerfile")
        )
    )
    if pulled is not None:
        pulled.extend(resolved)
    built = builder.build_all(
        client, settings, meta, reporter=reporter, cache_from=found, **options
    )
    return credit_cache(client, settings, built, resolved)


def repositories(settings: Settings) -> list[str]:
    return [settings.app.repository, settings.nginx.image.repository]


def roles(settings: Settings) -> list[tuple[str, str]]:
    return [("app", settings.app.repository), ("nginx", settings.nginx.image.repository)]


@dataclass(frozen=True)
class Prepared:
    """A release ready to push: tags planned with the registries' versions, registries checked."""

    meta: Metadata
    targets: list[Target]


def release_targets(run: Run, reporter: PushReporter | None = None) -> list[Target]:
    on_retry = reporter.retry if reporter is not None else None
    return targets.targets(run.settings.release, run.env, on_retry=on_retry)


def prepare_release(run: Run, found: list[Target]) -> Prepared:
    """Check every registry once, then plan the tags with the versions they already hold (a
    backport must not move ``latest``). Nothing is pushed or tagged."""
    repos = repositories(run.settings)
    targets.preflight(found, repos)
    versions = targets.known_versions(found, repos)
    return Prepared(run.metadata(versions), found)


def publish(
    client: docker.DockerClient,
    settings: Settings,
    prepared: Prepared,
    *,
    force: bool = False,
    dry_run: bool = False,
    reporter: PushReporter | None = None,
    build_reporter: Any = None,
) -> release.ReleaseResult:
    """Release the images built for this commit, building them first when they are missing."""
    meta = prepared.meta
    images = release.local_images(client, roles(settings), meta)
    if not dry_run and any(image.image_id is None for image in images):
        builder.build_all(client, settings, meta, reporter=build_reporter)
        images = release.local_images(client, roles(settings), meta)
    result = release.push_all(
        client,
        images,
        meta.tags,
        prepared.targets,
        retry=targets.retry_policy(settings.release),
        force=force,
        dry_run=dry_run,
        reporter=reporter,
        revision=meta.info.commit,
    )
    if not dry_run:
        result.pushes.extend(push_stage_caches(client, settings, prepared, reporter))
    result.version = meta.info.version
    result.warnings = [*meta.warnings, *result.warnings]
    return result


def push_stage_caches(
    client: docker.DockerClient,
    settings: Settings,
    prepared: Prepared,
    reporter: PushReporter | None,
) -> list[pushplan.Push]:
    """The app's stage images, pushed as ``cache-<stage>-<branch>`` for the next fresh runner
    (branch builds only; never a release tag)."""
    meta = prepared.meta
    if not (meta.info.branch and not meta.info.tag):
        return []
    pushes: list[pushplan.Push] = []
    text = images.read_dockerfile(settings.app.dockerfile)
    for stage in dockerfile_stages(text):
        ref = builder.stage_ref(settings.app.repository, meta, stage)
        try:
            image_id = client.images.get(ref).id
        except docker.errors.ImageNotFound:
            continue
        tag = ref.rpartition(":")[2]
        stage_image = pushplan.ReleaseImage(f"app:{stage}", settings.app.repository, image_id)
        done = release.push_all(
            client,
            [stage_image],
            [(tag, True)],
            prepared.targets,
            retry=targets.retry_policy(settings.release),
            reporter=reporter,
        )
        pushes.extend(done.pushes)
    return pushes


def release_task(
    settings: Settings,
    env: Mapping[str, str],
    overrides: Overrides | None,
    *,
    force: bool = False,
    dry_run: bool = False,
    quiet: bool = False,
    warn: Callable[[str], None] | None = None,
) -> release.ReleaseResult:
    """`invoke release`: refuse what may not be released, check, plan, build if needed, push."""
    run = Run.read(settings, env, overrides)
    check_releasable(run.info, settings.release)
    reporter = progress.QuietReporter() if quiet else progress.LineReporter()
    prepared = prepare_release(run, release_targets(run, reporter))
    for line in prepared.meta.warnings if warn else ():
        warn(line)
    client = engine.connect()
    build_progress = None if quiet else progress.BuildProgress()
    try:
        result = publish(
            client,
            settings,
            prepared,
            force=force,
            dry_run=dry_run,
            reporter=reporter,
            build_reporter=build_progress,
        )
    finally:
        if build_progress:
            build_progress.close()
    for line in result.warnings[len(prepared.meta.warnings) :] if warn else ():
        warn(line)
    return result


def describe_cache(image: images.BuiltImage) -> str:
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


def run(
    settings: Settings,
    env: Mapping[str, str],
    *,
    quiet: bool = False,
    say=print,
    smoke_test: bool = True,
) -> dict[str, Any]:
    """`invoke ci`: build both images, smoke-test them together, then release if the rule says
    so. Git and the CI environment are read once; each registry is checked once."""
    facts_run = Run.read(settings, env)
    info = facts_run.info
    meta = facts_run.metadata()
    decision = decide(info, settings.release)
    plan = "build, smoke test, release" if decision.release else "build, smoke test"
    say(f"ci: {describe(info)}: {plan} ({decision.reason})")
    client = engine.connect()
    reporter = None if quiet else progress.BuildProgress()
    pulled: list[cache.Resolved] = []
    try:
        built = build_images(client, settings, meta, env, say=say, reporter=reporter, pulled=pulled)
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
    result: dict[str, Any] = {
        "build": describe(info),
        "decision": {"release": decision.release, "reason": decision.reason},
        "images": [b.as_dict() for b in built],
        "cache_sources": [r.as_dict() for r in pulled],
        "released": None,
    }
    if decision.outcome == "refuse":
        raise decision.error()
    if not decision.release:
        return result
    push_reporter = progress.QuietReporter() if quiet else progress.LineReporter()
    found = release_targets(facts_run, push_reporter)
    anonymous = [t.name for t in found if t.credentials is None]
    if anonymous:
        say(
            f"ci: not releasing: no credentials for {', '.join(anonymous)} in this build's "
            "environment (normal for pull requests from forks); images were built and tested"
        )
        result["decision"] = {"release": False, "reason": "no registry credentials"}
        return result
    prepared = prepare_release(facts_run, found)
    released = publish(client, settings, prepared, reporter=push_reporter)
    result["released"] = released.as_dict()
    if not quiet:
        say(released.text())
    return result
