"""The predicates a promoted digest gets from its tested image's (pure): the provenance keeps
what the build was and names the tested digest, the one link invoke verify follows; the small
BOM points at the tested image's full one by its envelope's digest."""

from __future__ import annotations

from buildtools.attest import carry
from buildtools.plan import statements as stm
from buildtools.plan.cosign_layout import Layer
from tests.fixtures.signing import record

TESTED = "sha256:" + "1" * 64
PROMOTED = "sha256:" + "2" * 64
NAME = "registry.example:5000/lara/app"


def test_the_promoted_provenance_names_the_commit_and_the_tested_digest_once() -> None:
    built = stm.slsa_provenance(
        record(commit="c" * 40), repository_url="https://example/lara", builder_id="b",
        builder_version="1",
    )  # fmt: skip
    once = carry.linked_predicate(
        stm.SLSA_PROVENANCE_V1, built, NAME, TESTED, {"LARA_VERSION": "2.0.0"}
    )
    again = carry.linked_predicate(stm.SLSA_PROVENANCE_V1, once, NAME, TESTED)

    assert stm.provenance_commit(again) == "c" * 40
    assert stm.promoted_from(again) == TESTED
    links = [
        d
        for d in again["buildDefinition"]["resolvedDependencies"]
        if d.get("name") == stm.PROMOTED_FROM
    ]
    assert links == [{"name": stm.PROMOTED_FROM, "uri": NAME, "digest": {"sha256": "1" * 64}}]
    # The build args the promotion wrote (its version), not the tested build's.
    assert stm.provenance_version(again) == "2.0.0"
    assert stm.promoted_from(built) is None  # the tested image's own is unchanged


def test_the_smoke_test_says_which_image_ran() -> None:
    ran = {"result": "passed", "version": "1.2.3-master"}
    linked = carry.linked_predicate(stm.SMOKE_TEST, ran, NAME, TESTED)
    assert linked == {**ran, "promotedFrom": TESTED}


def test_the_small_bom_points_at_the_tested_images_envelope() -> None:
    envelope = Layer(stm.DSSE_ENVELOPE_TYPE, "sha256:" + "3" * 64, 900_000)
    bom = carry.sbom_link(NAME, PROMOTED, TESTED, envelope)
    assert bom["bomFormat"] == "CycloneDX"
    assert bom["metadata"]["component"]["version"] == PROMOTED
    (ref,) = bom["externalReferences"]
    assert ref["url"] == f"{NAME}@{TESTED}"
    assert ref["hashes"] == [{"alg": "SHA-256", "content": "3" * 64}]
