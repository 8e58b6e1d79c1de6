"""Signatures and attestations in a registry, where ``cosign verify`` looks for them.

Through :class:`~buildtools.registry.client.RegistryClient` only: the ``sha256-<hex>.sig`` and
``.att`` tags beside an image (:mod:`buildtools.plan.cosign_layout`), each an OCI manifest whose
layers are signed payloads. Writing keeps what others put there (another key's signature, an
attestation of another type) and sends nothing when the registry already holds what this key
would write, so a re-run costs a manifest read. What is read back is checked against its
digest by the client; whether it is signed by a key is :mod:`buildtools.attest.verify`'s.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from buildtools.attest.keys import PublicKey, SigningKey
from buildtools.plan import shapes
from buildtools.plan import statements as stm
from buildtools.plan.cosign_layout import (
    KEY_ANNOTATION,
    PAYLOAD_ANNOTATION,
    PREDICATE_ANNOTATION,
    SIGNATURE_ANNOTATION,
    Layer,
    attestation_tag,
    config_for,
    layers_of,
    manifest_for,
    signature_tag,
)
from buildtools.plan.manifests import OCI_MANIFEST
from buildtools.registry.client import RegistryClient
from buildtools.registry.transport import ANSWER_LIMIT

__all__ = [
    "Envelope",
    "Layer",
    "Proof",
    "Signature",
    "attach_existing",
    "attest",
    "attestation_tag",
    "read",
    "sign",
    "signature_tag",
]


@dataclass(frozen=True)
class Signature:
    """A ``.sig`` layer as read: the payload's bytes and the signature its annotation holds
    (empty when that is not base64)."""

    layer: Layer
    payload: bytes
    signature: bytes

    def signed_by(self, key: PublicKey) -> bool:
        return bool(self.signature) and key.verify(self.signature, self.payload)


@dataclass(frozen=True)
class Envelope:
    """An ``.att`` layer as read: a DSSE envelope, its payload decoded (empty if unreadable)."""

    layer: Layer
    payload_type: str
    payload: bytes
    signatures: tuple[bytes, ...]

    @property
    def predicate_type(self) -> str:
        """The annotation's claim; the statement's own field is what verify trusts."""
        return self.layer.annotations.get(PREDICATE_ANNOTATION, "")

    def signed_by(self, key: PublicKey) -> bool:
        signed = stm.dsse_pae(self.payload_type, self.payload)
        return any(key.verify(sig, signed) for sig in self.signatures if sig)

    def statement(self) -> dict[str, Any] | None:
        """The in-toto statement inside, None when it is not one."""
        try:
            parsed = json.loads(self.payload)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None


@dataclass(frozen=True)
class Proof:
    """What the registry holds beside image ``digest``; ``layers``: every layer of its
    ``.att`` manifest, those whose envelopes were not read included (a promotion carries the
    SBOM's over by reference)."""

    digest: str
    signatures: tuple[Signature, ...]
    envelopes: tuple[Envelope, ...]
    layers: tuple[Layer, ...] = ()


def _b64(text: object) -> bytes:
    if not isinstance(text, str):
        return b""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return b""


def _layers(client: RegistryClient, repository: str, tag: str) -> list[Layer]:
    found = client.manifest_bytes(repository, tag)
    return layers_of(found[0]) if found else []


def _put(client: RegistryClient, repository: str, tag: str, layers: Sequence[Layer]) -> int:
    """Put ``layers`` (their blobs already there) under ``tag``; the bytes sent. Their config
    names every layer: a new set of layers has a new one, sent without asking first."""
    config = config_for(layers)
    sent = client.put_blob(repository, shapes.digest_of(config), config, ask_first=False)
    body = manifest_for(layers, config)
    client.put_manifest(repository, tag, body, OCI_MANIFEST)
    return sent + len(body)


def sign(
    client: RegistryClient, repository: str, digest: str, docker_reference: str, key: SigningKey
) -> int:
    """Sign image ``digest`` as ``cosign sign --key`` does: a simple-signing layer added to its
    ``.sig`` manifest, the others kept. The bytes sent; 0 when this key's signature of this
    payload is there already."""
    tag = signature_tag(digest)
    payload = stm.simple_signing_payload(docker_reference, digest)
    payload_digest = shapes.digest_of(payload)
    public = key.public_key()
    layers = _layers(client, repository, tag)
    for layer in layers:
        signature = _b64(layer.annotations.get(SIGNATURE_ANNOTATION))
        if layer.digest == payload_digest and signature and public.verify(signature, payload):
            return 0
    annotations = {
        SIGNATURE_ANNOTATION: base64.b64encode(key.sign(payload)).decode(),
        KEY_ANNOTATION: public.keyid(),
    }
    mine = Layer(stm.SIMPLE_SIGNING_TYPE, payload_digest, len(payload), annotations)
    # Not asked first: this key's payload for this digest is missing (looked above), and
    # another key's identical one is rare; sending it again is harmless.
    sent = client.put_blob(repository, payload_digest, payload, ask_first=False)
    return sent + _put(client, repository, tag, [*layers, mine])


def _holds(client: RegistryClient, repository: str, layer: Layer, payload: bytes, key: PublicKey):
    """Whether ``layer`` is an envelope of exactly ``payload`` signed by ``key`` (read to see)."""
    envelope = _envelope(layer, client.blob(repository, layer.digest, ANSWER_LIMIT))
    return envelope.payload == payload and envelope.signed_by(key)


def attest(
    client: RegistryClient,
    repository: str,
    digest: str,
    statements: Sequence[Mapping[str, Any]],
    key: SigningKey,
    carried: Sequence[Layer] = (),
) -> int:
    """Attest image ``digest`` as ``cosign attest --key`` does: each in-toto statement in a
    DSSE envelope signed by ``key``, a layer of the ``.att`` manifest annotated with its
    predicate type. An earlier attestation of the same predicate type by this key is
    replaced, everything else kept. ``carried``: envelope layers the repository holds already,
    put beside them by reference (:func:`attach_existing`) in the same manifest: one PUT. The
    bytes sent; 0 when every statement and carried layer is there already."""
    tag = attestation_tag(digest)
    public = key.public_key()
    keyid = public.keyid()
    layers = _layers(client, repository, tag)
    sent, changed = 0, False
    for statement in statements:
        payload = stm.statement_bytes(statement)
        payload_digest = shapes.digest_of(payload)
        kind = str(statement["predicateType"])
        ours = [
            layer
            for layer in layers
            if layer.annotations.get(KEY_ANNOTATION) == keyid
            and layer.annotations.get(PREDICATE_ANNOTATION) == kind
        ]
        if any(
            layer.annotations.get(PAYLOAD_ANNOTATION) == payload_digest
            and _holds(client, repository, layer, payload, public)
            for layer in ours
        ):
            continue
        pae = stm.dsse_pae(stm.IN_TOTO_PAYLOAD_TYPE, payload)
        body = stm.envelope_bytes(stm.envelope(payload, key.sign(pae)))
        annotations = {
            PREDICATE_ANNOTATION: kind,
            SIGNATURE_ANNOTATION: "",
            KEY_ANNOTATION: keyid,
            PAYLOAD_ANNOTATION: payload_digest,
        }
        body_digest = shapes.digest_of(body)
        sent += client.put_blob(repository, body_digest, body, ask_first=False)
        layers = [layer for layer in layers if layer not in ours]
        layers.append(Layer(stm.DSSE_ENVELOPE_TYPE, body_digest, len(body), annotations))
        changed = True
    with_carried = _with(layers, carried)
    if with_carried is not None:
        layers, changed = with_carried, True
    return sent + _put(client, repository, tag, layers) if changed else sent


def _same_slot(a: Layer, b: Layer) -> bool:
    """``a`` (held) is what ``b`` (added) replaces: the same key and predicate type."""
    keys = (KEY_ANNOTATION, PREDICATE_ANNOTATION)
    return bool(a.annotations.get(KEY_ANNOTATION)) and all(
        a.annotations.get(k) == b.annotations.get(k) for k in keys
    )


def _with(current: Sequence[Layer], layers: Sequence[Layer]) -> list[Layer] | None:
    """``current`` with ``layers`` added (each replacing a layer of its slot); None when
    every one of them is there already."""
    have = {layer.digest for layer in current}
    adding = [layer for layer in layers if layer.digest not in have]
    if not adding:
        return None
    kept = [layer for layer in current if not any(_same_slot(layer, new) for new in adding)]
    return [*kept, *adding]


def attach_existing(
    client: RegistryClient, repository: str, digest: str, layers: Sequence[Layer]
) -> int:
    """Put envelope ``layers`` (blobs this repository holds, e.g. another digest's
    attestations as :func:`read` gave them) under image ``digest``'s ``.att`` too, without
    uploading them again: a promoted digest carries its tested image's SBOM. A layer of the
    same key and predicate type as one of ``layers`` is replaced; the bytes sent (a manifest
    and its small config), 0 when every layer is there already.

    The statements inside still name the digest they were made for: cosign's
    ``verify-attestation`` on ``digest`` does not accept them (its subject check), which is why
    :mod:`buildtools.attest.verify` accepts a carried envelope only through a link."""
    found = _with(_layers(client, repository, attestation_tag(digest)), layers)
    return 0 if found is None else _put(client, repository, attestation_tag(digest), found)


def _envelope(layer: Layer, body: bytes) -> Envelope:
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        return Envelope(layer, "", b"", ())
    found = parsed.get("signatures")
    listed = found if isinstance(found, list) else []
    sigs = tuple(_b64(item.get("sig")) for item in listed if isinstance(item, dict))
    kind = parsed.get("payloadType")
    return Envelope(layer, kind if isinstance(kind, str) else "", _b64(parsed.get("payload")), sigs)


def read(
    client: RegistryClient,
    repository: str,
    digest: str,
    skip: Collection[str] = (),
    known: Collection[bytes] = (),
) -> Proof:
    """The signatures and attestations the registry holds beside image ``digest``, each blob
    checked against its digest (a layer of another media type is left out). ``skip``:
    predicate types (as the layers' annotations claim them) whose envelopes are not read: a
    promotion's proof check needs no SBOM, which is most of the bytes. ``known``: signature
    payloads whose bytes the caller has (the one a key would sign for this digest): a layer
    whose digest is theirs is those very bytes, so its blob is not read."""
    by_digest = {shapes.digest_of(payload): payload for payload in known}
    signatures = []
    for layer in _layers(client, repository, signature_tag(digest)):
        if layer.media_type != stm.SIMPLE_SIGNING_TYPE:
            continue
        payload = by_digest.get(layer.digest)
        if payload is None:
            payload = client.blob(repository, layer.digest)
        signature = _b64(layer.annotations.get(SIGNATURE_ANNOTATION))
        signatures.append(Signature(layer, payload, signature))
    layers = _layers(client, repository, attestation_tag(digest))
    envelopes = [
        _envelope(layer, client.blob(repository, layer.digest, ANSWER_LIMIT))
        for layer in layers
        if layer.media_type == stm.DSSE_ENVELOPE_TYPE
        and layer.annotations.get(PREDICATE_ANNOTATION) not in skip
    ]
    return Proof(digest, tuple(signatures), tuple(envelopes), tuple(layers))
