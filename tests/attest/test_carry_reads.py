"""What a signed promotion reads and writes beside the images (#26, bytes on the wire): the
tested image's proof is read once, by the proof check, and the carry step reuses it; the
promoted digest's ``.att`` is written in one PUT; a signature whose payload is the one the
key signs for the digest is checked without reading its blob. Real registry behind a
counting proxy that fails nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import testbed
from buildtools.attest import carry, cosign
from buildtools.attest.verify import checked, verify
from buildtools.plan import shapes
from buildtools.plan import statements as stm
from tests.fixtures.flaky_proxy import FlakyProxy
from tests.fixtures.registry_client import client_for
from tests.fixtures.signing import provenance, push_image, sbom, signing_key, smoke

COMMIT = "a" * 40


def settled(proxy: FlakyProxy) -> int:
    """The requests the proxy has seen, once it has recorded them all: it records each after
    answering, so the client may be a request ahead."""
    count = -1
    while count != len(proxy.seen):
        count = len(proxy.seen)
        time.sleep(0.3)
    return count


def test_the_carry_step_reuses_the_proof_check_s_reads_and_puts_the_att_once(
    tmp_path: Path,
    fast_registry: testbed.LocalRegistry,
    flaky_proxy: Callable[..., FlakyProxy],
) -> None:
    image = push_image(fast_registry)
    key, _ = signing_key(tmp_path)
    proxy = flaky_proxy(fast_registry.host)
    client = client_for(proxy.host, fast_registry.username, fast_registry.password)
    # Signed as the registry is named here (through the proxy), as a release signs it.
    name, tested = client.registry.push_name(image.repository), image.digest
    cosign.sign(image.client, image.repository, tested, name, key)
    made = [provenance(name, tested), smoke(name, tested), sbom(name, tested, [("ruby", "3.1")])]
    cosign.attest(image.client, image.repository, tested, made, key)
    promoted = image.another("1.0.0-promoted")

    _, proof = checked(
        client, image.repository, tested, key.public_key(), commit=COMMIT,
        require_smoke=True, skip=(stm.CYCLONEDX,),
    )  # fmt: skip
    checked_requests = settled(proxy)
    sent, kinds = carry.carry_over(
        client, image.repository, name, tested, promoted, key, None, proof
    )

    settled(proxy)
    carried = [(s.method, s.path) for s in proxy.seen[checked_requests:] if s.status != 401]
    att = f"/v2/{image.repository}/manifests/{cosign.attestation_tag(promoted)}"
    # Nothing of the tested image is read again; the promoted .att is read once, put once.
    assert not [p for m, p in carried if m == "GET" and p != att]
    assert [m for m, p in carried if p == att] == ["GET", "PUT"]
    assert sent > 0 and sorted(kinds) == sorted([*carry.REISSUED, stm.CYCLONEDX])
    # The signature's payload is the one this key signs for the digest: its blob is not read.
    sig_payload = stm.simple_signing_payload(name, tested)
    assert not [s for s in proxy.seen if s.path.endswith(shapes.digest_of(sig_payload))]

    # What invoke verify finds on the promoted digest: the smoke test, provenance and SBOM.
    cosign.sign(image.client, image.repository, promoted, name, key)
    found = verify(image.client, image.repository, promoted, key.public_key(), commit=COMMIT)
    assert found.smoke_test is not None and found.sbom is not None
    assert set(found.attestations) >= {stm.SLSA_PROVENANCE_V1, stm.SMOKE_TEST, stm.CYCLONEDX}
    # A re-run sends nothing and puts nothing.
    again = carry.carry_over(client, image.repository, name, tested, promoted, key, None, proof)
    assert again[0] == 0
