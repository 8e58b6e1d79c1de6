"""What a manifest's bytes tell: the digest a registry names it by, its image ID, its labels.

Pure: the bytes are written here in the shape registries serve (a real registry's manifests
are read in tests/registry/test_client.py).
"""

from __future__ import annotations

import hashlib
import json

from buildtools.plan.manifests import (
    DOCKER_MANIFEST,
    OCI_INDEX,
    config_labels,
    parse_manifest,
)

CONFIG = "sha256:" + "c" * 64


def test_an_image_manifest_names_its_image_and_is_digested_byte_for_byte() -> None:
    body = json.dumps(
        {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": {"digest": CONFIG}},
        indent=3,  # a registry's own whitespace: the digest is of these bytes, not re-encoded
    ).encode()
    manifest = parse_manifest(body, "text/plain")
    assert manifest.digest == "sha256:" + hashlib.sha256(body).hexdigest()
    assert (manifest.media_type, manifest.config_digest, manifest.size) == (
        DOCKER_MANIFEST,
        CONFIG,
        len(body),
    )


def test_an_index_has_no_image_id_and_takes_its_type_from_the_header() -> None:
    body = json.dumps({"schemaVersion": 2, "manifests": []}).encode()
    manifest = parse_manifest(body, f"{OCI_INDEX}; charset=utf-8")
    assert (manifest.media_type, manifest.config_digest) == (OCI_INDEX, None)


def test_a_body_that_is_not_json_still_has_its_digest() -> None:
    manifest = parse_manifest(b"<html>gateway</html>", "text/html")
    assert manifest.digest == "sha256:" + hashlib.sha256(b"<html>gateway</html>").hexdigest()
    assert (manifest.media_type, manifest.config_digest) == ("text/html", None)


def test_labels_of_an_image_config() -> None:
    config = {"config": {"Labels": {"org.opencontainers.image.revision": "abc1234", "n": 1}}}
    assert config_labels(json.dumps(config).encode()) == {
        "org.opencontainers.image.revision": "abc1234",
        "n": "1",
    }
    assert config_labels(json.dumps({"config": {"Labels": None}}).encode()) == {}
    assert config_labels(b"[]") == {}
    assert config_labels(b"not json") == {}
