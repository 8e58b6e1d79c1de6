"""Signatures and attestations written beside an image in a real registry: what is there
afterwards (read with plain requests too), what is kept, and what a re-run sends."""

from __future__ import annotations

import json
from pathlib import Path

import testbed
from buildtools.attest import cosign
from buildtools.plan import statements as stm
from buildtools.plan.cosign_layout import KEY_ANNOTATION, PREDICATE_ANNOTATION
from tests.fixtures.signing import provenance, push_image, sbom, signing_key, smoke


def layers(image, tag: str) -> list[dict]:
    body, _ = image.writer.read(image.repository, tag)
    return json.loads(body)["layers"]


def test_sign_adds_a_signature_layer_and_a_rerun_sends_nothing(
    tmp_path: Path, fast_registry: testbed.LocalRegistry
) -> None:
    image = push_image(fast_registry)
    key, _ = signing_key(tmp_path)
    sent = cosign.sign(image.client, image.repository, image.digest, image.name, key)
    assert 0 < sent < 4096
    tag = cosign.signature_tag(image.digest)
    assert tag in fast_registry.tags(image.repository)
    (layer,) = layers(image, tag)
    assert layer["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
    payload = image.writer.read_blob(image.repository, layer["digest"])
    assert stm.signed_digest(payload) == image.digest
    assert cosign.sign(image.client, image.repository, image.digest, image.name, key) == 0
    assert len(layers(image, tag)) == 1


def test_another_keys_signature_is_kept(tmp_path: Path, fast_registry: testbed.LocalRegistry):
    image = push_image(fast_registry)
    first, _ = signing_key(tmp_path)
    second, _ = signing_key(tmp_path)
    cosign.sign(image.client, image.repository, image.digest, image.name, first)
    cosign.sign(image.client, image.repository, image.digest, image.name, second)
    proof = cosign.read(image.client, image.repository, image.digest)
    assert len(proof.signatures) == 2
    for key in (first, second):
        assert [s.signed_by(key.public_key()) for s in proof.signatures].count(True) == 1


def test_attest_replaces_its_own_statement_of_a_type_and_keeps_the_rest(
    tmp_path: Path, fast_registry: testbed.LocalRegistry
) -> None:
    image = push_image(fast_registry)
    key, _ = signing_key(tmp_path)
    other, _ = signing_key(tmp_path)
    name, digest = image.name, image.digest
    first = [provenance(name, digest), smoke(name, digest, "1.0.0")]
    assert cosign.attest(image.client, image.repository, digest, first, key) > 0
    assert cosign.attest(image.client, image.repository, digest, first, key) == 0  # a re-run
    cosign.attest(image.client, image.repository, digest, [smoke(name, digest, "x")], other)
    # A new smoke test by the first key replaces its own, not the other key's.
    again = [smoke(name, digest, "1.0.1"), sbom(name, digest, [("ruby", "3.1")])]
    assert cosign.attest(image.client, image.repository, digest, again, key) > 0

    proof = cosign.read(image.client, image.repository, digest)
    seen = sorted(
        (e.predicate_type, e.signed_by(key.public_key()), e.statement()["predicate"].get("version"))
        for e in proof.envelopes
    )
    assert seen == sorted(
        [
            (stm.SLSA_PROVENANCE_V1, True, None),
            (stm.SMOKE_TEST, False, "x"),
            (stm.SMOKE_TEST, True, "1.0.1"),
            (stm.CYCLONEDX, True, None),
        ]
    )
    raw = layers(image, cosign.attestation_tag(digest))
    assert {layer["annotations"][PREDICATE_ANNOTATION] for layer in raw} == {
        stm.SLSA_PROVENANCE_V1,
        stm.SMOKE_TEST,
        stm.CYCLONEDX,
    }


def test_attach_existing_puts_layers_under_another_digest_without_uploading_them(
    tmp_path: Path, fast_registry: testbed.LocalRegistry
) -> None:
    image = push_image(fast_registry)
    promoted = image.another("1.0.0-promoted")
    key, _ = signing_key(tmp_path)
    packages = [(f"package-{n}", f"1.{n}") for n in range(2000)]  # an SBOM of ~100 kB
    statement = sbom(image.name, image.digest, packages)
    cosign.attest(image.client, image.repository, image.digest, [statement], key)
    tested = cosign.read(image.client, image.repository, image.digest)
    (envelope,) = tested.envelopes
    assert envelope.layer.size > 96_000

    sent = cosign.attach_existing(
        image.client, image.repository, promoted, [e.layer for e in tested.envelopes]
    )
    assert 0 < sent < 2_000  # a manifest and its config: the SBOM is not sent again
    carried = cosign.read(image.client, image.repository, promoted)
    assert [e.layer for e in carried.envelopes] == [envelope.layer]
    assert carried.envelopes[0].payload == envelope.payload
    assert carried.envelopes[0].layer.annotations[KEY_ANNOTATION] == key.public_key().keyid()
    again = [e.layer for e in tested.envelopes]
    assert cosign.attach_existing(image.client, image.repository, promoted, again) == 0


def test_nothing_beside_an_unsigned_image_reads_as_no_proof(
    fast_registry: testbed.LocalRegistry,
) -> None:
    image = push_image(fast_registry)
    proof = cosign.read(image.client, image.repository, image.digest)
    assert proof == cosign.Proof(image.digest, (), ())
