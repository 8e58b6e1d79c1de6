"""What is signed, as plain values: cosign's "simple signing" payload, in-toto statements,
DSSE's pre-authentication encoding and envelopes, and the predicates we attest.

These are the formats ``cosign verify`` and ``cosign verify-attestation`` read (sigstore's
signature spec, in-toto's statement v1, DSSE v1, SLSA provenance v1), made without I/O so that
every byte that gets signed can be checked in a unit test. The signing itself is
:mod:`buildtools.attest.keys`'; where the results go in a registry, :mod:`buildtools.attest.cosign`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from typing import Any

from buildtools.plan.build_record import BuildRecord

# The payload types and media types cosign writes and reads.
SIMPLE_SIGNING_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE_ENVELOPE_TYPE = "application/vnd.dsse.envelope.v1+json"
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
SIGNATURE_TYPE = "cosign container image signature"
STATEMENT_V1 = "https://in-toto.io/Statement/v1"

# Predicate types: cosign's names `slsaprovenance1` and `cyclonedx`, and ours for the smoke test
# (`cosign verify-attestation --type <this URI>`). The smoke test's is versioned: a change of
# its fields that a reader must know of gets a new URI.
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
CYCLONEDX = "https://cyclonedx.org/bom"
SMOKE_TEST = "https://github.com/concord-consortium/lara-buildtools/smoke-test/v1"
# What a build by this tool is (SLSA's buildType: how to read externalParameters).
BUILD_TYPE = "https://github.com/concord-consortium/lara-buildtools/build/v1"
# The resolved dependency of a promoted image's provenance that names the tested image it was
# promoted from: attestations about that digest are carried over (the SBOM) and verify.
PROMOTED_FROM = "promoted from"


def _compact(value: Any) -> bytes:
    """JSON as Go's encoder writes it (no spaces): the exact bytes signed and stored."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def simple_signing_payload(docker_reference: str, digest: str) -> bytes:
    """The payload ``cosign sign`` signs for image ``digest`` of repository
    ``docker_reference`` (``host/name``, no tag): cosign verify checks that it names exactly
    the digest being verified."""
    return _compact(
        {
            "critical": {
                "identity": {"docker-reference": docker_reference},
                "image": {"docker-manifest-digest": digest},
                "type": SIGNATURE_TYPE,
            },
            "optional": None,
        }
    )


def signed_digest(payload: bytes) -> str | None:
    """The image digest a simple-signing payload names (None: not one)."""
    try:
        parsed = json.loads(payload)
        critical = parsed["critical"]
        if critical["type"] != SIGNATURE_TYPE:
            return None
        digest = critical["image"]["docker-manifest-digest"]
    except (ValueError, TypeError, KeyError):
        return None
    return digest if isinstance(digest, str) else None


def subject(name: str, digest: str) -> dict[str, Any]:
    """An in-toto subject: ``digest`` is ``sha256:<hex>``."""
    algorithm, _, hexdigest = digest.partition(":")
    return {"name": name, "digest": {algorithm: hexdigest}}


def statement(
    subjects: Iterable[tuple[str, str]], predicate_type: str, predicate: Mapping[str, Any]
) -> dict[str, Any]:
    """An in-toto statement (v1) about each ``(name, digest)`` subject."""
    return {
        "_type": STATEMENT_V1,
        "subject": [subject(name, digest) for name, digest in subjects],
        "predicateType": predicate_type,
        "predicate": dict(predicate),
    }


def statement_bytes(value: Mapping[str, Any]) -> bytes:
    """A statement's bytes as they go into an envelope's payload."""
    return _compact(value)


def dsse_pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1's pre-authentication encoding: what a DSSE signature signs (never the bare
    payload, so a signature cannot be replayed as one over another payload type)."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def envelope(
    payload: bytes, signature: bytes, payload_type: str = IN_TOTO_PAYLOAD_TYPE
) -> dict[str, Any]:
    """A DSSE envelope holding ``payload`` and one signature over its PAE."""
    return {
        "payloadType": payload_type,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": "", "sig": base64.b64encode(signature).decode()}],
    }


def envelope_bytes(value: Mapping[str, Any]) -> bytes:
    """An envelope as stored in a registry layer."""
    return _compact(value)


def _digest_map(digest: str) -> dict[str, str]:
    algorithm, _, hexdigest = digest.partition(":")
    return {algorithm: hexdigest} if hexdigest else {}


def slsa_provenance(
    record: BuildRecord,
    *,
    repository_url: str,
    builder_id: str,
    builder_version: str,
    invocation_id: str = "",
    run_url: str = "",
    promoted_from: str = "",
) -> dict[str, Any]:
    """SLSA provenance v1's predicate for the image ``record`` describes.

    ``resolvedDependencies``: the source (``git+<repository_url>`` at the commit, digest
    ``gitCommit``), the context directory's tree (``gitTree``), the Dockerfile's bytes and the
    base image, each with its digest, and for a promoted image (``promoted_from``: the tested
    image's ``name@digest``) that image; ``externalParameters``: the build args and which image
    of the pair; ``runDetails``: this tool as the builder and the CI run."""
    source = f"git+{repository_url}" if repository_url else "git"
    dependencies: list[dict[str, Any]] = [
        {"uri": f"{source}@{record.commit}", "digest": {"gitCommit": record.commit}}
    ]
    if record.context_tree:
        dependencies.append(
            {"name": "context", "uri": source, "digest": {"gitTree": record.context_tree}}
        )
    if record.dockerfile_digest:
        dependencies.append({"name": "Dockerfile", "digest": _digest_map(record.dockerfile_digest)})
    if record.base_image:
        base, _, pinned = record.base_image.rpartition("@")
        dependency: dict[str, Any] = {"name": "base image"}
        if base:
            dependency["uri"] = base
        dependency["digest"] = _digest_map(pinned)
        dependencies.append(dependency)
    if promoted_from:
        name, _, tested = promoted_from.rpartition("@")
        link: dict[str, Any] = {"name": PROMOTED_FROM}
        if name:
            link["uri"] = name
        link["digest"] = _digest_map(tested)
        dependencies.append(link)
    metadata: dict[str, Any] = {}
    if invocation_id or run_url:
        metadata["invocationId"] = invocation_id or run_url
    if record.created:
        metadata["startedOn"] = record.created
    internal: dict[str, Any] = {"source": record.source, "imageId": record.image_id}
    if run_url:
        internal["ciRunUrl"] = run_url
    return {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {
                "image": record.image,
                "repository": record.repository,
                "buildArgs": dict(record.build_args),
            },
            "internalParameters": internal,
            "resolvedDependencies": dependencies,
        },
        "runDetails": {
            "builder": {"id": builder_id, "version": {"lara-buildtools": builder_version}},
            "metadata": metadata,
        },
    }


def provenance_commit(predicate: Mapping[str, Any]) -> str | None:
    """The commit a SLSA provenance v1 predicate says the image was built from (its first
    ``gitCommit`` dependency), None when it names none."""
    for dependency in _dependencies(predicate):
        digest = dependency.get("digest")
        commit = digest.get("gitCommit") if isinstance(digest, Mapping) else None
        if isinstance(commit, str):
            return commit
    return None


def _dependencies(predicate: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    try:
        found = predicate["buildDefinition"]["resolvedDependencies"]
    except (KeyError, TypeError):
        return []
    return [d for d in found if isinstance(d, Mapping)] if isinstance(found, list) else []


def promoted_from(predicate: Mapping[str, Any]) -> str | None:
    """The digest of the tested image a promoted image's provenance names (None: not one)."""
    for dependency in _dependencies(predicate):
        digest = dependency.get("digest")
        if dependency.get("name") == PROMOTED_FROM and isinstance(digest, Mapping):
            for algorithm, value in digest.items():
                return f"{algorithm}:{value}"
    return None


def provenance_version(predicate: Mapping[str, Any]) -> str | None:
    """The version the build args gave the image (``LARA_VERSION``), None when none."""
    try:
        found = predicate["buildDefinition"]["externalParameters"]["buildArgs"]["LARA_VERSION"]
    except (KeyError, TypeError):
        return None
    return found if isinstance(found, str) else None


def smoke_predicate(
    *,
    app_image: str,
    sidecar_image: str,
    path: str,
    status: int,
    version: str,
    started: str,
    finished: str,
    expected: str = "",
    services: Iterable[str] = (),
    passed: bool = True,
) -> dict[str, Any]:
    """The smoke test's predicate (:data:`SMOKE_TEST`): which stack ran (the app and sidecar
    images by digest reference, the service images beside them), which path answered with
    which HTTP status and the text expected in it, the version the stack said it ran
    (``LARA_IMAGE_VERSION``), and when (RFC 3339, UTC)."""
    return {
        "stack": {"app": app_image, "sidecar": sidecar_image, "services": list(services)},
        "request": {"path": path, "status": status, "expected": expected},
        "version": version,
        "result": "passed" if passed else "failed",
        "startedOn": started,
        "finishedOn": finished,
    }
