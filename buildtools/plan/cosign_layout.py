"""cosign's registry layout, as plain values: the tags beside an image that hold its signatures
and attestations, and the OCI manifests under them.

The signature of image ``sha256:<hex>`` lives in the same repository under the tag
``sha256-<hex>.sig``, its attestations under ``sha256-<hex>.att``: OCI manifests whose layers
are the signed payloads (simple signing JSON, or DSSE envelopes), each layer's annotations
carrying its signature (``.sig``) or its predicate type (``.att``). Where the OCI referrers API
is missing (distribution 2.8, Docker Hub), this tag scheme is what ``cosign verify`` reads.
The I/O is :mod:`buildtools.attest.cosign`'s.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from buildtools.config.checks import HOST, REPOSITORY
from buildtools.errors import BuildToolsError
from buildtools.plan import shapes
from buildtools.plan.manifests import OCI_MANIFEST

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
PREDICATE_ANNOTATION = "predicateType"
# Ours, beside cosign's: which key signed a layer (the SHA-256 of its public key's DER) and
# the digest of the payload inside, so a re-run finds its own layers without reading them.
# Claims only: whatever they say is checked against the signature before it is trusted.
KEY_ANNOTATION = "dev.lara-buildtools/key"
PAYLOAD_ANNOTATION = "dev.lara-buildtools/payload"


IPV6_HOST = re.compile(r"\[[0-9A-Fa-f:.]+\](?::\d+)?")


def _tag(digest: str, suffix: str) -> str:
    if not shapes.is_digest(digest):
        raise ValueError(f"not a digest: {digest[:80]!r}")
    algorithm, _, hexdigest = digest.partition(":")
    return f"{algorithm}-{hexdigest}.{suffix}"


def split_image(image: str) -> tuple[str, str, str]:
    """``host[:port]/repo/name[:tag][@digest]`` as (host, repository, reference): the host
    is empty when the first part names none (no ``.``, ``:`` nor ``localhost``); the
    reference is the digest when given, else the tag (``latest`` when none). The host and
    repository must follow Docker's grammar: ``app:1:2`` or ``http://host/app`` is refused
    here, not sent to a registry as a path that then looks like a registry that is down."""
    text = image.strip()
    name, _, digest = text.partition("@")
    host, _, rest = name.partition("/")
    if not rest or not ("." in host or ":" in host or host == "localhost"):
        host, rest = "", name
    repository, _, tag = rest.rpartition(":") if ":" in rest else (rest, "", "")
    reference = digest or tag or "latest"
    if (
        not REPOSITORY.fullmatch(repository)
        or (host and not (HOST.fullmatch(host) or IPV6_HOST.fullmatch(host)))
        or any(ch.isspace() for ch in text)
        or (digest and not shapes.is_digest(digest))
        or not shapes.is_reference(reference)
    ):
        raise BuildToolsError(
            f"{image[:200]!r} is not an image reference",
            "name it as [host[:port]/]repository[:tag] or …@sha256:<hex> (no http://; "
            "lowercase repository parts joined by /)",
        )
    return host, repository, reference


def signature_tag(digest: str) -> str:
    """``sha256-<hex>.sig``: where cosign keeps the signatures of image ``digest``."""
    return _tag(digest, "sig")


def attestation_tag(digest: str) -> str:
    """``sha256-<hex>.att``: where cosign keeps the attestations of image ``digest``."""
    return _tag(digest, "att")


@dataclass(frozen=True)
class Layer:
    """One layer of a ``.sig`` or ``.att`` manifest: a descriptor of a blob in the repository."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)

    def descriptor(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "mediaType": self.media_type,
            "size": self.size,
            "digest": self.digest,
        }
        if self.annotations:
            found["annotations"] = dict(self.annotations)
        return found

    @classmethod
    def of(cls, descriptor: Mapping[str, Any]) -> Layer:
        return cls(
            descriptor["mediaType"],
            descriptor["digest"],
            descriptor["size"],
            dict(descriptor.get("annotations") or {}),
        )


def layers_of(manifest: bytes) -> list[Layer]:
    """The layers of a ``.sig``/``.att`` manifest (its shape checked by the registry client)."""
    parsed = shapes.load(manifest, "manifest")
    return [Layer.of(item) for item in parsed.get("layers") or []]


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def config_for(layers: Sequence[Layer]) -> bytes:
    """The image config cosign writes beside its layers (empty platform, one diff ID per
    layer: cosign's payload layers are stored uncompressed)."""
    return _compact(
        {
            "architecture": "",
            "config": {},
            "created": "0001-01-01T00:00:00Z",
            "history": [{"created": "0001-01-01T00:00:00Z"}],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
        }
    )


def manifest_for(layers: Sequence[Layer], config: bytes) -> bytes:
    """The OCI manifest holding ``layers``, with ``config`` (:func:`config_for`) as its config."""
    return _compact(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG,
                "size": len(config),
                "digest": shapes.digest_of(config),
            },
            "layers": [layer.descriptor() for layer in layers],
        }
    )
