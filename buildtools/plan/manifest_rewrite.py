"""Promotion, pure: a tested image's manifest and config turned into a release's, byte for byte.

A release image differs from the ``sha-`` image that passed the smoke test only in what the
build's metadata writes: its labels, the ``LARA_*`` ENV the Dockerfile sets from build args,
and (app image) the ``version.yml`` its last RUN writes. So the release image is the tested
image's layers, one appended layer holding the new ``version.yml``, a new config and a new
manifest: what ``crane mutate`` does, without an engine. Everything here is a function of bytes
already read (:class:`SourceImage`) and of the release's values (:class:`Changes`, whose ENV
and files :mod:`buildtools.plan.promotion_recipe` reads from the Dockerfile); the registry edge
is :mod:`buildtools.release.promote`.

The output is deterministic (fixed tar and gzip headers, the build date as the time): the same
release of the same image gives the same digests, so a re-run finds its tags unchanged.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from buildtools.plan import labels
from buildtools.plan.manifests import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
)

DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
# An image manifest type: (its config type, its gzip layer type), one family each.
FAMILIES = {DOCKER_MANIFEST: (DOCKER_CONFIG, DOCKER_LAYER), OCI_MANIFEST: (OCI_CONFIG, OCI_LAYER)}
INDEXES = (DOCKER_MANIFEST_LIST, OCI_INDEX)
REFERENCE_TYPE = "vnd.docker.reference.type"
ATTESTATION = "attestation-manifest"
HISTORY_NOTE = "lara-buildtools promotion: the release's version.yml"


class CannotPromote(Exception):
    """Why an image cannot be promoted: the release falls back to building, saying this."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


@dataclass(frozen=True)
class File:
    """One file of the appended layer, with the owner and mode the build gives it."""

    path: str
    data: bytes
    mode: int = 0o644
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True)
class Changes:
    """What a release changes in a tested image: labels, ENV values, files (none for the
    sidecar) and the build date (the new history entry's time and the layer's mtime)."""

    labels: Mapping[str, str]
    env: Mapping[str, str] = field(default_factory=dict)
    files: tuple[File, ...] = ()
    created: str = ""


@dataclass(frozen=True)
class SourceImage:
    """A tested image as the registry serves it: its manifest's bytes and media type, and
    (read by the edge) the child manifests of an index and the config blobs, by digest."""

    manifest: bytes
    media_type: str
    manifests: Mapping[str, bytes] = field(default_factory=dict)
    configs: Mapping[str, bytes] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return digest_of(self.manifest)


@dataclass(frozen=True)
class Blob:
    digest: str
    media_type: str
    data: bytes


@dataclass(frozen=True)
class Promoted:
    """A release image ready to put: the blobs to upload first (new layer, configs), the child
    manifests of an index (put by digest), then the manifest for every release tag."""

    source: str  # the tested image's manifest digest
    manifest: bytes
    media_type: str
    blobs: tuple[Blob, ...] = ()
    children: tuple[Blob, ...] = ()
    warnings: tuple[str, ...] = ()
    # The image ID of a single image (its config digest); an index has none.
    config_digest: str | None = None

    @property
    def digest(self) -> str:
        return digest_of(self.manifest)

    @property
    def image_id(self) -> str:
        """What the push plan compares tags by: the config digest, or an index's own digest."""
        return self.config_digest or self.digest


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _json(data: bytes, what: str) -> dict[str, Any]:
    try:
        parsed = json.loads(data)
    except ValueError:
        raise CannotPromote(f"its {what} is not JSON") from None
    if not isinstance(parsed, dict):
        raise CannotPromote(f"its {what} is not a JSON object")
    return parsed


# -- the new layer, config and manifest --


def epoch(created: str) -> int:
    """Seconds of an ISO-8601 build date (the layer's file times); 0 when there is none."""
    if not created:
        return 0
    try:
        return int(datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0


def layer(files: Sequence[File], mtime: int) -> tuple[bytes, str]:
    """A gzip'd tar of ``files`` with fixed headers: its bytes and its diff ID (the digest of
    the uncompressed tar). The same files and time give the same bytes."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for item in files:
            info = tarfile.TarInfo(item.path.lstrip("/"))
            info.size = len(item.data)
            info.mode = item.mode
            info.uid, info.gid = item.uid, item.gid
            info.uname = info.gname = ""
            info.mtime = mtime
            tar.addfile(info, io.BytesIO(item.data))
    tar_bytes = raw.getvalue()
    packed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, mtime=0, compresslevel=9) as gz:
        gz.write(tar_bytes)
    return packed.getvalue(), digest_of(tar_bytes)


def new_labels(old: Mapping[str, str], release: Mapping[str, str]) -> dict[str, str]:
    """The tested image's labels with every label the tool writes replaced by the release's:
    one the release has no value for (a tag build has no branch) goes, as a build leaves it out.
    The smoke-test label keeps the tested image's value (``none`` when it has none): whether it
    was pushed after a passing smoke test is a fact about that image, not about the release."""
    kept = {k: v for k, v in old.items() if not labels.owned(k)}
    smoke = old.get(labels.SMOKE_TEST, labels.SMOKE_NONE)
    return {**kept, **release, labels.SMOKE_TEST: smoke}


# Legacy fields of the classic builder's config: the container that ran the tested image's
# last build step (its id and config, labels and ENV of that build). Stale once the release
# changes labels and ENV, read by nothing (BuildKit and OCI never write them): dropped, a
# quarter of the bytes a promotion sends per image.
LEGACY_CONFIG_FIELDS = ("container", "container_config")


def new_config(config: bytes, changes: Changes, diff_id: str | None) -> bytes:
    """The image config with the release's labels and ENV, and the appended layer (its diff
    ID and a history entry) when there is one; the legacy build-container fields dropped."""
    parsed = _json(config, "image config")
    for stale in LEGACY_CONFIG_FIELDS:
        parsed.pop(stale, None)
    inner = parsed.setdefault("config", {}) or {}
    parsed["config"] = inner
    old = inner.get("Labels") or {}
    inner["Labels"] = dict(sorted(new_labels(old, changes.labels).items()))
    env = list(inner.get("Env") or [])
    for name, value in changes.env.items():
        entry = f"{name}={value}"
        at = [i for i, item in enumerate(env) if item.partition("=")[0] == name]
        if at:
            env[at[0]] = entry
        else:
            env.append(entry)
    inner["Env"] = env
    if changes.created:
        parsed["created"] = changes.created
    if diff_id:
        rootfs = parsed.get("rootfs")
        if not isinstance(rootfs, dict) or not isinstance(rootfs.get("diff_ids"), list):
            raise CannotPromote("its image config has no rootfs.diff_ids")
        rootfs["diff_ids"] = [*rootfs["diff_ids"], diff_id]
        history = list(parsed.get("history") or [])
        entry: dict[str, Any] = {"created_by": HISTORY_NOTE, "comment": "lara-buildtools"}
        if changes.created:
            entry = {"created": changes.created, **entry}
        parsed["history"] = [*history, entry]
    return compact(parsed)


def promote_manifest(
    manifest: bytes, media_type: str, configs: Mapping[str, bytes], changes: Changes
) -> Promoted:
    """One image manifest (Docker schema 2 or OCI) promoted: same layers, plus the new one of
    the same family's gzip type, and the new config."""
    parsed = _json(manifest, "manifest")
    kind = parsed.get("mediaType") or media_type
    if kind not in FAMILIES:
        raise CannotPromote(f"its manifest is of media type {kind or 'unknown'}")
    config_type, layer_type = FAMILIES[kind]
    descriptor = parsed.get("config") or {}
    if descriptor.get("mediaType") != config_type:
        raise CannotPromote(
            f"its {kind} manifest has a config of type {descriptor.get('mediaType')}, "
            f"not {config_type}"
        )
    for item in parsed.get("layers") or []:
        if item.get("mediaType") != layer_type:
            raise CannotPromote(f"it has a layer of type {item.get('mediaType')}, not {layer_type}")
    config = configs.get(str(descriptor.get("digest")))
    if config is None:
        raise CannotPromote(f"its config {descriptor.get('digest')} was not read")
    blobs: list[Blob] = []
    diff_id = None
    if changes.files:
        data, diff_id = layer(changes.files, epoch(changes.created))
        added = Blob(digest_of(data), layer_type, data)
        blobs.append(added)
        parsed["layers"] = [
            *(parsed.get("layers") or []),
            {"mediaType": layer_type, "size": len(data), "digest": added.digest},
        ]
    config_bytes = new_config(config, changes, diff_id)
    new = Blob(digest_of(config_bytes), config_type, config_bytes)
    blobs.append(new)
    parsed["config"] = {**descriptor, "size": len(config_bytes), "digest": new.digest}
    body = compact(parsed)
    return Promoted(digest_of(manifest), body, kind, tuple(blobs), config_digest=new.digest)


def index_entries(manifest: bytes) -> list[dict[str, Any]]:
    """The descriptors an index lists."""
    entries = _json(manifest, "index").get("manifests") or []
    return [e for e in entries if isinstance(e, dict)]


def is_attestation(entry: Mapping[str, Any]) -> bool:
    return (entry.get("annotations") or {}).get(REFERENCE_TYPE) == ATTESTATION


def wanted_children(source_manifest: bytes, media_type: str) -> list[str]:
    """The child manifests the edge must read to promote an index (attestations are dropped,
    so never read); none for an image manifest."""
    kind = _kind(source_manifest, media_type)
    if kind not in INDEXES:
        return []
    return [str(e.get("digest")) for e in index_entries(source_manifest) if not is_attestation(e)]


def config_digests(source: SourceImage) -> list[str]:
    """The config blobs the edge must read: the image's, or each child's of an index."""
    bodies = [source.manifest]
    if _kind(source.manifest, source.media_type) in INDEXES:
        bodies = list(source.manifests.values())
    found = []
    for body in bodies:
        try:
            digest = (json.loads(body).get("config") or {}).get("digest")
        except (ValueError, AttributeError):
            continue
        if digest:
            found.append(str(digest))
    return found


def _kind(manifest: bytes, media_type: str) -> str:
    try:
        return str(json.loads(manifest).get("mediaType") or media_type.split(";")[0].strip())
    except (ValueError, AttributeError):
        return media_type.split(";")[0].strip()


def promote(source: SourceImage, changes: Changes) -> Promoted:
    """The release image made from ``source``; :class:`CannotPromote` says why not.

    An index (OCI, or a Docker manifest list) gets each image manifest promoted and a new index
    listing them; attestation manifests are dropped with a warning (they describe the old image).
    """
    kind = _kind(source.manifest, source.media_type)
    if kind in FAMILIES:
        return promote_manifest(source.manifest, kind, source.configs, changes)
    if kind not in INDEXES:
        raise CannotPromote(f"its manifest is of media type {kind or 'unknown'}")
    parsed = _json(source.manifest, "index")
    entries: list[dict[str, Any]] = []
    blobs: dict[str, Blob] = {}
    children: list[Blob] = []
    dropped = 0
    for entry in index_entries(source.manifest):
        if is_attestation(entry):
            dropped += 1
            continue
        digest = str(entry.get("digest"))
        child = source.manifests.get(digest)
        if child is None:
            raise CannotPromote(f"its index entry {digest} was not read")
        if entry.get("mediaType") not in FAMILIES:
            raise CannotPromote(f"its index lists a manifest of type {entry.get('mediaType')}")
        done = promote_manifest(child, str(entry["mediaType"]), source.configs, changes)
        for blob in done.blobs:
            blobs.setdefault(blob.digest, blob)
        children.append(Blob(done.digest, done.media_type, done.manifest))
        entries.append({**entry, "size": len(done.manifest), "digest": done.digest})
    if not entries:
        raise CannotPromote("its index lists no image manifest")
    parsed["manifests"] = entries
    warnings = ()
    if dropped:
        warnings = (
            f"dropped {dropped} attestation manifest{'s' if dropped > 1 else ''} of the tested "
            "image: they describe it, not the release image",
        )
    return Promoted(
        source.digest, compact(parsed), kind, tuple(blobs.values()), tuple(children), warnings
    )
