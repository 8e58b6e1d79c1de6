"""What `invoke build` builds: the app image, then its nginx sidecar, from one Metadata.

Pure functions turn Settings + Metadata into BuildSpecs (what --dry-run prints); ``build_all``
hands them to a :class:`~buildtools.engine.build_spec.Builder` in order, because the sidecar
copies assets out of the app image.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import docker

from buildtools.config.schema import ImageConfig, NginxConfig, Settings
from buildtools.engine import build_spec, cache, images, records
from buildtools.engine import context as commit_context
from buildtools.errors import BuildToolsError
from buildtools.facts.source_tree import CommitTree
from buildtools.plan import tags, versionfile
from buildtools.plan.build_record import BuildRecord
from buildtools.plan.dockerfile import ERROR
from buildtools.plan.dockerfile import problems as dockerfile_problems
from buildtools.plan.dockerfile import stages as dockerfile_stages
from buildtools.plan.metadata import Metadata
from buildtools.sidecar import asset_fallback, image

IMAGES = ("app", "nginx")


def base_buildargs(image: ImageConfig) -> dict[str, str]:
    """``BASE_IMAGE`` when configured; empty config leaves the Dockerfile's own FROM alone."""
    return {"BASE_IMAGE": image.base_image} if image.base_image else {}


def metadata_buildargs(meta: Metadata) -> dict[str, str]:
    """The build args the Dockerfile turns into ENV and /lara/config/version.yml."""
    info = meta.info
    return {
        "LARA_VERSION": info.version,
        "LARA_BRANCH": info.branch or "",
        "LARA_TAG": info.tag or "",
        "LARA_COMMIT": info.commit,
        "LARA_BUILD_DATE": info.build_date,
        "LARA_BUILD_URL": info.build_url or "",
        "LARA_VERSION_YML": versionfile.render(meta.version_data(), "yaml"),
    }


def app_spec(
    settings: Settings,
    meta: Metadata,
    *,
    dockerfile: Path | None = None,
    context: Path | None = None,
    nocache: bool = False,
    cache_from: Sequence[str] = (),
    source: CommitTree | None = None,
    dockerfile_text: str | None = None,
) -> build_spec.BuildSpec:
    """The app's build; ``source``: the commit's tree to build from (None: the directory)."""
    app = settings.app
    return build_spec.BuildSpec(
        name="app",
        dockerfile=dockerfile or app.dockerfile,
        context=context or app.context,
        tags=meta.local_refs(app.repository),
        buildargs={**base_buildargs(app), **app.build_args, **metadata_buildargs(meta)},
        labels=dict(meta.labels),
        nocache=nocache,
        cache_from=tuple(cache_from),
        source=source,
        dockerfile_text=dockerfile_text if source is not None else None,
    )


def stage_ref(repository: str, meta: Metadata, stage: str) -> str:
    """The local (and, at release, pushed) name of a stage's image: ``cache-<stage>-<branch>``,
    a name no release tag can have; builds without a branch use their commit tag."""
    branch = meta.cache_branch
    suffix = meta.branch_tag(branch) if branch else meta.sha_tag
    return f"{repository}:{tags.prefixed(cache.stage_prefix(stage), suffix)}"


def stage_specs(
    settings: Settings,
    meta: Metadata,
    *,
    dockerfile: Path | None = None,
    context: Path | None = None,
    nocache: bool = False,
    cache_from: Mapping[str, Sequence[str]] | None = None,
    dockerfile_text: str | None = None,
    source: CommitTree | None = None,
) -> list[build_spec.BuildSpec]:
    """One build per named stage before the app Dockerfile's last, with ``target``: the classic
    builder reuses only the final stage of a pulled image, so each stage is an image of its
    own. Their build args leave out the metadata: a new commit never rebuilds a stage.
    ``dockerfile_text``: the app Dockerfile as already read (:func:`read_app_dockerfile`)."""
    app = settings.app
    text = dockerfile_text or read_app_dockerfile(settings, dockerfile)
    sources = cache_from or {}
    return [
        build_spec.BuildSpec(
            name=f"app:{stage}",
            dockerfile=dockerfile or app.dockerfile,
            context=context or app.context,
            tags=(stage_ref(app.repository, meta, stage),),
            buildargs={**base_buildargs(app), **app.build_args},
            labels={},
            nocache=nocache,
            cache_from=tuple(sources.get(f"app:{stage}", ())),
            target=stage,
            source=source,
            dockerfile_text=text if source is not None else None,
        )
        for stage in dockerfile_stages(text)
    ]


def nginx_spec(
    cfg: NginxConfig,
    meta: Metadata,
    app_image: str,
    context: Path,
    *,
    nocache: bool = False,
    cache_from: Sequence[str] = (),
) -> build_spec.BuildSpec:
    """The sidecar's build from ``cfg``: the nginx settings with ``asset_fallback`` already
    decided for this app image (:func:`sidecar_config`), rendered into ``context``."""
    return build_spec.BuildSpec(
        name="nginx",
        dockerfile=context / "Dockerfile",
        context=context,
        tags=meta.local_refs(cfg.image.repository),
        buildargs={
            **base_buildargs(cfg.image),
            **cfg.image.build_args,
            **image.sidecar_buildargs(cfg, app_image),
        },
        labels=dict(meta.labels),
        nocache=nocache,
        cache_from=tuple(cache_from),
    )


def check_only(only: str) -> tuple[str, ...]:
    if not only:
        return IMAGES
    if only not in IMAGES:
        raise BuildToolsError(
            f"unknown image {only!r} for --only", "use --only app or --only nginx"
        )
    return (only,)


def read_app_dockerfile(settings: Settings, dockerfile: Path | None = None) -> str:
    """The app Dockerfile's text: read once per task and passed to the checks, the stage
    builds and the stage caches (``dockerfile``: the ``--dockerfile`` given, if any)."""
    return images.read_dockerfile(dockerfile or settings.app.dockerfile)


def check_app_dockerfile(
    settings: Settings,
    only: str = "",
    dockerfile: Path | None = None,
    dockerfile_text: str | None = None,
) -> list[str]:
    """The app Dockerfile's warnings; its first error is raised. Pure file reading, so tasks
    call it before any engine call, ``--dry-run`` included. The sidecar's Dockerfile is ours."""
    if "app" not in check_only(only):
        return []
    path = dockerfile or settings.app.dockerfile
    text = dockerfile_text or read_app_dockerfile(settings, dockerfile)
    found = dockerfile_problems(text, str(path))
    for problem in found:
        if problem.severity == ERROR:
            raise BuildToolsError(problem.problem, problem.fix)
    return [str(problem) for problem in found]


def resolved_bases(
    client: docker.DockerClient, settings: Settings, wanted: Sequence[str]
) -> Settings:
    """``settings`` with each wanted base image as the engine will build on it (a pin by
    digest may be an image ID here), checked before the first step: a missing sidecar base
    found after the app image was built would leave one image new and the other not."""
    app, nginx = settings.app, settings.nginx
    if "app" in wanted and app.base_image:
        found = images.ensure_base(client, app.base_image, "buildtools.app.base_image")
        app = dataclasses.replace(app, base_image=found)
    if "nginx" in wanted and nginx.image.base_image:
        found = images.ensure_base(client, nginx.image.base_image, "buildtools.nginx.base_image")
        nginx = dataclasses.replace(nginx, image=dataclasses.replace(nginx.image, base_image=found))
    return dataclasses.replace(settings, app=app, nginx=nginx)


def build_all(
    client: docker.DockerClient,
    settings: Settings,
    meta: Metadata,
    *,
    only: str = "",
    dockerfile: Path | None = None,
    context: Path | None = None,
    nocache: bool = False,
    reporter: build_spec.BuildReporter | None = None,
    builder: build_spec.Builder | None = None,
    cache_from: Mapping[str, Sequence[str]] | None = None,
    dockerfile_text: str | None = None,
    source: CommitTree | None = None,
    store: records.Store | None = None,
) -> list[build_spec.BuiltImage]:
    """Build the app image and then the sidecar from it (or just one of them with ``only``).

    ``cache_from`` gives each image (``app``, ``nginx``) its cache sources, already pulled;
    ``dockerfile_text`` the app Dockerfile as the task read it (from the commit, with
    ``source``: the commit's tree, the app's context of a releasable build). Each image built
    gets its build record, kept in ``store`` (none outside git).
    """
    wanted = check_only(only)
    if "app" in wanted:
        dockerfile_text = dockerfile_text or read_app_dockerfile(settings, dockerfile)
    # Errors stop here; tasks print the warnings.
    check_app_dockerfile(settings, only, dockerfile, dockerfile_text)
    if "nginx" in wanted:  # the sidecar's own files, before the app is built
        with tempfile.TemporaryDirectory(prefix="lara-sidecar-check-") as tmp:
            image.sidecar_context(settings.nginx, Path(tmp))
    chosen = builder or images.builder(client)
    settings = resolved_bases(client, settings, wanted)
    sources = cache_from or {}
    built: list[build_spec.BuiltImage] = []
    tagged: list[tuple[build_spec.BuiltImage, tuple[str, ...]]] = []

    def build_untagged(spec: build_spec.BuildSpec) -> build_spec.BuiltImage:
        """Tags wait until every image is built: a failed sidecar never leaves the app's
        tags on a new image while the sidecar's stay on the old one."""
        result = chosen.build(dataclasses.replace(spec, tags=()), reporter)
        result = dataclasses.replace(result, tags=spec.tags)
        tagged.append((result, spec.tags))
        return result

    stages = (
        stage_specs(
            settings, meta, dockerfile=dockerfile, context=context, nocache=nocache,
            cache_from=sources, dockerfile_text=dockerfile_text, source=source,
        )
        if "app" in wanted
        else []
    )  # fmt: skip
    app_sources = list(sources.get("app", ()))
    spec = app_spec(
        settings,
        meta,
        dockerfile=dockerfile,
        context=context,
        nocache=nocache,
        cache_from=app_sources,
        source=source,
        dockerfile_text=dockerfile_text,
    )
    if "app" in wanted:
        for stage in stages:
            built.append(build_untagged(stage))
        if app_sources or any(stage.cache_from for stage in stages):
            # With cache sources, the builder reuses only steps found in them: the stages
            # just built are where the final build finds its earlier stages' steps.
            stage_ids = [b.id for b in built]
            spec = dataclasses.replace(spec, cache_from=tuple([*app_sources, *stage_ids]))
        app_built = build_untagged(spec)
        text = dockerfile_text or images.read_dockerfile(spec.dockerfile)
        made = records.record_of(
            client, app_built, meta.info.commit, spec, text,
            source.tree_id if source else "", repository=settings.app.repository,
        )  # fmt: skip
        built.append(_recorded(app_built, made, store, tagged))
        app_image, app_record = app_built.id, made
    else:
        app_image = existing_image(client, spec.tags[0], "app")
        app_record = store.load(app_image) if store else None
    if "nginx" in wanted:
        sidecar_cfg = sidecar_config(client, settings.nginx, app_image)
        with tempfile.TemporaryDirectory(prefix="lara-sidecar-") as tmp:
            context_dir = image.sidecar_context(sidecar_cfg, Path(tmp))
            sidecar = nginx_spec(
                sidecar_cfg,
                meta,
                app_image,
                context_dir,
                nocache=nocache,
                cache_from=sources.get("nginx", ()),
            )
            nginx_built = build_untagged(sidecar)
            # Generated from the config and the app image: releasable when the app is.
            made = records.record_of(
                client, nginx_built, meta.info.commit, sidecar,
                (context_dir / "Dockerfile").read_text(encoding="utf-8"),
                commit_context.folder_digest(context_dir),
                repository=settings.nginx.image.repository,
                releasable=app_record is not None and app_record.releasable,
            )  # fmt: skip
            built.append(_recorded(nginx_built, made, store, tagged))
    for result, refs in tagged:
        images.tag(client, result.id, refs)
    return built


def _recorded(
    result: build_spec.BuiltImage,
    record: BuildRecord,
    store: records.Store | None,
    tagged: list[tuple[build_spec.BuiltImage, tuple[str, ...]]],
) -> build_spec.BuiltImage:
    """``result`` with its record, saved in ``store`` (before any tag is given)."""
    if store is not None:
        store.save(record)
    recorded = dataclasses.replace(result, record=record)
    tagged[:] = [(recorded if r is result else r, refs) for r, refs in tagged]
    return recorded


def sidecar_config(client: docker.DockerClient, cfg: NginxConfig, app_image: str) -> NginxConfig:
    """The step between the two builds: the sidecar's nginx settings with ``asset_fallback:
    auto`` decided by what the built app image can serve; an input of the sidecar's spec."""
    return asset_fallback.resolve_asset_fallback(cfg, client, app_image)


def existing_image(client: docker.DockerClient, ref: str, name: str) -> str:
    try:
        return client.images.get(ref).id
    except docker.errors.ImageNotFound:
        raise BuildToolsError(
            f"no local {name} image {ref} for this commit",
            f"build it first: invoke build --only {name}",
        ) from None


def dry_run_specs(
    settings: Settings,
    meta: Metadata,
    only: str = "",
    dockerfile_text: str | None = None,
    **app_args,
) -> list[dict]:
    """What would be built, for --dry-run: image, tags, build args (none secret), labels."""
    wanted = check_only(only)
    specs = []
    if "app" in wanted:
        for stage in stage_specs(settings, meta, dockerfile_text=dockerfile_text, **app_args):
            prefix = cache.stage_prefix(stage.target)
            specs.append(
                {
                    **stage.as_dict(),
                    "cache_candidates": cache_candidates(settings, meta, "app", prefix),
                }
            )
        spec = app_spec(settings, meta, **app_args).as_dict()
        specs.append({**spec, "cache_candidates": cache_candidates(settings, meta, "app")})
    if "nginx" in wanted:
        app_ref = meta.local_refs(settings.app.repository)[0]
        spec = nginx_spec(settings.nginx, meta, app_ref, settings.nginx.image.context)
        specs.append(
            {
                **spec.as_dict(),
                "dockerfile": str(settings.nginx.image.dockerfile),
                "cache_candidates": cache_candidates(settings, meta, "nginx"),
            }
        )
    return specs


def cache_candidates(settings: Settings, meta: Metadata, image: str, prefix: str = "") -> list[str]:
    """Where ``invoke build`` will look for cache sources (first registry shown), best first;
    none when no registry is asked (:func:`buildtools.engine.cache.registries`)."""
    asked = cache.registries(settings)
    if not asked:
        return []
    repository = settings.app.repository if image == "app" else settings.nginx.image.repository
    where = asked[0].push_name(repository)
    return [f"{where}:{c.tag} ({c.reason})" for c in cache.candidates(settings, meta, prefix)]
