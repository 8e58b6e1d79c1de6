"""Verifying an image in a real registry: what it proves, and one line for each way the proof
does not hold (unsigned, another key, another digest, another commit, no smoke test)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import testbed
from buildtools.attest import cosign
from buildtools.attest.verify import verify
from buildtools.errors import BuildToolsError
from buildtools.plan import statements as stm
from tests.fixtures import invoke_cli
from tests.fixtures.registry import login_env
from tests.fixtures.signing import Pushed, provenance, push_image, sbom, signing_key, smoke

COMMIT = "c0ffee" + "0" * 34
PACKAGES = [("libc6", "2.36"), ("ruby", "3.1.2"), ("rails", "6.1.7"), ("nginx", "1.22"),
            ("openssl", "3.0.11"), ("zlib1g", "1.2.13")]  # fmt: skip


def release(image: Pushed, key, digest: str | None = None, commit: str = COMMIT) -> None:
    """What a release leaves: a signature, provenance, smoke test and SBOM for ``digest``."""
    digest = digest or image.digest
    cosign.sign(image.client, image.repository, digest, image.name, key)
    found = [
        provenance(image.name, digest, commit),
        smoke(image.name, digest, "1.0.0"),
        sbom(image.name, digest, PACKAGES),
    ]
    cosign.attest(image.client, image.repository, digest, found, key)


def refused(image: Pushed, reference: str, key, **kwargs) -> str:
    with pytest.raises(BuildToolsError) as caught:
        verify(image.client, image.repository, reference, key, **kwargs)
    text = str(caught.value)
    assert "\n" not in text and caught.value.fix
    return text


def test_a_released_image_verifies_and_says_what_it_is(
    tmp_path: Path, fast_registry: testbed.LocalRegistry
) -> None:
    image = push_image(fast_registry)
    key, _ = signing_key(tmp_path)
    release(image, key)
    done = verify(image.client, image.repository, "1.0.0", key.public_key(), commit=COMMIT[:7])
    assert done.digest == image.digest and done.image == f"{image.name}@{image.digest}"
    assert (done.commit, done.version) == (COMMIT, "1.0.0")
    assert done.smoke_test["result"] == "passed"
    assert done.sbom == {
        "components": 6,
        "top": ["libc6 2.36", "ruby 3.1.2", "rails 6.1.7", "nginx 1.22", "openssl 3.0.11"],
    }
    text = done.text()
    assert f"commit: {COMMIT}" in text and "version: 1.0.0" in text
    assert "smoke test: passed: GET / answered 200" in text
    assert "sbom: 6 components (libc6 2.36" in text
    by_digest = verify(image.client, image.repository, image.digest, key.public_key())
    assert by_digest.as_dict() == done.as_dict()


def test_an_unsigned_image_is_refused(tmp_path: Path, fast_registry: testbed.LocalRegistry):
    image = push_image(fast_registry)
    key, _ = signing_key(tmp_path)
    assert "is unsigned" in refused(image, "1.0.0", key.public_key())


def test_another_keys_signature_is_refused(tmp_path: Path, fast_registry: testbed.LocalRegistry):
    image = push_image(fast_registry)
    key, _ = signing_key(tmp_path)
    other, _ = signing_key(tmp_path)
    release(image, other)
    assert "is signed, but not by key sha256:" in refused(image, "1.0.0", key.public_key())


def test_a_foreign_image_pushed_under_a_signed_tag_is_unsigned(
    tmp_path: Path, fast_registry: testbed.LocalRegistry
) -> None:
    image = push_image(fast_registry)
    key, _ = signing_key(tmp_path)
    release(image, key)
    foreign = image.another(image.tag)  # same tag, other content
    text = refused(image, image.tag, key.public_key())
    assert f"{image.name}@{foreign} is unsigned" in text


def test_signatures_copied_to_another_digest_are_a_digest_mismatch(
    tmp_path: Path, fast_registry: testbed.LocalRegistry
) -> None:
    image = push_image(fast_registry)
    key, _ = signing_key(tmp_path)
    release(image, key)
    foreign = image.another("2.0.0")
    for tag in (cosign.signature_tag, cosign.attestation_tag):
        body, _ = image.writer.read(image.repository, tag(image.digest))
        media = "application/vnd.oci.image.manifest.v1+json"
        image.writer.manifest(image.repository, tag(foreign), body, media)
    text = refused(image, "2.0.0", key.public_key())
    assert f"digest mismatch: the signature of {image.name}@{foreign}" in text
    assert image.digest in text
    # A valid signature of the foreign image does not make the copied attestations its own.
    cosign.sign(image.client, image.repository, foreign, image.name, key)
    text = refused(image, "2.0.0", key.public_key())
    assert "digest mismatch: an attestation" in text and image.digest in text


def test_provenance_for_another_commit_is_refused(
    tmp_path: Path, fast_registry: testbed.LocalRegistry
) -> None:
    image = push_image(fast_registry)
    key, _ = signing_key(tmp_path)
    release(image, key, commit="d" * 40)
    text = refused(image, "1.0.0", key.public_key(), commit=COMMIT)
    assert f"names commit {'d' * 40}, not {COMMIT}" in text


@pytest.mark.parametrize("given", ["v1.0.0", "HEAD", "c0ffee", COMMIT + "0"])
def test_a_commit_that_is_no_commit_id_is_refused_as_such(
    tmp_path: Path, fast_registry: testbed.LocalRegistry, given: str
) -> None:
    # The image was built from COMMIT: a tag name or a short prefix given for --commit must
    # not read as "built from another commit, do not use it".
    image = push_image(fast_registry)
    key, _ = signing_key(tmp_path)
    release(image, key)
    text = refused(image, "1.0.0", key.public_key(), commit=given)
    assert "is not a commit ID" in text and "names commit" not in text


def test_a_missing_smoke_test_is_refused_when_asked_for(
    tmp_path: Path, fast_registry: testbed.LocalRegistry
) -> None:
    image = push_image(fast_registry)
    key, _ = signing_key(tmp_path)
    cosign.sign(image.client, image.repository, image.digest, image.name, key)
    cosign.attest(
        image.client, image.repository, image.digest, [provenance(image.name, image.digest)], key
    )
    done = verify(image.client, image.repository, "1.0.0", key.public_key())
    assert done.smoke_test is None and "smoke test: none attested" in done.text()
    text = refused(image, "1.0.0", key.public_key(), require_smoke=True)
    assert "has no smoke-test attestation" in text


def test_a_promoted_image_carries_its_tested_images_sbom_through_a_link(
    tmp_path: Path, fast_registry: testbed.LocalRegistry
) -> None:
    image = push_image(fast_registry)
    key, _ = signing_key(tmp_path)
    release(image, key)
    promoted = image.another("1.0.1")
    tested = cosign.read(image.client, image.repository, image.digest)
    bom = [e.layer for e in tested.envelopes if e.predicate_type == stm.CYCLONEDX]
    cosign.sign(image.client, image.repository, promoted, image.name, key)
    cosign.attach_existing(image.client, image.repository, promoted, bom)
    # Without a link from the promoted digest to the tested one, the SBOM is someone else's.
    assert "digest mismatch: an attestation (https://cyclonedx.org/bom)" in refused(
        image, "1.0.1", key.public_key()
    )
    link = provenance(image.name, promoted, COMMIT, promoted_from=f"{image.name}@{image.digest}")
    cosign.attest(image.client, image.repository, promoted, [link], key)
    done = verify(image.client, image.repository, "1.0.1", key.public_key(), commit=COMMIT)
    assert done.sbom is not None and done.sbom["components"] == len(PACKAGES)


def test_no_key_is_one_line(fast_registry: testbed.LocalRegistry) -> None:
    image = push_image(fast_registry)
    assert "no key to verify with" in refused(image, "1.0.0", None)


def app_dir(tmp_path: Path, reg: testbed.LocalRegistry, extra: str = "") -> Path:
    app = tmp_path / "app"
    app.mkdir()
    (app / "tasks.py").write_text("from buildtools.tasks import ns  # noqa: F401\n")
    config = f"buildtools:\n  release:\n    registries: {reg.host}\n{extra}"
    (app / "invoke.yaml").write_text(config)
    return app


def test_invoke_verify_prints_the_proof_or_one_line(
    tmp_path: Path, fast_registry: testbed.LocalRegistry
) -> None:
    image = push_image(fast_registry)
    key, public = signing_key(tmp_path)
    release(image, key)
    app = app_dir(tmp_path, fast_registry, f"    verify_key: {public}\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **login_env(
        fast_registry.host, fast_registry.username, fast_registry.password)}  # fmt: skip
    done = invoke_cli.in_process(["verify", f"{image.repository}:1.0.0"], app, env)
    assert done.returncode == 0, done.stderr
    assert f"commit: {COMMIT}" in done.stdout and "sbom: 6 components" in done.stdout

    as_json = invoke_cli.in_process(["verify", "--json", f"{image.name}:1.0.0"], app, env)
    assert json.loads(as_json.stdout)["commit"] == COMMIT

    other = invoke_cli.in_process(
        ["verify", f"{image.repository}:1.0.0", "--commit", "d" * 40], app, env
    )
    assert other.returncode != 0 and other.stdout == ""
    assert len(other.stderr.strip().splitlines()) == 1
    assert f"names commit {COMMIT}, not {'d' * 40}" in other.stderr
    assert fast_registry.password not in other.stderr
    # The console script says the same, with the same exit status (one real process).
    real = invoke_cli.real(["verify", f"{image.repository}:1.0.0", "--commit", "d" * 40], app, env)
    assert (real.returncode, real.stdout, real.stderr) == (
        other.returncode,
        other.stdout,
        other.stderr,
    )


def test_invoke_verify_sends_the_generic_login_only_to_configured_registries(
    tmp_path: Path, fast_registry: testbed.LocalRegistry
) -> None:
    image = push_image(fast_registry)
    key, public = signing_key(tmp_path)
    release(image, key)
    app = app_dir(tmp_path, fast_registry)
    (app / "invoke.yaml").write_text("buildtools:\n  release:\n    registries: ghcr.io\n")
    generic = {"DOCKER_USERNAME": fast_registry.username, "DOCKER_PASSWORD": fast_registry.password}
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **generic}
    args = ["verify", "--key", str(public), f"{image.name}:1.0.0"]
    refused = invoke_cli.in_process(args, app, env)
    assert refused.returncode != 0 and "login" in refused.stderr.lower(), refused.stderr
    assert fast_registry.password not in refused.stderr
    own = login_env(fast_registry.host, fast_registry.username, fast_registry.password)
    done = invoke_cli.in_process(args, app, {**env, **own})
    assert done.returncode == 0, done.stderr
