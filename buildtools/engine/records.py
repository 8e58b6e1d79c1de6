"""Where this checkout keeps the build records of the images built here, outside the engine.

One JSON file per image, ``<git dir>/lara-buildtools/records/<image-id hex>.json``: the engine
holds labels anyone can write (``docker commit`` keeps them), but a file named by the image ID
(the digest of the image's config) binds exactly that content to what made it. Writes go to a
temporary file in the same folder and are renamed into place, so two runs at once each leave
a whole record and a reader never sees half of one. A checkout without git has no store.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import tempfile
from pathlib import Path

import docker
import docker.errors

from buildtools.engine.build_spec import BuildSpec, BuiltImage
from buildtools.errors import BuildToolsError
from buildtools.facts import source_tree
from buildtools.plan import build_source, dockerfile
from buildtools.plan.build_record import COMMIT, WORKTREE, BuildRecord

FOLDER = ("lara-buildtools", "records")


@dataclasses.dataclass(frozen=True)
class Store:
    """The records folder of one checkout."""

    folder: Path

    @classmethod
    def of(cls, repo_path: Path) -> Store | None:
        """The store of the checkout holding ``repo_path``; None outside git."""
        found = source_tree.git_dir(repo_path)
        return cls(found.joinpath(*FOLDER)) if found is not None else None

    def path(self, image_id: str) -> Path:
        hex_id = image_id.removeprefix("sha256:")
        if not hex_id or not all(c in "0123456789abcdef" for c in hex_id):
            raise ValueError(f"not an image ID: {image_id!r}")
        return self.folder / f"{hex_id}.json"

    def save(self, record: BuildRecord) -> Path:
        """Write ``record`` under its image ID, atomically (last writer wins, whole). A
        folder that cannot be written (read-only, full, a file in its place) is one line:
        the image is built, but nothing can release it without its record."""
        target = self.path(record.image_id)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=".record-", suffix=".tmp", dir=self.folder)
        except OSError as exc:
            raise self._unwritable(record, exc) from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(record.to_json())
                out.flush()
                os.fsync(out.fileno())
            os.replace(name, target)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(name)
            if isinstance(exc, OSError):
                raise self._unwritable(record, exc) from None
            raise
        return target

    def _unwritable(self, record: BuildRecord, exc: OSError) -> BuildToolsError:
        return BuildToolsError(
            f"cannot write the build record of the {record.image} image in {self.folder} "
            f"({exc.strerror or type(exc).__name__}): without it no release can use the image",
            f"make {self.folder} a writable folder (or free space), then build again",
        )

    def load(self, image_id: str | None) -> BuildRecord | None:
        """The record naming ``image_id``; None when there is none, or it is not a record (a
        damaged file is no proof, and is never trusted)."""
        if not image_id:
            return None
        try:
            text = self.path(image_id).read_text(encoding="utf-8")
            record = BuildRecord.from_json(text)
        except (OSError, ValueError):
            return None
        return record if record.image_id == image_id else None

    def with_smoke_test(self, image_id: str, smoke_test: dict[str, str]) -> BuildRecord | None:
        """The record of ``image_id`` with what its passing smoke test said, saved; None when
        there is no record to add it to."""
        record = self.load(image_id)
        if record is None:
            return None
        updated = dataclasses.replace(record, smoke_test=dict(smoke_test))
        self.save(updated)
        return updated


def resolved_base(client: docker.DockerClient, spec: BuildSpec, dockerfile_text: str) -> str:
    """The base image as the engine has it: the ``BASE_IMAGE`` build arg (already resolved
    before the build, :func:`buildtools.release.build.resolved_bases`) or the last stage's
    ``FROM``, by image ID when the engine holds it."""
    name = spec.buildargs.get("BASE_IMAGE", "")
    if not name:
        parsed = dockerfile.parse(dockerfile_text).stages
        name = parsed[-1].base if parsed else ""
    if not name or "$" in name:
        return name
    try:
        return str(client.images.get(name).id)
    except docker.errors.APIError:  # not here (ImageNotFound), or a name the engine refuses
        return name


def record_of(
    client: docker.DockerClient,
    built: BuiltImage,
    commit: str,
    spec: BuildSpec,
    dockerfile_text: str,
    context_tree: str,
    *,
    repository: str,
    releasable: bool | None = None,
) -> BuildRecord:
    """The record of ``built``: a commit-tree build when its spec had the commit's tree (or,
    a generated context, when ``releasable`` says so); ``context_tree`` identifies the files."""
    commit_build = spec.source is not None if releasable is None else releasable
    return BuildRecord(
        image=spec.name,
        repository=repository,
        image_id=built.id,
        commit=commit,
        source=COMMIT if commit_build else WORKTREE,
        context_tree=context_tree if commit_build else "",
        dockerfile_digest=build_source.digest(dockerfile_text),
        build_args=dict(spec.buildargs),
        base_image=resolved_base(client, spec, dockerfile_text),
        created=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
