"""Image manifests as a registry serves them: the media types we ask for, and what a
manifest's bytes tell (its digest, its image ID, its image's labels).

Manifests are asked for with every modern media type in ``Accept`` (Docker schema 2 and OCI,
images and indexes). Without them a registry may convert to the old schema 1, whose digest
is not the pushed one. Pure: the bytes come from :mod:`buildtools.registry.client`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from buildtools.plan.shapes import BadDocument, load

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST_TYPES = (DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_MANIFEST, OCI_INDEX)
ACCEPT = ", ".join(MANIFEST_TYPES)


@dataclass(frozen=True)
class Manifest:
    digest: str
    media_type: str
    config_digest: str | None  # the image ID for single-platform images; None for indexes
    size: int


def parse_manifest(body: bytes, content_type: str = "") -> Manifest:
    """The manifest in ``body``: its digest is the SHA-256 of these exact bytes (what the
    registry names it by), its media type the body's own if it says, else the header's."""
    media_type = content_type.split(";")[0].strip()
    config = None
    try:
        parsed = load(body, "manifest")
    except BadDocument:
        parsed = None
    if isinstance(parsed, dict):
        if isinstance(parsed.get("mediaType"), str):
            media_type = parsed["mediaType"] or media_type
        descriptor = parsed.get("config")
        if isinstance(descriptor, dict) and isinstance(descriptor.get("digest"), str):
            config = descriptor["digest"]
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    return Manifest(digest, media_type, config, len(body))


def config_labels(body: bytes) -> dict[str, str]:
    """The labels in an image config blob (empty if it has none or is not one)."""
    try:
        parsed = load(body, "image config")
    except BadDocument:
        return {}
    inner = parsed.get("config") if isinstance(parsed, dict) else None
    labels = (inner.get("Labels") if isinstance(inner, dict) else None) or {}
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}
