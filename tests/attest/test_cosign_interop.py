"""Our signatures and attestations against the real cosign (Debian 13's 2.5, offline: no
transparency log), both ways: cosign accepts what we push, we accept what cosign pushes, and
neither accepts a foreign image pushed under a signed tag."""

from __future__ import annotations

from pathlib import Path

import pytest

import testbed
from buildtools.attest import cosign
from buildtools.attest.keys import load_signing_key, load_verify_key
from buildtools.attest.verify import verify
from buildtools.errors import BuildToolsError
from buildtools.plan import statements as stm
from tests.fixtures.signing import Cosign, provenance, push_image, sbom, signing_key, smoke

COMMIT = "5eed" + "0" * 36
PASSWORD = "cosign test password"


def ours(image, key, digest: str | None = None) -> None:
    digest = digest or image.digest
    cosign.sign(image.client, image.repository, digest, image.name, key)
    statements = [
        provenance(image.name, digest, COMMIT),
        smoke(image.name, digest),
        sbom(image.name, digest, [("ruby", "3.1.2")]),
    ]
    cosign.attest(image.client, image.repository, digest, statements, key)


@pytest.mark.docker
def test_cosign_verifies_what_we_sign_and_attest(
    tmp_path: Path, fast_registry: testbed.LocalRegistry, cosign_cli: Cosign
) -> None:
    image = push_image(fast_registry)
    key, public = signing_key(tmp_path)
    ours(image, key)
    ours(image, key)  # a re-run changes nothing cosign sees
    by_tag, by_digest = f"{image.name}:{image.tag}", f"{image.name}@{image.digest}"
    for ref in (by_tag, by_digest):
        done = cosign_cli.verify(public, ref)
        assert done.returncode == 0, done.stderr
        assert image.digest in done.stdout
    for kind in ("slsaprovenance1", "cyclonedx", stm.SMOKE_TEST):
        done = cosign_cli.verify_attestation(public, by_tag, kind)
        assert done.returncode == 0, (kind, done.stderr)
    _, other_public = signing_key(tmp_path)
    assert cosign_cli.verify(other_public, by_tag).returncode != 0


@pytest.mark.docker
def test_a_foreign_image_under_a_signed_tag_fails_cosign_and_invoke_verify(
    tmp_path: Path, fast_registry: testbed.LocalRegistry, cosign_cli: Cosign
) -> None:
    image = push_image(fast_registry)
    key, public = signing_key(tmp_path)
    ours(image, key)
    foreign = image.another(image.tag)
    done = cosign_cli.verify(public, f"{image.name}:{image.tag}")
    assert done.returncode != 0 and "no signatures found" in done.stderr
    with pytest.raises(BuildToolsError, match=f"{foreign} is unsigned"):
        verify(image.client, image.repository, image.tag, key.public_key())


@pytest.mark.docker
def test_a_key_cosign_made_signs_for_us_and_we_verify_what_cosign_pushed(
    tmp_path: Path, fast_registry: testbed.LocalRegistry, cosign_cli: Cosign
) -> None:
    made = cosign_cli.run("generate-key-pair", password=PASSWORD)
    assert made.returncode == 0, made.stderr
    cosign_key = cosign_cli.workdir / "cosign.key"
    assert b"ENCRYPTED SIGSTORE PRIVATE KEY" in cosign_key.read_bytes()
    key = load_signing_key(cosign_key, {"COSIGN_PASSWORD": PASSWORD})
    assert key is not None
    public = load_verify_key(cosign_cli.workdir / "cosign.pub")
    assert key.public_key() == public
    with pytest.raises(BuildToolsError, match="cannot be decrypted") as caught:
        load_signing_key(cosign_key, {"COSIGN_PASSWORD": "wrong " + PASSWORD})
    assert PASSWORD not in str(caught.value)

    # cosign signs and attests with its key; our verify accepts it.
    image = push_image(fast_registry)
    ref = f"{image.name}@{image.digest}"
    offline = ["--key", str(cosign_key), "--tlog-upload=false", "--allow-http-registry=true"]
    done = cosign_cli.run("sign", *offline, ref, password=PASSWORD)
    assert done.returncode == 0, done.stderr
    predicate = tmp_path / "provenance.json"
    statement = provenance(image.name, image.digest, COMMIT)
    predicate.write_text(stm.statement_bytes(statement["predicate"]).decode())
    done = cosign_cli.run(
        "attest", *offline, "--type", "slsaprovenance1", "--predicate", str(predicate), ref,
        password=PASSWORD,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    checked = verify(image.client, image.repository, image.tag, public, commit=COMMIT)
    assert checked.commit == COMMIT and checked.digest == image.digest

    # Our payload is byte for byte cosign's: signing with the same key finds cosign's
    # signature and sends nothing. Another key's is added beside it; cosign accepts both.
    assert cosign.sign(image.client, image.repository, image.digest, image.name, key) == 0
    other, other_public = signing_key(tmp_path)
    assert cosign.sign(image.client, image.repository, image.digest, image.name, other) > 0
    assert len(cosign.read(image.client, image.repository, image.digest).signatures) == 2
    assert cosign_cli.verify(cosign_cli.workdir / "cosign.pub", ref).returncode == 0
    assert cosign_cli.verify(other_public, ref).returncode == 0


@pytest.mark.docker
def test_cosign_refuses_an_attestation_carried_to_another_digest(
    tmp_path: Path, fast_registry: testbed.LocalRegistry, cosign_cli: Cosign
) -> None:
    """What promotion's attach_existing can and cannot do: cosign checks each statement's
    subject against the digest it verifies, so an SBOM carried from the tested digest to the
    promoted one (no upload) is not accepted by `cosign verify-attestation` for the promoted
    digest; it is for the tested one, and our verify accepts it through the provenance link."""
    image = push_image(fast_registry)
    key, public = signing_key(tmp_path)
    ours(image, key)
    promoted = image.another("1.0.1")
    bom = [
        e.layer
        for e in cosign.read(image.client, image.repository, image.digest).envelopes
        if e.predicate_type == stm.CYCLONEDX
    ]
    cosign.sign(image.client, image.repository, promoted, image.name, key)
    cosign.attach_existing(image.client, image.repository, promoted, bom)
    link = provenance(image.name, promoted, COMMIT, promoted_from=f"{image.name}@{image.digest}")
    cosign.attest(image.client, image.repository, promoted, [link], key)

    at_promoted = f"{image.name}@{promoted}"
    assert cosign_cli.verify(public, at_promoted).returncode == 0
    assert cosign_cli.verify_attestation(public, at_promoted, "slsaprovenance1").returncode == 0
    refused = cosign_cli.verify_attestation(public, at_promoted, "cyclonedx")
    assert refused.returncode != 0
    assert "none of the attestations matched the predicate type: cyclonedx" in refused.stderr
    tested = f"{image.name}@{image.digest}"
    assert cosign_cli.verify_attestation(public, tested, "cyclonedx").returncode == 0
    checked = verify(image.client, image.repository, promoted, key.public_key(), commit=COMMIT)
    assert checked.sbom == {"components": 1, "top": ["ruby 3.1.2"]}
