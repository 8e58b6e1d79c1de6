"""cosign's tags and manifests beside an image, and image references as `invoke verify` takes
them."""

from __future__ import annotations

import json

import pytest

from buildtools.errors import BuildToolsError
from buildtools.plan import shapes
from buildtools.plan.cosign_layout import (
    Layer,
    attestation_tag,
    config_for,
    layers_of,
    manifest_for,
    signature_tag,
    split_image,
)

DIGEST = "sha256:" + "0f" * 32


def test_the_tags_beside_an_image_are_its_digest_with_a_dash() -> None:
    assert signature_tag(DIGEST) == "sha256-" + "0f" * 32 + ".sig"
    assert attestation_tag(DIGEST) == "sha256-" + "0f" * 32 + ".att"
    assert shapes.is_reference(signature_tag(DIGEST))  # a valid tag (at most 128 characters)
    with pytest.raises(ValueError):
        signature_tag("latest")


def test_a_manifest_lists_its_layers_with_annotations_and_a_config_naming_them() -> None:
    layers = [
        Layer("application/x-a", "sha256:" + "1" * 64, 10, {"k": "v"}),
        Layer("application/x-b", "sha256:" + "2" * 64, 20),
    ]
    config = config_for(layers)
    body = manifest_for(layers, config)
    parsed = json.loads(body)
    assert parsed["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert parsed["config"] == {
        "mediaType": "application/vnd.oci.image.config.v1+json",
        "size": len(config),
        "digest": shapes.digest_of(config),
    }
    assert json.loads(config)["rootfs"]["diff_ids"] == [layer.digest for layer in layers]
    assert "annotations" not in parsed["layers"][1]
    assert shapes.manifest_problem(parsed) is None
    assert layers_of(body) == layers


@pytest.mark.parametrize(
    ("image", "parts"),
    [
        ("lara/app", ("", "lara/app", "latest")),
        ("lara/app:1.2.3", ("", "lara/app", "1.2.3")),
        ("ghcr.io/org/app:1.2", ("ghcr.io", "org/app", "1.2")),
        ("127.0.0.1:5000/org/app", ("127.0.0.1:5000", "org/app", "latest")),
        ("localhost/app:x", ("localhost", "app", "x")),
        (f"reg.example:5000/org/app@{DIGEST}", ("reg.example:5000", "org/app", DIGEST)),
        (f"org/app:1.0@{DIGEST}", ("", "org/app", DIGEST)),
        ("[::1]:5000/app:1", ("[::1]:5000", "app", "1")),
    ],
)
def test_an_image_reference_splits_into_host_repository_and_reference(image, parts) -> None:
    assert split_image(image) == parts


@pytest.mark.parametrize(
    "image",
    [
        "",
        "Lara/App",
        "org/app@sha256:short",
        "org/app:bad tag",
        "org/app:-x",
        ":tag",
        # not sent to a registry as a path (they used to read as a registry that is down)
        "app:tag:tag",
        "::::",
        "http://localhost:5000/app:1",
        "ghcr.io//app",
        "org/app/:1",
        "-org/app",
        "org/App",
        "reg_x.io:5000/app",
        "org/app..x",
    ],
)
def test_a_bad_image_reference_is_one_line(image: str) -> None:
    with pytest.raises(BuildToolsError, match="is not an image reference"):
        split_image(image)
