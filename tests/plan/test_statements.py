"""What gets signed, byte for byte: cosign's simple-signing payload, DSSE's PAE, in-toto
statements and the provenance and smoke-test predicates."""

from __future__ import annotations

import base64
import json

from buildtools.plan import statements as stm
from tests.fixtures.signing import record

DIGEST = "sha256:" + "ab" * 32


def test_pae_is_dsse_v1s_encoding() -> None:
    # The DSSE specification's own example (protocol.md): lengths in ASCII decimal, one space.
    assert (
        stm.dsse_pae("http://example.com/HelloWorld", b"hello world")
        == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    # Lengths count bytes, not characters; an empty payload still has its separator.
    assert stm.dsse_pae("t", "é".encode()) == b"DSSEv1 1 t 2 \xc3\xa9"
    assert stm.dsse_pae("t", b"") == b"DSSEv1 1 t 0 "


def test_the_simple_signing_payload_names_exactly_the_digest() -> None:
    payload = stm.simple_signing_payload("registry.example:5000/lara/app", DIGEST)
    assert json.loads(payload) == {
        "critical": {
            "identity": {"docker-reference": "registry.example:5000/lara/app"},
            "image": {"docker-manifest-digest": DIGEST},
            "type": "cosign container image signature",
        },
        "optional": None,
    }
    # Compact, as cosign writes it (the bytes signed are the bytes stored).
    assert payload == json.dumps(json.loads(payload), separators=(",", ":")).encode()
    assert stm.signed_digest(payload) == DIGEST


def test_a_payload_that_is_not_simple_signing_names_no_digest() -> None:
    other = json.dumps({"critical": {"type": "something else", "image": {}}}).encode()
    for payload in (b"not json", b"[]", other, b'{"critical": {"type": 1}}'):
        assert stm.signed_digest(payload) is None


def test_a_statement_names_its_subjects_by_algorithm_and_hex() -> None:
    made = stm.statement([("lara/app", DIGEST)], stm.SMOKE_TEST, {"a": 1})
    assert made == {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "lara/app", "digest": {"sha256": "ab" * 32}}],
        "predicateType": stm.SMOKE_TEST,
        "predicate": {"a": 1},
    }


def test_an_envelope_holds_the_payload_and_signature_in_base64() -> None:
    made = stm.envelope(b'{"x":1}', b"\x00sig")
    assert made["payloadType"] == "application/vnd.in-toto+json"
    assert base64.b64decode(made["payload"]) == b'{"x":1}'
    assert [base64.b64decode(s["sig"]) for s in made["signatures"]] == [b"\x00sig"]


def test_provenance_names_the_commit_tree_dockerfile_base_args_builder_and_run() -> None:
    commit = "c" * 40
    predicate = stm.slsa_provenance(
        record(commit),
        repository_url="https://github.com/concord-consortium/lara",
        builder_id="https://github.com/concord-consortium/lara-buildtools",
        builder_version="0.1.0",
        invocation_id="12345",
        run_url="https://ci.example/run/12345",
    )
    build = predicate["buildDefinition"]
    assert build["buildType"] == stm.BUILD_TYPE
    assert build["externalParameters"]["buildArgs"] == {
        "LARA_VERSION": "1.2.3",
        "LARA_COMMIT": commit,
    }
    assert build["resolvedDependencies"] == [
        {
            "uri": f"git+https://github.com/concord-consortium/lara@{commit}",
            "digest": {"gitCommit": commit},
        },
        {
            "name": "context",
            "uri": "git+https://github.com/concord-consortium/lara",
            "digest": {"gitTree": "b" * 40},
        },
        {"name": "Dockerfile", "digest": {"sha256": "2" * 64}},
        {"name": "base image", "uri": "lara-buildtools/debian", "digest": {"sha256": "3" * 64}},
    ]
    assert build["internalParameters"]["ciRunUrl"] == "https://ci.example/run/12345"
    run = predicate["runDetails"]
    assert run["builder"] == {
        "id": "https://github.com/concord-consortium/lara-buildtools",
        "version": {"lara-buildtools": "0.1.0"},
    }
    assert run["metadata"] == {"invocationId": "12345", "startedOn": "2026-07-01T12:00:00Z"}
    assert stm.provenance_commit(predicate) == commit
    assert stm.provenance_version(predicate) == "1.2.3"
    assert stm.promoted_from(predicate) is None
    json.dumps(predicate)  # plain JSON values only


def test_a_promoted_images_provenance_links_the_tested_image() -> None:
    tested = "sha256:" + "9" * 64
    predicate = stm.slsa_provenance(
        record(),
        repository_url="",
        builder_id="b",
        builder_version="1",
        promoted_from=f"registry.example/lara/app@{tested}",
    )
    assert stm.promoted_from(predicate) == tested
    link = predicate["buildDefinition"]["resolvedDependencies"][-1]
    assert link == {
        "name": "promoted from",
        "uri": "registry.example/lara/app",
        "digest": {"sha256": "9" * 64},
    }
    assert predicate["runDetails"]["metadata"] == {"startedOn": "2026-07-01T12:00:00Z"}


def test_a_base_image_known_only_by_its_id_is_a_digest_without_uri() -> None:
    predicate = stm.slsa_provenance(
        record(base_image="sha256:" + "7" * 64), repository_url="", builder_id="b",
        builder_version="1",
    )  # fmt: skip
    assert predicate["buildDefinition"]["resolvedDependencies"][-1] == {
        "name": "base image",
        "digest": {"sha256": "7" * 64},
    }


def test_readers_of_a_predicate_without_the_fields_find_nothing() -> None:
    for predicate in (
        {},
        {"buildDefinition": []},
        {"buildDefinition": {"resolvedDependencies": 3}},
    ):
        assert stm.provenance_commit(predicate) is None
        assert stm.promoted_from(predicate) is None
        assert stm.provenance_version(predicate) is None


def test_the_smoke_predicate_says_which_stack_which_path_what_version_and_when() -> None:
    predicate = stm.smoke_predicate(
        app_image=f"lara/app@{DIGEST}",
        sidecar_image="lara/nginx@sha256:" + "4" * 64,
        path="/version.json",
        status=200,
        expected="LARA",
        version="1.2.3",
        started="2026-07-01T12:01:00Z",
        finished="2026-07-01T12:01:09Z",
        services=["mariadb"],
    )
    assert predicate == {
        "stack": {
            "app": f"lara/app@{DIGEST}",
            "sidecar": "lara/nginx@sha256:" + "4" * 64,
            "services": ["mariadb"],
        },
        "request": {"path": "/version.json", "status": 200, "expected": "LARA"},
        "version": "1.2.3",
        "result": "passed",
        "startedOn": "2026-07-01T12:01:00Z",
        "finishedOn": "2026-07-01T12:01:09Z",
    }
    assert stm.SMOKE_TEST.startswith("https://github.com/concord-consortium/lara-buildtools/")
