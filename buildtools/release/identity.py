"""Which images are this build's: what their labels must say, and what proves more than labels.

A release reuses a local image only when a build record proves it a commit-tree build of what
this release builds, and finishes an interrupted release from a registry image only when a
build record here or the key's proof says it is this commit's (:func:`finish_interrupted`):
labels (:class:`Expected`) are checked too, but anyone who can push writes them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import docker
import docker.errors

from buildtools.engine.push import Pusher
from buildtools.errors import BuildToolsError
from buildtools.plan import build_source, labels, push_order
from buildtools.plan.build_record import BuildRecord
from buildtools.plan.build_source import Wanted
from buildtools.plan.manifests import Manifest
from buildtools.plan.metadata import Metadata
from buildtools.plan.push_order import ReleaseImage, TagLike
from buildtools.registry.targets import Target

REVISION_LABEL = labels.OCI + "revision"
VERSION_LABEL = labels.OCI + "version"
DIRTY_LABEL = labels.BUILD + "dirty"
TAGS_LABEL = labels.BUILD + "tags"
SMOKE_LABEL = labels.SMOKE_TEST
SMOKE_PASSED = labels.SMOKE_PASSED
SMOKE_NONE = labels.SMOKE_NONE


@dataclass(frozen=True)
class Expected:
    """What a released image's labels must say: this commit, clean, this build's version."""

    revision: str
    version: str
    # The tags version.yml lists, as the TAGS_LABEL writes them; None: not checked.
    tags: str | None = None
    # The SMOKE_LABEL's value this build writes; None: not checked.
    smoke_test: str | None = None

    @classmethod
    def of(cls, meta: Metadata) -> Expected:
        return cls(
            meta.info.commit,
            meta.info.version,
            meta.labels.get(TAGS_LABEL, ""),
            meta.labels.get(SMOKE_LABEL, SMOKE_NONE),
        )

    def tested(self, labels: Mapping[str, str]) -> str | None:
        """Why an image with ``labels`` is not one built from this commit's clean tree (what
        identifies the tested ``sha-`` image a release may promote), or None when it is."""
        if labels.get(REVISION_LABEL) != self.revision:
            return f"built from commit {str(labels.get(REVISION_LABEL) or 'unknown')[:7]}"
        if labels.get(DIRTY_LABEL) != "false":
            return "built from a working tree with uncommitted changes"
        return None

    def unsmoked(self, labels: Mapping[str, str]) -> str | None:
        """Why a registry image with ``labels`` may not stand in for this build's because it
        skipped the smoke test this build promises (`invoke ci` with its smoke test), or None.
        A registry image labelled as pushed after its smoke test passed stands in for any."""
        if self.smoke_test != SMOKE_PASSED:
            return None
        if labels.get(SMOKE_LABEL) == SMOKE_PASSED:
            return None
        return "pushed without a smoke test"

    def mismatch(self, labels: Mapping[str, str], *, in_registry: bool = False) -> str | None:
        """Why an image with ``labels`` is not this build's, or None when it is.

        A local image must carry exactly this build's smoke-test label (one built by
        `invoke build` never passes for `invoke ci`'s, which pushes only after its smoke test);
        a registry image (``in_registry``) may also be one pushed after a passing smoke test."""
        why = self.tested(labels)
        if why is not None:
            return why
        if labels.get(VERSION_LABEL) != self.version:
            return f"of version {labels.get(VERSION_LABEL) or 'unknown'}, not {self.version}"
        # A registry image is a release already made: the tags it lists are those it had
        # then (latest, before a higher release came); only a local image must be this build.
        if not in_registry and self.tags is not None and labels.get(TAGS_LABEL, "") != self.tags:
            have = labels.get(TAGS_LABEL) or "none"
            return f"built for the tags {have}, not {self.tags or 'none'}"
        if in_registry:
            return self.unsmoked(labels)
        have = labels.get(SMOKE_LABEL, SMOKE_NONE)
        if self.smoke_test is not None and have != self.smoke_test:
            return f"labelled smoke test {have!r}, not {self.smoke_test!r}"
        return None


# Why a registry image labelled this commit's is not proven to be its build (None: it is).
Proven = Callable[[Target, str, Manifest], str | None]


def finish_interrupted(
    images: Sequence[ReleaseImage],
    tags: Iterable[TagLike | tuple[str, bool]],
    found: Sequence[Target],
    current: push_order.Current,
    expected: Expected | None,
    pusher: Pusher | None,
    proven: Proven | None = None,
) -> tuple[list[ReleaseImage], list[str]]:
    """Images whose exact release tag a registry already holds *from this very commit* (an
    interrupted release; the local image since rebuilt or removed) take the registry's image
    as their source, so a re-run finishes the release without ``--force``. That image must be
    clean and of this version too: one built from a dirty tree, or of another version, is
    refused with one line. ``pusher`` None (a dry run) only plans with it. ``proven`` (with a
    signing or verify key): why that image is not proven this commit's build (None: it is);
    labels are what anyone who can push writes, and the release would sign it."""
    protected = sorted(push_order.protected_names(tags))
    result: list[ReleaseImage] = []
    notes: list[str] = []
    for image in images:
        adopted = image
        for target in found if expected else ():
            for name in protected:
                there = current.get((target.name, image.repository, name))
                if there is None or not there.config_digest:
                    continue
                if there.config_digest == image.image_id:
                    continue
                labels = target.client.image_labels(image.repository, there)
                if labels.get(REVISION_LABEL) != expected.revision:
                    continue
                ref = target.registry.push_name(image.repository)
                why = expected.mismatch(labels, in_registry=True)
                if why is not None:
                    raise BuildToolsError(
                        f"refusing to release: {ref}:{name} holds this commit's {image.name} "
                        f"image {why}",
                        "delete that tag in the registry if it must be replaced, or release "
                        "a new version",
                    )
                unproven = proven(target, image.repository, there) if proven else None
                if unproven is not None:
                    raise BuildToolsError(
                        f"refusing to release: {ref}:{name} holds an image labelled this "
                        f"commit's {image.name}, but {unproven}",
                        "delete that tag in the registry (the release then builds it from the "
                        "commit), or release a new version",
                    )
                image_id = pusher.fetch(ref, name, target) if pusher else there.config_digest
                adopted = ReleaseImage(image.name, image.repository, image_id)
                notes.append(
                    f"{ref}:{name} already holds this commit's {image.name} image (an earlier "
                    "release of it, finished or interrupted): releasing that image"
                )
                break
            if adopted is not image:
                break
        result.append(adopted)
    return result, notes


def local_images(
    client: docker.DockerClient,
    repositories: Sequence[tuple[str, str]],
    meta: Metadata,
    records: Callable[[str], BuildRecord | None] = lambda image_id: None,
    wanted: Mapping[str, Wanted] | None = None,
) -> tuple[list[ReleaseImage], list[str]]:
    """This build's images by ``(role, repository)`` (image_id None when missing or not this
    build's, with a note each). Found by their first local tag, taken only when the record
    naming the image ID (``records``) proves a commit-tree build of what this release builds
    (``wanted``: :func:`buildtools.plan.build_source.mismatch`) and the labels say this
    version and tags (:class:`Expected`). Labels alone never do."""
    expected = Expected.of(meta)
    found: list[ReleaseImage] = []
    notes: list[str] = []
    for name, repository in repositories:
        ref = meta.local_refs(repository)[0]
        image_id = None
        try:
            image = client.images.get(ref)
        except docker.errors.ImageNotFound:
            pass
        else:
            want = (wanted or {}).get(name) or Wanted(name, meta.info.commit)
            if name == "nginx" and found and found[0].image_id:  # made from the app taken
                args = {**(want.build_args or {}), "APP_IMAGE": found[0].image_id}
                want = dataclasses.replace(want, build_args=args)
            why = build_source.mismatch(records(image.id), want)
            if why is None and (why := expected.mismatch(image.labels or {})) is None:
                image_id = image.id
            else:
                notes.append(
                    f"the local {name} image {ref} is not this build's ({why}): rebuilding it"
                )
        found.append(ReleaseImage(name, repository, image_id))
    return found, notes
