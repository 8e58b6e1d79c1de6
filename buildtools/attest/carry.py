"""Carrying a tested image's attestations over to the digest promoted from it.

A promotion rewrites the tested ``sha-`` image's manifest (labels, version.yml), so the release
tags point at a new digest that no attestation names yet. Its proof is the tested image's,
linked: the provenance and the smoke test are re-issued about the promoted digest, each naming
the tested digest it was promoted from (small statements, signed again); the SBOM, the same
packages and often hundreds of kB, stays one blob: its envelope is put under the promoted
digest's ``.att`` by reference, no upload (:func:`buildtools.attest.cosign.attach_existing`), and
a small CycloneDX document about the promoted digest points at it, so ``cosign
verify-attestation --type cyclonedx`` on the promoted digest finds a signed BOM (cosign skips an
envelope whose subject is another digest). Only envelopes signed by this key about the tested
digest are carried: what anyone else put there is left behind.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from buildtools.attest import cosign
from buildtools.attest.keys import SigningKey
from buildtools.plan import statements as stm
from buildtools.plan.cosign_layout import (
    KEY_ANNOTATION,
    PREDICATE_ANNOTATION,
    Layer,
    attestation_tag,
    layers_of,
)
from buildtools.registry.client import RegistryClient
from buildtools.registry.transport import ANSWER_LIMIT

# On a carried layer (not signed: a pointer for readers): the digest it was made for.
CARRIED_ANNOTATION = "dev.lara-buildtools/carried-from"
# Re-issued about the promoted digest; the SBOM is carried by reference.
REISSUED = (stm.SLSA_PROVENANCE_V1, stm.SMOKE_TEST)


@dataclass(frozen=True)
class Tested:
    """What the tested image's ``.att`` holds that this key signed about it."""

    statements: Mapping[str, dict[str, Any]]  # the re-issued kinds, by predicate type
    sbom: Layer | None  # the SBOM envelope's layer, not read


def _about(statement: Mapping[str, Any], digest: str) -> bool:
    algorithm, _, hexdigest = digest.partition(":")
    subjects = statement.get("subject")
    return isinstance(subjects, list) and any(
        isinstance(s, dict) and (s.get("digest") or {}).get(algorithm) == hexdigest
        for s in subjects
    )


def read_tested(
    client: RegistryClient,
    repository: str,
    tested: str,
    key: SigningKey,
    proof: cosign.Proof | None = None,
) -> Tested:
    """The tested image's provenance and smoke-test statements (checked: signed by ``key``,
    about ``tested``) and its SBOM's layer (only listed: its blob is not read). ``proof``: the
    tested image's, as the promotion's proof check read it (then nothing is read again)."""
    public, keyid = key.public_key(), key.public_key().keyid()
    if proof is not None and proof.digest == tested:
        layers = list(proof.layers)
    else:
        found = client.manifest_bytes(repository, attestation_tag(tested))
        layers = layers_of(found[0]) if found else []
    read = {e.layer.digest: e for e in proof.envelopes} if proof and proof.digest == tested else {}
    statements: dict[str, dict[str, Any]] = {}
    sbom: Layer | None = None
    for layer in layers:
        kind = layer.annotations.get(PREDICATE_ANNOTATION, "")
        mine = layer.annotations.get(KEY_ANNOTATION) == keyid  # a claim: checked below
        if layer.media_type != stm.DSSE_ENVELOPE_TYPE or not mine:
            continue
        if kind == stm.CYCLONEDX:
            sbom = layer  # not read: its signature and subject are checked by its readers
        elif kind in REISSUED:
            envelope = read.get(layer.digest) or cosign._envelope(  # the parse read() uses
                layer, client.blob(repository, layer.digest, ANSWER_LIMIT)
            )
            statement = envelope.statement()
            if (
                statement is not None
                and envelope.signed_by(public)
                and statement.get("predicateType") == kind
                and _about(statement, tested)
            ):
                statements[kind] = statement
    return Tested(statements, sbom)


def linked_predicate(
    kind: str,
    predicate: Mapping[str, Any],
    docker_reference: str,
    tested: str,
    build_args: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """``predicate`` about the promoted image. The provenance names the tested image as the
    one it was promoted from (the link :func:`buildtools.attest.verify.verify` follows to the
    carried SBOM) and, when the promotion rewrote them, the build args it now says
    (``build_args``: version, tags and date of the release); the smoke test, unchanged in
    what it ran, says which image that was."""
    found = copy.deepcopy(dict(predicate))
    if kind != stm.SLSA_PROVENANCE_V1:
        found["promotedFrom"] = tested
        return found
    definition = found.setdefault("buildDefinition", {})
    dependencies = [
        d
        for d in definition.get("resolvedDependencies") or []
        if not (isinstance(d, dict) and d.get("name") == stm.PROMOTED_FROM)
    ]
    algorithm, _, hexdigest = tested.partition(":")
    dependencies.append(
        {"name": stm.PROMOTED_FROM, "uri": docker_reference, "digest": {algorithm: hexdigest}}
    )
    definition["resolvedDependencies"] = dependencies
    if build_args:
        definition.setdefault("externalParameters", {})["buildArgs"] = dict(build_args)
    return found


def sbom_link(docker_reference: str, promoted: str, tested: str, sbom: Layer) -> dict[str, Any]:
    """A small CycloneDX BOM about the promoted image: it holds the tested image's packages,
    whose full BOM is the envelope ``sbom`` (its blob's digest) beside the tested digest."""
    algorithm, _, hexdigest = sbom.digest.partition(":")
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {
            "component": {"type": "container", "name": docker_reference, "version": promoted},
        },
        "externalReferences": [
            {
                "type": "bom",
                "url": f"{docker_reference}@{tested}",
                "comment": "the packages' full SBOM: the cyclonedx attestation of the tested "
                "image this one was promoted from (same packages); its DSSE envelope's digest",
                "hashes": [{"alg": algorithm.upper().replace("SHA", "SHA-"), "content": hexdigest}],
            }
        ],
    }


def carry_over(
    client: RegistryClient,
    repository: str,
    docker_reference: str,
    tested: str,
    promoted: str,
    key: SigningKey,
    build_args: Mapping[str, str] | None = None,
    proof: cosign.Proof | None = None,
) -> tuple[int, list[str]]:
    """Attest ``promoted`` with the tested image's proof, linked, in one ``.att`` manifest;
    the bytes sent and the predicate types attached. Nothing carried when the tested image
    has no proof by this key (a promotion with a key checks that before it runs). ``proof``:
    the tested image's as already read (:func:`read_tested`)."""
    found = read_tested(client, repository, tested, key, proof)
    about = [(docker_reference, promoted)]
    issued = [
        stm.statement(
            about,
            kind,
            linked_predicate(kind, predicate["predicate"], docker_reference, tested, build_args),
        )
        for kind, predicate in found.statements.items()
    ]
    if found.sbom is not None:
        link = sbom_link(docker_reference, promoted, tested, found.sbom)
        issued.append(stm.statement(about, stm.CYCLONEDX, link))
    carried: list[Layer] = []
    if found.sbom is not None:
        # Without our key annotation: a pointer beside the re-issued BOM, never its slot.
        notes = {k: v for k, v in found.sbom.annotations.items() if k != KEY_ANNOTATION}
        carried.append(
            Layer(
                found.sbom.media_type,
                found.sbom.digest,
                found.sbom.size,
                {**notes, CARRIED_ANNOTATION: tested},
            )
        )
    if not (issued or carried):
        return 0, []
    sent = cosign.attest(client, repository, promoted, issued, key, carried)
    return sent, [s["predicateType"] for s in issued]
