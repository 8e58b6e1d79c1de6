"""Build images with the Docker Engine's classic builder, the one :func:`builder` hands out.

The callers (``invoke build``, ``invoke ci``) hand a
:class:`~buildtools.engine.build_spec.BuildSpec` to whatever :func:`builder` chose, so a
BuildKit/``docker buildx`` builder slots in beside :class:`ClassicBuilder` without touching
them. Here: the context sent to the engine (the Dockerfile inside, the labels as its last
step), the CMD/ENTRYPOINT a cache source lost, and the tags; the stream the engine answers
with is read by :mod:`buildtools.engine.build_stream`.
"""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

import docker
import docker.errors
from docker.utils.build import create_archive, exclude_paths

from buildtools.engine import connect
from buildtools.engine import context as commit_context
from buildtools.engine.build_spec import (
    Builder,
    BuildReporter,
    BuildSpec,
    BuiltImage,
    SilentReporter,
)
from buildtools.engine.build_stream import StepState, follow
from buildtools.errors import INTERRUPTED, BuildToolsError
from buildtools.plan.dockerfile import instructions as dockerfile_instructions

# The Dockerfile travels in the context under a fixed name that the context's .dockerignore
# lists, so the engine drops it before `COPY . .`: a changed or relocated Dockerfile must not
# bust the cache of the source layer (docker-py's random name does, on every build).
DOCKERFILE_IN_CONTEXT = ".lara-buildtools.Dockerfile"


def read_dockerfile(path: Path) -> str:
    """A Dockerfile's text, or one line saying it is missing or not UTF-8: the same errors for
    the checks before a build and for the build itself."""
    if not path.is_file():
        raise BuildToolsError(
            f"Dockerfile not found: {path}",
            "pass --dockerfile or set buildtools.<image>.dockerfile in invoke.yaml",
        )
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BuildToolsError(
            f"{path} is not UTF-8 text (byte {exc.start} cannot be decoded)",
            "save the Dockerfile as UTF-8",
        ) from None


def context_archive(
    context: Path, dockerfile_text: str, last_lines: Sequence[str] = ()
) -> IO[bytes]:
    """The build context as a tar, honouring its .dockerignore, with the Dockerfile inside
    (``last_lines`` appended to it: the LABEL step)."""
    ignore = context / ".dockerignore"
    patterns = []
    if ignore.is_file():
        lines = (line.strip() for line in ignore.read_text().splitlines())
        patterns = [line for line in lines if line and not line.startswith("#")]
    excludes = [*patterns, ".dockerignore", DOCKERFILE_IN_CONTEXT]
    if last_lines:
        added = "".join(f"{line}\n" for line in last_lines)
        dockerfile_text = dockerfile_text.rstrip("\n") + "\n" + added
    return create_archive(
        root=str(context),
        files=sorted(exclude_paths(str(context), excludes)),
        extra_files=[
            (".dockerignore", "\n".join(excludes) + "\n"),
            (DOCKERFILE_IN_CONTEXT, dockerfile_text),
        ],
    )


def repository_of(reference: str) -> str:
    """``host:5000/lara/app:1.0@sha256:…`` -> ``host:5000/lara/app``."""
    name = reference.split("@", 1)[0]
    head, _, last = name.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]


def ensure_base(client: docker.DockerClient, image: str, config_key: str) -> str:
    """The reference to build on for the configured base ``image``, or one line saying why
    there is none (checked before the first step).

    A base pinned by digest (``name@sha256:…``) is the registry's manifest digest when the
    engine pulled it; a base made on this machine (``invoke bases``: imported, never in a
    registry) has only its image ID, which ``invoke bases`` prints as that digest. Such a pin
    builds on that very image, by ID, when it is tagged in the named repository here."""
    fix = (
        f"make it with `invoke bases`, `docker load` it, or set {config_key} to an image "
        "this engine can pull"
    )
    name, _, digest = image.partition("@")
    if digest:
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.get(image)
            return image
        with contextlib.suppress(docker.errors.ImageNotFound):
            local = client.images.get(digest)
            wanted = repository_of(name)
            if any(repository_of(tag) == wanted for tag in local.tags):
                return local.id
            raise BuildToolsError(
                f"{config_key} = {image}: this engine's image {digest[:19]}… is not one of "
                f"{wanted}'s (it is {', '.join(local.tags) or 'untagged'})",
                f"pin the digest `invoke bases` printed for {wanted}, or name that image",
            )
    connect.ensure_image(client, image, "base image", fix)
    return image


def label_value(text: str) -> str:
    """A double-quoted Dockerfile word: no variable expansion, no line break."""
    text = " ".join(text.splitlines())
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def label_step(labels: Mapping[str, str]) -> list[str]:
    """Every label in one LABEL line (none without labels). The engine turns each ``labels=``
    entry of a build into a step of its own, each committing an image: one step for all of them
    keeps a metadata-only rebuild short."""
    pairs = " ".join(f"{label_value(k)}={label_value(v)}" for k, v in sorted(labels.items()))
    return [f"LABEL {pairs}"] if pairs else []


def label_in_dockerfile(text: str, target: str | None = None) -> bool:
    """Whether the LABEL step can end the Dockerfile itself (one build, not two): not for a
    stage's build (``target``), nor where ``# escape=`` makes our backslash quoting wrong."""
    directives, _ = dockerfile_instructions(text)
    return not target and directives.get("escape", "\\") == "\\"


def label_archive(
    image_id: str, labels: Mapping[str, str], config_lines: Sequence[str] = ()
) -> IO[bytes]:
    """A context whose Dockerfile puts every label on ``image_id`` in one LABEL step (plus
    ``config_lines``, e.g. a CMD to restore)."""
    lines = [f"FROM {image_id}", *label_step(labels), *config_lines]
    dockerfile = "".join(f"{line}\n" for line in lines).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
    buffer.seek(0)
    return buffer


def history_steps(client: docker.DockerClient, image: str) -> list[str]:
    """An image's build steps, oldest first, as the instructions that made them (its history):
    two images built alike share a prefix. Raises ``docker.errors.APIError`` (e.g. not found)."""
    return [str(h.get("CreatedBy", "")) for h in reversed(client.api.history(image))]


def config_repairs(client: docker.DockerClient, image_id: str, sources: Sequence[str]) -> list[str]:
    """CMD/ENTRYPOINT lines that restore what a cache source lost.

    When the classic builder takes a step from a ``cache_from`` image, it commits that step
    with its cache probe's config: the image's CMD becomes ``/bin/sh -c #(nop) COPY …`` (or the
    RUN command) and its ENTRYPOINT may go. If the last steps came from a source, the image
    would not start. A source that holds every step of this build has the right values.
    """
    if not sources:
        return []
    try:
        built = client.api.inspect_image(image_id)["Config"] or {}
        mine = history_steps(client, image_id)
    except docker.errors.APIError:
        return []
    for source in sources:
        try:
            theirs = client.api.inspect_image(source)["Config"] or {}
            if history_steps(client, source)[: len(mine)] != mine:
                continue
        except docker.errors.APIError:
            continue
        if (theirs.get("Entrypoint"), theirs.get("Cmd")) == (
            built.get("Entrypoint"),
            built.get("Cmd"),
        ):
            return []
        # ENTRYPOINT resets an inherited CMD: always give CMD after it.
        return [
            f"ENTRYPOINT {json.dumps(theirs.get('Entrypoint') or [])}",
            f"CMD {json.dumps(theirs.get('Cmd') or [])}",
        ]
    return []


def tag(client: docker.DockerClient, image_id: str, refs: Sequence[str]) -> None:
    """Give ``image_id`` every reference in ``refs`` (``repository:tag``)."""
    for ref in refs:
        repository, _, name = ref.rpartition(":")
        client.api.tag(image_id, repository, name, force=True)


class ClassicBuilder:
    """The Docker Engine's classic builder, driven through docker-py's low-level API."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client

    def build(self, spec: BuildSpec, reporter: BuildReporter | None = None) -> BuiltImage:
        return build(self.client, spec, reporter)


BUILDERS = {"classic": ClassicBuilder}


def builder(client: docker.DockerClient, kind: str = "classic") -> Builder:
    """The builder every task uses: chosen here, in one place."""
    if kind not in BUILDERS:
        raise BuildToolsError(
            f"unknown builder {kind!r}", f"use one of: {', '.join(sorted(BUILDERS))}"
        )
    return BUILDERS[kind](client)


def build(
    client: docker.DockerClient, spec: BuildSpec, reporter: BuildReporter | None = None
) -> BuiltImage:
    """Build ``spec`` with the classic builder, tag it with every tag, and report each step;
    raise on any failed step."""
    reporter = reporter or SilentReporter()
    text = spec.dockerfile_text
    if text is None:  # missing or not UTF-8: one line before the engine
        text = read_dockerfile(spec.dockerfile)
    if spec.source is None and not spec.context.is_dir():
        raise BuildToolsError(
            f"build context is not a directory: {spec.context}",
            "pass --context or set buildtools.<image>.context in invoke.yaml",
        )
    started = time.monotonic()
    state = StepState()
    # The labels end the Dockerfile where they can: one build instead of a second, LABEL-only one.
    folded = label_in_dockerfile(text, spec.target)
    labels = {} if folded else spec.labels
    last = label_step(spec.labels) if folded else ()
    if spec.source is not None:  # the commit's own files, never the working tree's
        full = text.rstrip("\n") + "\n" + "".join(f"{line}\n" for line in last) if last else text
        archive = commit_context.commit_archive(
            spec.source, DOCKERFILE_IN_CONTEXT, full, [DOCKERFILE_IN_CONTEXT]
        )
    else:
        archive = context_archive(spec.context, text, last)
    try:
        image_id = follow(
            client,
            spec,
            state,
            reporter,
            archive,
            DOCKERFILE_IN_CONTEXT,
            dict(spec.buildargs),
            spec.cache_from,
            spec.target,
        )
    except KeyboardInterrupt:
        where = f" at step {state.number}/{state.total}" if state.number else ""
        raise BuildToolsError(
            f"interrupted: the {spec.name} image build stopped{where}; nothing was tagged",
            "run it again: the finished steps come from cache",
            exit_code=INTERRUPTED,
        ) from None
    finally:
        archive.close()
    steps = state.total
    repairs = config_repairs(client, image_id, spec.cache_from)
    if labels or repairs:
        label_state = StepState()
        label_started = time.monotonic()
        with label_archive(image_id, labels, repairs) as labelled:
            image_id = follow(client, spec, label_state, SilentReporter(), labelled, "Dockerfile")
        steps += 1
        state.cached_steps += int(label_state.cached)
        what = f"LABEL ({len(labels)} labels)" if labels else "restore CMD/ENTRYPOINT"
        reporter.step(spec.name, steps, steps, what)
        reporter.step_done(spec.name, steps, label_state.cached, time.monotonic() - label_started)
    image = client.images.get(image_id)
    tag(client, image.id, spec.tags)
    return BuiltImage(
        name=spec.name,
        id=image.id,
        tags=spec.tags,
        size=int(image.attrs.get("Size", 0)),
        steps=steps,
        cached_steps=state.cached_steps,
        seconds=time.monotonic() - started,
    )
