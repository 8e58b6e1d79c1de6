"""`invoke rollback`'s decisions, pure: which floating tags may be moved back, to which
releases, and the marker that records a rollback in the registry itself.

A floating release tag (``latest``, ``X``, ``X.Y``) may be moved back only to an exact stable
release of its own kind: ``latest`` to any, ``1`` to a ``1.y.z``, ``1.2`` to a ``1.2.z``
(a pre-release never: the release rule never gives it a floating tag).

The marker is a tag ``rollback-<floating tag>`` in each repository of each registry: a tiny
OCI manifest of its own (empty config and layer, the rollback in its annotations), so every
CI runner sees it in the tag list a release reads anyway, and deleting it (by its own digest)
deletes nothing else. While it exists the release plan leaves that floating tag alone and
says why (:func:`held`), until ``invoke rollback --clear TAG`` or ``invoke release --force``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence

from buildtools.errors import BuildToolsError
from buildtools.facts.versions import parse_version
from buildtools.plan.inventory import MARKER_PREFIX, RELEASE_FLOATING, Marker
from buildtools.plan.manifests import OCI_MANIFEST
from buildtools.plan.shapes import BadDocument, load
from buildtools.plan.tags import ImageTag

EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY = b"{}"
EMPTY_DIGEST = "sha256:" + hashlib.sha256(EMPTY).hexdigest()
ARTIFACT_TYPE = "application/vnd.concord.lara.rollback.v1"
NOTE = "org.concord.lara.rollback."


def check_floating(tag: str) -> None:
    """Only ``latest``, ``X`` and ``X.Y`` are moved back: other floating tags (``edge``, a
    branch's) follow their branch, and exact tags never move."""
    if not RELEASE_FLOATING.match(tag):
        raise BuildToolsError(
            f"{tag!r} is not a floating release tag (latest, X or X.Y)",
            "name latest, a major (1) or a minor (1.2) tag; branch tags follow their branch",
        )


def check_target(tag: str, version: str, releases: Iterable[str]) -> None:
    """``version`` is an exact stable release every repository holds (``releases``) and of
    ``tag``'s kind: ``1.2`` only to ``1.2.z``, ``1`` only to ``1.y.z``."""
    check_floating(tag)
    parsed = parse_version(version.replace("_", "+", 1))
    if parsed is None or version.startswith(("v", "V")):
        raise BuildToolsError(
            f"{version!r} is not a release version (X.Y.Z)",
            "name an exact release, e.g. 1.2.3 (invoke releases lists them)",
        )
    if parsed.prerelease:
        raise BuildToolsError(
            f"{version} is a pre-release: {tag} never points at one",
            "name a stable release (invoke releases lists them)",
        )
    if tag != "latest":
        series = [int(n) for n in tag.split(".")]
        if [parsed.major, parsed.minor][: len(series)] != series:
            raise BuildToolsError(
                f"{version} is not a {tag}.x release: {tag} cannot point at it",
                f"name a {tag}.x release, or roll back latest instead",
            )
    if version not in set(releases):
        raise BuildToolsError(
            f"release {version} is not in every registry and repository",
            "name a release invoke releases lists for both images in every registry",
        )


def marker_tag(tag: str) -> str:
    return MARKER_PREFIX + tag


def marker_manifest(tag: str, version: str, digest: str, when: str) -> bytes:
    """The marker's manifest bytes (its own digest differs per tag, version, digest and time)."""
    empty = {"mediaType": EMPTY_TYPE, "digest": EMPTY_DIGEST, "size": len(EMPTY)}
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": ARTIFACT_TYPE,
            "config": empty,
            "layers": [empty],
            "annotations": {
                NOTE + "tag": tag,
                NOTE + "version": version,
                NOTE + "digest": digest,
                "org.opencontainers.image.created": when,
            },
        },
        sort_keys=True,
    ).encode()


def parse_marker(tag: str, body: bytes) -> Marker:
    """A marker as read (what it says, or ``?`` where a hand-made one says nothing)."""
    try:
        notes = load(body, "rollback marker").get("annotations") or {}
    except (BadDocument, AttributeError):
        notes = {}
    notes = notes if isinstance(notes, dict) else {}

    def said(key: str) -> str:
        value = notes.get(key)
        return value if isinstance(value, str) and value.isprintable() else "?"

    return Marker(
        tag, said(NOTE + "version"), said(NOTE + "digest"), said("org.opencontainers.image.created")
    )


def held(tag_lists: Mapping[tuple[str, str], Iterable[str]]) -> dict[str, list[str]]:
    """Floating tags held by a rollback marker, each with where the marker is
    (``registry/repository``): read from the tag lists a release reads anyway."""
    found: dict[str, list[str]] = {}
    for (registry, repository), tags in tag_lists.items():
        for name in tags:
            if name.startswith(MARKER_PREFIX):
                found.setdefault(name.removeprefix(MARKER_PREFIX), []).append(
                    f"{registry}/{repository}"
                )
    return found


def hold(
    tags: Sequence[ImageTag], held: Mapping[str, Sequence[str]], force: bool = False
) -> tuple[tuple[ImageTag, ...], list[str]]:
    """A release's tags without the floating ones a rollback marker holds, and a line for
    each saying why; with ``force`` the tags stay (and the line says they move anyway)."""
    kept, notes = [], []
    for tag in tags:
        where = held.get(tag.name) if tag.floating else None
        if not where:
            kept.append(tag)
            continue
        marker = f"{marker_tag(tag.name)} in {', '.join(sorted(where))}"
        if force:
            kept.append(tag)
            notes.append(
                f"{tag.name} was rolled back ({marker}): --force moves it anyway "
                f"and clears the marker"
            )
        else:
            notes.append(
                f"{tag.name} was rolled back ({marker}): this release leaves it alone; "
                f"`invoke rollback --clear {tag.name}` or `invoke release --force` moves it"
            )
    return tuple(kept), notes
