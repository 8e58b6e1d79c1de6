"""What a release pushes, in which order: a pure function of the images, their tags and what
each registry holds now.

Immutable tags (exact versions, ``sha-…``) of all images and registries come first, floating
ones (``1.2``, ``1``, ``latest``, branch names) last, so a failure never leaves a floating tag
on an image whose exact tag is missing. A tag already pointing at this very image (same config
digest, i.e. image ID) is left alone, so re-running a finished release pushes nothing. A
protected tag (an exact release such as ``1.2.3``) that points at other content is refused
unless forced; ``sha-…`` is replaced by a later build of its commit.

A release's floating tags (``X.Y``, ``X``, ``latest``) carry the version they move for: the
plan was made from a registry read before the builds, so each is checked again, right before
it moves, against what the registry holds then (:func:`held_by`): another release may have
pushed a higher version meanwhile, and a floating tag never moves backwards.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from buildtools.config.registry_address import Registry
from buildtools.errors import BuildToolsError
from buildtools.facts.versions import parse_version, semver_tags
from buildtools.plan.manifests import Manifest
from buildtools.plan.tags import floating_moved

# HELD: a floating tag left where it was, the registry holding a higher release by then.
PUSH, UNCHANGED, OVERWRITE, HELD = "push", "unchanged", "overwrite", "held"
# The floating tags of a release: they point at the highest release of their series.
_RELEASE_FLOATING = re.compile(r"^(latest|[0-9]+|[0-9]+\.[0-9]+)$")


@dataclass(frozen=True)
class ReleaseImage:
    """A local image to release: its role (``app``/``nginx``), repository and image ID.

    ``image_id`` may be None for a dry run of images not built yet (every tag is then
    planned as a push).
    """

    name: str
    repository: str
    image_id: str | None


class TagLike(Protocol):
    name: str
    floating: bool
    protected: bool


def tag_pairs(tags: Iterable[TagLike | tuple[str, bool]]) -> list[tuple[str, bool]]:
    """ImageTag-like objects or ``(name, floating)`` pairs as pairs, immutable ones first."""
    pairs = [
        (t[0], bool(t[1])) if isinstance(t, tuple) else (t.name, bool(t.floating)) for t in tags
    ]
    seen: set[str] = set()
    unique = [p for p in pairs if not (p[0] in seen or seen.add(p[0]))]
    return sorted(unique, key=lambda p: p[1])


def release_of(tags: Iterable[TagLike | tuple[str, bool]]) -> str | None:
    """The stable release whose floating tags ``tags`` move: its exact, protected tag (in
    Docker's spelling, ``1.2.3`` or ``1.2.3_b``), as a semantic version; None for other builds."""
    for name in sorted(protected_names(tags)):
        for text in semver_tags([name]):
            version = parse_version(text)
            if version is not None and not version.prerelease:
                return text
    return None


def held_by(push: Push, tags_now: Iterable[str]) -> str | None:
    """The higher release that keeps ``push``'s floating tag where it is, given the tags its
    repository holds now (another release finished meanwhile), or None when it may move."""
    ours = parse_version(push.release or "")
    if ours is None:
        return None
    known = [v for v in map(parse_version, semver_tags(tags_now)) if v is not None]
    if push.tag in floating_moved(ours, known):
        return None
    parts = push.tag.split(".")
    series = [
        v
        for v in known
        if not v.prerelease
        and v > ours
        and (push.tag == "latest" or [str(v.major), str(v.minor)][: len(parts)] == parts)
    ]
    return str(max(series)) if series else None


def protected_names(tags: Iterable[TagLike | tuple[str, bool]]) -> set[str]:
    """Tags that must never change content (exact releases); a ``(name, False)`` pair is one."""
    return {
        t[0] if isinstance(t, tuple) else t.name
        for t in tags
        if (not t[1] if isinstance(t, tuple) else t.protected)
    }


@dataclass(frozen=True)
class Push:
    """One tag of one image in one registry: what is there, what to do, what happened.

    The plan makes it; :func:`buildtools.release.publish.execute` alone returns the record of what
    happened (``digest``, ``verified``, ``attempts``) as a new value.
    """

    image: str
    image_id: str | None
    registry: str
    repository: str
    ref: str  # the repository as the engine names it, e.g. 127.0.0.1:5000/lara/app
    tag: str
    floating: bool
    action: str
    previous: str | None = None  # the tag's manifest digest before the release
    digest: str | None = None
    verified: bool = False
    attempts: int = 0
    # A release's floating tag (X.Y, X, latest): the version it moves for, re-checked before
    # it moves; ``kept``: the higher release the registry held then (the tag did not move).
    release: str | None = None
    kept: str | None = None

    @property
    def reference(self) -> str:
        return f"{self.ref}:{self.tag}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "registry": self.registry,
            "repository": self.repository,
            "reference": self.reference,
            "tag": self.tag,
            "floating": self.floating,
            "action": self.action,
            "previous_digest": self.previous,
            "digest": self.digest,
            "verified": self.verified,
            "attempts": self.attempts,
            **({"kept_for": self.kept} if self.kept else {}),
        }


# What a registry holds now, keyed by (registry name, repository, tag); None: nothing.
Current = Mapping[tuple[str, str, str], Manifest | None]


def pushes(
    images: Sequence[ReleaseImage],
    tags: Iterable[TagLike | tuple[str, bool]],
    registries: Sequence[Registry],
    current: Current,
    *,
    force: bool = False,
) -> list[Push]:
    """Every push, immutable tags (all registries and images) before floating ones.

    Refuses (unless ``force``) to overwrite a protected (exact release) tag that points at
    other content.
    """
    tags = list(tags)
    pairs = tag_pairs(tags)
    protected = protected_names(tags)
    release = release_of(tags)
    if not pairs:
        raise BuildToolsError(
            "nothing to release: the tag policy gives this build no tags",
            "release a release branch or a tag (invoke version shows the tags)",
        )
    pushes: list[Push] = []
    conflicts: list[str] = []
    for floating in (False, True):
        for registry in registries:
            for image in images:
                for name, is_floating in pairs:
                    if is_floating != floating:
                        continue
                    there = current.get((registry.name, image.repository, name))
                    action = PUSH
                    if (
                        there is not None
                        and image.image_id
                        and there.config_digest == image.image_id
                    ):
                        action = UNCHANGED
                    elif there is not None and not floating:
                        if name in protected:
                            conflicts.append(f"{registry.push_name(image.repository)}:{name}")
                        action = OVERWRITE
                    pushes.append(
                        Push(
                            image=image.name,
                            image_id=image.image_id,
                            registry=registry.name,
                            repository=image.repository,
                            ref=registry.push_name(image.repository),
                            tag=name,
                            floating=floating,
                            action=action,
                            previous=there.digest if there else None,
                            digest=there.digest if action == UNCHANGED else None,
                            verified=action == UNCHANGED,
                            release=release if floating and _RELEASE_FLOATING.match(name) else None,
                        )
                    )
    if conflicts and not force:
        raise BuildToolsError(
            f"refusing to overwrite release tags that already exist with other content: "
            f"{', '.join(conflicts)}",
            "release a new version; to replace them anyway, run again with --force",
        )
    return pushes
