"""Check an image in a registry against a public key, as ``cosign verify`` and
``cosign verify-attestation`` do, and say what the proof holds.

Read through the registry API alone (no engine): the reference is resolved to a digest once,
and everything is checked against that digest. A signature counts only when this key made it
over a simple-signing payload naming exactly that digest; an attestation only when this key
signed its DSSE envelope and its statement's subject is that digest, or (a promoted image
carrying its tested image's SBOM) a digest that a provenance about this one names as the image
it was promoted from. Anything else is one line saying which check failed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from buildtools.attest import cosign
from buildtools.attest.keys import PublicKey, load_signing_key, load_verify_key
from buildtools.config.registry_address import parse_registry
from buildtools.config.schema import ReleaseConfig
from buildtools.errors import BuildToolsError
from buildtools.plan import shapes
from buildtools.plan import statements as stm
from buildtools.plan.cosign_layout import split_image
from buildtools.registry import credentials as creds
from buildtools.registry.client import RegistryClient
from buildtools.registry.targets import retry_policy

COMMIT_ID = re.compile(r"[0-9a-fA-F]{7,40}")
SBOM_TOP = 5  # packages named in the SBOM summary
SIGN_FIX = "sign it (invoke release with buildtools.release.signing_key, or cosign sign --key)"


@dataclass(frozen=True)
class Verified:
    """What checked out for one image digest (every field from a statement this key signed)."""

    image: str  # host/repository@digest
    digest: str
    signed: bool
    key: str  # the key's id (sha256 of its DER)
    commit: str | None = None
    version: str | None = None
    smoke_test: Mapping[str, Any] | None = None
    sbom: Mapping[str, Any] | None = None  # {"components": n, "top": ["name version", …]}
    attestations: tuple[str, ...] = field(default=())  # predicate types verified

    def as_dict(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "digest": self.digest,
            "signed": self.signed,
            "key": self.key,
            "commit": self.commit,
            "version": self.version,
            "smoke_test": dict(self.smoke_test) if self.smoke_test else None,
            "sbom": dict(self.sbom) if self.sbom else None,
            "attestations": list(self.attestations),
        }

    def text(self) -> str:
        smoke = self.smoke_test
        if smoke:
            request = smoke.get("request") or {}
            said = (
                f"{smoke.get('result')}: GET {request.get('path')} answered "
                f"{request.get('status')}, version {smoke.get('version')}, "
                f"at {smoke.get('finishedOn')}"
            )
        else:
            said = "none attested"
        sbom = self.sbom
        packages = (
            f"{sbom['components']} components ({', '.join(sbom['top'])}"
            f"{', …' if sbom['components'] > len(sbom['top']) else ''})"
            if sbom
            else "none attested"
        )
        lines = [
            f"image: {self.image}",
            f"signed: yes, by key {self.key}",
            f"commit: {self.commit or 'no provenance attested'}",
            f"version: {self.version or 'unknown'}",
            f"smoke test: {said}",
            f"sbom: {packages}",
        ]
        return "\n".join(lines)


def _subjects(statement: Mapping[str, Any]) -> set[str]:
    found = set()
    for item in statement.get("subject") or []:
        digests = item.get("digest") if isinstance(item, dict) else None
        for algorithm, value in (digests or {}).items():
            found.add(f"{algorithm}:{value}")
    return found


def _check_signature(proof: cosign.Proof, key: PublicKey, image: str) -> None:
    if not proof.signatures:
        raise BuildToolsError(f"image {image} is unsigned (nothing under its .sig tag)", SIGN_FIX)
    by_key = [s for s in proof.signatures if s.signed_by(key)]
    if not by_key:
        raise BuildToolsError(
            f"image {image} is signed, but not by key {key.keyid()}",
            "verify with the public key of the key that signs releases (--key)",
        )
    named = {stm.signed_digest(s.payload) for s in by_key}
    if proof.digest not in named:
        other = ", ".join(sorted(str(n) for n in named))
        raise BuildToolsError(
            f"digest mismatch: the signature of {image} by this key names {other}",
            "the image under this reference is not the one signed: do not use it",
        )


def _statements(proof: cosign.Proof, key: PublicKey, image: str) -> list[dict[str, Any]]:
    """The statements this key signed about this digest (or carried over to it by a link)."""
    signed = []
    for envelope in proof.envelopes:
        if envelope.payload_type != stm.IN_TOTO_PAYLOAD_TYPE or not envelope.signed_by(key):
            continue
        statement = envelope.statement()
        if statement is None or not isinstance(statement.get("predicate"), dict):
            raise BuildToolsError(
                f"an attestation of {image} signed by this key is no in-toto statement", SIGN_FIX
            )
        signed.append(statement)
    own = [s for s in signed if proof.digest in _subjects(s)]
    linked = {
        link
        for s in own
        if s.get("predicateType") == stm.SLSA_PROVENANCE_V1
        for link in [stm.promoted_from(s["predicate"])]
        if link
    }
    for statement in signed:
        subjects = _subjects(statement)
        if proof.digest not in subjects and not subjects & linked:
            raise BuildToolsError(
                f"digest mismatch: an attestation ({statement.get('predicateType')}) under "
                f"{image} by this key is about {', '.join(sorted(subjects)) or 'nothing'}",
                "the attestations were copied from another image: do not trust this one",
            )
    return signed


def _latest(found: Sequence[Mapping[str, Any]], kind: str) -> Mapping[str, Any] | None:
    """The predicate of the last statement of ``kind`` (in the manifest's order)."""
    of_kind = [s["predicate"] for s in found if s.get("predicateType") == kind]
    return of_kind[-1] if of_kind else None


def sbom_summary(bom: Mapping[str, Any]) -> dict[str, Any]:
    """A CycloneDX document's component count and its first few packages."""
    components = [c for c in bom.get("components") or [] if isinstance(c, dict)]
    top = [
        f"{c.get('name')} {c.get('version')}".strip() if c.get("version") else str(c.get("name"))
        for c in components[:SBOM_TOP]
    ]
    return {"components": len(components), "top": top}


def verify(
    client: RegistryClient,
    repository: str,
    reference: str,
    key: PublicKey | None,
    *,
    commit: str | None = None,
    require_smoke: bool = False,
    skip: Sequence[str] = (),
) -> Verified:
    """Check image ``repository:reference`` (a tag or digest) against ``key``; what it holds
    (:func:`checked`)."""
    found, _ = checked(
        client, repository, reference, key, commit=commit, require_smoke=require_smoke, skip=skip
    )
    return found


def checked(
    client: RegistryClient,
    repository: str,
    reference: str,
    key: PublicKey | None,
    *,
    commit: str | None = None,
    require_smoke: bool = False,
    skip: Sequence[str] = (),
) -> tuple[Verified, cosign.Proof]:
    """Check image ``repository:reference`` (a tag or digest) against ``key``; what it holds,
    and the proof as read (a promotion carries it over without reading it again).

    Raises :class:`BuildToolsError` (one line) when it is unsigned, signed by another key,
    signed for another digest, its provenance names another ``commit`` (when given), or it
    has no smoke-test attestation (``require_smoke``). ``skip``: predicate types not read
    (:func:`buildtools.attest.cosign.read`): what they would say is neither checked nor
    returned."""
    if key is None:
        raise BuildToolsError(
            "no key to verify with",
            "give --key cosign.pub, or set buildtools.release.verify_key (or signing_key)",
        )
    if commit and not COMMIT_ID.fullmatch(commit):
        raise BuildToolsError(
            f"--commit {commit[:80]!r} is not a commit ID: it would read as another commit's "
            "provenance",
            "give 7 to 40 hex digits of the commit (git rev-parse HEAD, or a tag's "
            "git rev-list -n 1 TAG)",
        )
    where = client.registry.push_name(repository)
    digest = reference if shapes.is_digest(reference) else client.digest(repository, reference)
    if digest is None:
        raise BuildToolsError(
            f"no image {where}:{reference} in registry {client.registry.name}",
            "check the image's name and tag",
        )
    image = f"{where}@{digest}"
    # The payload this key signs for this digest is known: its blob is not read.
    expected = stm.simple_signing_payload(where, digest)
    proof = cosign.read(client, repository, digest, skip, known=[expected])
    _check_signature(proof, key, image)
    statements = _statements(proof, key, image)
    provenance = _latest(statements, stm.SLSA_PROVENANCE_V1)
    built_from = stm.provenance_commit(provenance) if provenance else None
    if commit:
        if built_from is None:
            raise BuildToolsError(f"image {image} has no provenance signed by this key", SIGN_FIX)
        if not (len(commit) >= 7 and built_from.startswith(commit.lower())):
            raise BuildToolsError(
                f"provenance of {image} names commit {built_from}, not {commit}",
                "this image was not built from that commit: build and release it",
            )
    smoke = _latest(statements, stm.SMOKE_TEST)
    if require_smoke and smoke is None:
        raise BuildToolsError(
            f"image {image} has no smoke-test attestation by this key",
            "release it with invoke ci, which smoke-tests it",
        )
    bom = _latest(statements, stm.CYCLONEDX)
    version = (smoke or {}).get("version") or stm.provenance_version(provenance or {})
    found = Verified(
        image=image,
        digest=digest,
        signed=True,
        key=key.keyid(),
        commit=built_from,
        version=version if isinstance(version, str) else None,
        smoke_test=smoke,
        sbom=sbom_summary(bom) if bom is not None else None,
        attestations=tuple(str(s.get("predicateType")) for s in statements),
    )
    return found, proof


def public_key(release: ReleaseConfig, env: Mapping[str, str], given: Path | None) -> PublicKey:
    """The key ``invoke verify`` checks with: ``--key``, else ``release.verify_key``, else the
    public half of the signing key (``release.signing_key`` or ``COSIGN_PRIVATE_KEY``)."""
    path = given or release.verify_key
    if path is not None:
        return load_verify_key(path)
    signing = load_signing_key(release.signing_key, env)
    if signing is None:
        raise BuildToolsError(
            "no key to verify with",
            "give --key cosign.pub, or set buildtools.release.verify_key (or signing_key)",
        )
    return signing.public_key()


def client_for(
    image: str, release: ReleaseConfig, env: Mapping[str, str]
) -> tuple[RegistryClient, str, str]:
    """The registry client, repository and reference of ``image``. A registry named in the
    image gets its own credentials (``DOCKER_USERNAME_<HOST>``…); the generic
    ``DOCKER_USERNAME``/``DOCKER_PASSWORD`` only go to the configured release registries
    (an image name is no reason to send them elsewhere). No host: the first release registry."""
    host, repository, reference = split_image(image)
    configured = [parse_registry(e) for e in release.registries_or_default]
    registry = parse_registry(host) if host else configured[0]
    ours = any(r.name == registry.name for r in configured)
    login = creds.for_registry(registry.name, env, release=ours)
    return RegistryClient(registry, login, retry_policy(release)), repository, reference
