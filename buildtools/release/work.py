"""What the steps do: each function is one step's ``run`` over the task's frozen plan
(:mod:`buildtools.release.prepare`), returning its outcome as a value.

Building what is missing before a release happens here, above both
:mod:`buildtools.release.build` and :mod:`buildtools.release.publish`, which know nothing of
each other.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from buildtools.engine import build_spec, cache
from buildtools.plan import push_order
from buildtools.plan.dockerfile import stages as dockerfile_stages
from buildtools.plan.push_order import ReleaseImage
from buildtools.release import build as builder
from buildtools.release.prepare import Plan, roles
from buildtools.release.steps import Outcomes, Session

if TYPE_CHECKING:
    from buildtools.release.publish import ReleaseResult


@dataclass(frozen=True)
class CacheSources:
    """Each build's ``cache_from`` (``app``, ``app:<stage>``, ``nginx``), and what was pulled
    from the registries for each image (for the summary and `invoke ci --json`)."""

    sources: dict[str, tuple[str, ...]]
    pulled: tuple[cache.Resolved, ...]


def look_up_cache(plan: Plan, done: Outcomes, session: Session) -> CacheSources:
    """Pull earlier images of both repositories (and of the app's stages) from the registries
    (see :mod:`buildtools.engine.cache`) and add the newest local ones, named as the plan
    names them."""
    settings, meta, only = plan.settings, plan.meta, plan.options.only
    client = session.client()
    wanted: list[tuple[str, str, str]] = []
    for name, repository in roles(settings):
        if only and only != name:
            continue
        wanted.append((name, repository, ""))
        if name == "app":
            for stage in dockerfile_stages(plan.dockerfile_text or ""):
                wanted.append((f"app:{stage}", repository, cache.stage_prefix(stage)))
    found: dict[str, tuple[str, ...]] = {}
    resolved: list[cache.Resolved] = []
    for name, repository, prefix in wanted:
        pulled = cache.resolve(
            client, settings, meta, plan.run.env, repository, name, prefix=prefix, say=session.say
        )
        resolved.append(pulled)
        # Nothing pulled: no cache_from, so the engine's own cache serves as always and the
        # local images need no listing (a tenth of a second on a busy engine).
        local = cache.local_sources(client, repository) if pulled.refs else []
        found[name] = cache.sources(pulled, local)
    return CacheSources(found, tuple(resolved))


def credit_cache(
    plan: Plan,
    session: Session,
    built: list[build_spec.BuiltImage],
    pulled: tuple[cache.Resolved, ...],
) -> tuple[build_spec.BuiltImage, ...]:
    """Each built image with the pulled source that served its steps (for the summary)."""
    settings = plan.settings
    reasons = {ref: why for r in pulled for ref, why in r.reasons.items()}
    bases = {"app": settings.app.base_image, "nginx": settings.nginx.image.base_image}
    bases.update({b.name: settings.app.base_image for b in built if b.name.startswith("app:")})
    credited = []
    for image in built:
        refs = [ref for r in pulled if r.image == image.name for ref in r.refs]
        base = bases.get(image.name, "")
        steps = cache.served(session.client(), image.id, base, refs) if refs else {}
        entries = tuple((ref, reasons.get(ref, ""), n) for ref, n in steps.items())
        credited.append(dataclasses.replace(image, cache=entries))
    return tuple(credited)


def build_images(plan: Plan, done: Outcomes, session: Session) -> tuple[build_spec.BuiltImage, ...]:
    """Build the app (its stages first), then the sidecar from it, from the plan's metadata
    and with the cache sources looked up before; each image credited with what served it."""
    sources: CacheSources = done.get("look up cache") or CacheSources({}, ())
    options = plan.options
    with session.build_progress() as reporter:
        built = builder.build_all(
            session.client(),
            plan.settings,
            plan.meta,
            only=options.only,
            dockerfile=options.dockerfile,
            context=options.context,
            nocache=options.nocache,
            reporter=reporter,
            cache_from=sources.sources,
            dockerfile_text=plan.dockerfile_text,
            source=plan.tree,
            store=plan.store,
        )
    return credit_cache(plan, session, built, sources.pulled)


def build_missing(plan: Plan, done: Outcomes, session: Session) -> tuple[ReleaseImage, ...]:
    """`invoke release` of images not built yet (or not this build's): both are built from the
    plan, and released as built."""
    built = build_images(plan, done, session)
    return release_images(plan, built)


def release_images(
    plan: Plan, built: tuple[build_spec.BuiltImage, ...]
) -> tuple[ReleaseImage, ...]:
    ids = {image.name: image.id for image in built}
    return tuple(ReleaseImage(name, repo, ids.get(name)) for name, repo in roles(plan.settings))


def promote(plan: Plan, done: Outcomes, session: Session) -> ReleaseResult:
    """Release this commit's tested images under the release tags, without an engine."""
    from buildtools.release import promote as promoter
    from buildtools.release import signing

    assert plan.promotion is not None  # the step's skip says so
    sign, signed = signing.before_floating(plan, done, session)
    result = promoter.execute(
        plan.targets,
        plan.promotion,
        settings=plan.settings,
        dry_run=plan.options.dry_run,
        reporter=session.push_reporter,
        before_floating=sign,
    )
    return dataclasses.replace(result, signatures=signed)


def push(
    plan: Plan, images: tuple[ReleaseImage, ...], done: Outcomes, session: Session
) -> ReleaseResult:
    """Push ``images`` with every tag of the plan to every registry of the plan, verified;
    with a signing key, what the exact tags hold is signed before a floating tag moves."""
    from buildtools.registry import targets
    from buildtools.release import publish, signing

    sign, signed = signing.before_floating(plan, done, session)
    result = publish.push_all(
        session.client(),
        images,
        plan.meta.tags,
        plan.targets,
        retry=targets.retry_policy(plan.settings.release),
        force=plan.options.force,
        dry_run=plan.options.dry_run,
        reporter=session.push_reporter,
        expected=publish.Expected.of(plan.meta),
        before_floating=(lambda exact: sign(publish.ReleaseResult(exact, False))) if sign else None,
        proven=signing.adoption_proof(plan),
    )
    return dataclasses.replace(result, signatures=signed)


def push_stage_caches(plan: Plan, done: Outcomes, session: Session) -> tuple[push_order.Push, ...]:
    """The app's stage images, pushed as ``cache-<stage>-<branch>`` for the next fresh runner
    (branch builds only; never a release tag)."""
    import docker.errors

    from buildtools.registry import targets
    from buildtools.release import publish

    settings, client = plan.settings, session.client()
    pushes: list[push_order.Push] = []
    for stage in dockerfile_stages(plan.dockerfile_text or ""):
        ref = builder.stage_ref(settings.app.repository, plan.meta, stage)
        try:
            image_id = client.images.get(ref).id
        except docker.errors.ImageNotFound:
            continue
        tag = ref.rpartition(":")[2]
        stage_image = ReleaseImage(f"app:{stage}", settings.app.repository, image_id)
        pushed = publish.push_all(
            client,
            [stage_image],
            [(tag, True)],
            plan.targets,
            retry=targets.retry_policy(settings.release),
            reporter=session.push_reporter,
        )
        pushes.extend(pushed.pushes)
    return tuple(pushes)


def describe_cache(image: build_spec.BuiltImage) -> str:
    """One line: steps rebuilt and where the cached ones came from."""
    rebuilt = image.steps - image.cached_steps
    served = "; ".join(f"{n} steps from {ref} ({why})" for ref, why, n in image.cache)
    return f"{rebuilt} of {image.steps} steps rebuilt" + (f", {served}" if served else "")


def record_smoke_test(
    plan: Plan, built: tuple[build_spec.BuiltImage, ...], name: str, passed: Mapping[str, Any]
) -> None:
    """The passed smoke test, in the build record of both images (what a promotion without
    keys asks for): which stack ran, which path answered with what, and when."""
    if plan.store is None:
        return
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    said = {
        "stack": name,
        "path": str(passed["path"]),
        "expected": str(passed["expected"]),
        "time": when,
    }
    for image in built:
        if image.name in ("app", "nginx"):
            plan.store.with_smoke_test(image.id, said)
