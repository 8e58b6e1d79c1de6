"""A release is never left looking released without its signature: with a signing key, every
digest is signed after its exact tags are pushed and before any floating tag (``latest``,
``1``, ``1.2``) moves to it. A registry that refuses the ``.sig`` PUT stops the release with
``1.2.3`` unsigned (which a re-run signs) and ``latest`` where it was; the re-run finishes it.

Through a promotion (the registry's API only, no engine): the tested ``sha-`` images carry
this key's proof, so the release promotes them and then signs the promoted digests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import testbed
from buildtools.attest import cosign
from buildtools.attest.keys import parse_signing_key
from buildtools.attest.verify import verify
from buildtools.registry import targets
from tests.fixtures.flaky_proxy import FlakyProxy
from tests.fixtures.promotion import behind, invoke, push_master_images
from tests.fixtures.registry import login_env, release_config
from tests.fixtures.signing import provenance, smoke

FLOATING = ("1.2", "1", "latest")


def signed_master_images(tagged: dict[str, Any], key_file: Path, registry) -> Any:
    """The master build's sha- images, signed and attested (provenance of this commit, a
    passed smoke test) by the key in ``key_file``, as `invoke ci` of master leaves them."""
    images = push_master_images(tagged, smoked=True)
    key = parse_signing_key(key_file.read_bytes(), "", str(key_file))
    env = login_env(registry.host, registry.username, registry.password)
    (target,) = targets.configured(release_config(registry.host), env)
    for name, (_, digest) in images.items():
        reference = f"{registry.host}/{tagged[name]}"
        cosign.sign(target.client, tagged[name], digest, reference, key)
        proof = [provenance(reference, digest, tagged["commit"]), smoke(reference, digest)]
        cosign.attest(target.client, tagged[name], digest, proof, key)
    return key, target


def test_a_refused_signature_leaves_no_floating_tag_on_an_unsigned_image(
    registry: testbed.LocalRegistry, tagged: dict[str, Any], tmp_path: Path
) -> None:
    key_file = tmp_path / "signing.pem"
    key_file.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key, target = signed_master_images(tagged, key_file, registry)
    signing = {"INVOKE_BUILDTOOLS_RELEASE_SIGNING_KEY": str(key_file)}

    def sig_put(method: str, path: str, agent: str) -> bool:
        return method == "PUT" and "/manifests/sha256-" in path and path.endswith(".sig")

    proxy = FlakyProxy(registry.host, failures=10_000, status=403, match=sig_put).start()
    try:
        refused = invoke(tagged["repo"], {**behind(proxy, tagged, registry), **signing}, "release")
    finally:
        proxy.stop()

    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert proxy.failed, "the .sig PUT was never tried"
    for name in ("app", "nginx"):
        tags = registry.tags(tagged[name])
        assert "1.2.3" in tags  # the exact version is pushed (unsigned: the re-run signs it)
        assert not set(FLOATING) & set(tags), tags  # nothing floats onto an unsigned image
    error = refused.stderr.strip().splitlines()[-1]
    assert "no floating tag was moved" in error, error

    again = invoke(tagged["repo"], {**tagged["env"], **signing}, "release")

    assert again.returncode == 0, again.stderr
    for name in ("app", "nginx"):
        assert set(FLOATING) <= set(registry.tags(tagged[name]))
        for tag in ("1.2.3", "latest"):
            done = verify(target.client, tagged[name], tag, key.public_key())
            assert done.commit == tagged["commit"]


def test_without_a_key_the_release_moves_its_floating_tags_as_before(
    registry: testbed.LocalRegistry, tagged: dict[str, Any]
) -> None:
    push_master_images(tagged)
    done = invoke(tagged["repo"], tagged["env"], "release")
    assert done.returncode == 0, done.stderr
    assert "NOT SIGNED" in done.stderr
    for name in ("app", "nginx"):
        assert set(FLOATING) <= set(registry.tags(tagged[name]))
