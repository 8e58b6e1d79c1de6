"""Promotion's pure core: what the Dockerfile makes from the metadata, the appended layer, the
new config and manifest, indexes and the shapes that cannot be promoted."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from buildtools.plan import manifest_rewrite, promotion_recipe
from buildtools.plan.manifest_rewrite import CannotPromote, Changes, File, SourceImage
from buildtools.plan.manifests import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST

ROOT = Path(__file__).resolve().parents[2]
ARGS = {
    "LARA_VERSION": "1.2.3",
    "LARA_BRANCH": "",
    "LARA_TAG": "v1.2.3",
    "LARA_COMMIT": "a" * 40,
    "LARA_BUILD_DATE": "2026-01-02T03:04:05Z",
    "LARA_BUILD_URL": "",
    "LARA_VERSION_YML": "version: 1.2.3\n",
}


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_the_projects_dockerfile_gives_env_and_version_yml() -> None:
    env, files = promotion_recipe.app_recipe(
        (ROOT / "Dockerfile").read_text(), ARGS, b"version: 1.2.3\n"
    )
    assert env == {
        "LARA_VERSION": "1.2.3",
        "LARA_IMAGE_VERSION": "1.2.3",
        "LARA_BRANCH": "",
        "LARA_TAG": "v1.2.3",
        "LARA_COMMIT": "a" * 40,
        "LARA_BUILD_DATE": "2026-01-02T03:04:05Z",
        "LARA_BUILD_URL": "",
    }
    assert files == (File("/lara/config/version.yml", b"version: 1.2.3\n", 0o644, 0, 0),)


def test_laras_own_dockerfile_sets_only_the_image_version() -> None:
    text = (ROOT / "tests/fixtures/lara_app/Dockerfile").read_text()
    env, files = promotion_recipe.app_recipe(text, ARGS, b"x")
    assert (env, files) == ({"LARA_IMAGE_VERSION": "1.2.3"}, ())


@pytest.mark.parametrize(
    "step, why",
    [
        ("RUN echo $LARA_COMMIT > /commit", "RUN at line 4 uses LARA_COMMIT"),
        ("USER app\nRUN printf '%s' \"${LARA_VERSION_YML}\" > /v.yml", "as USER app"),
        ("ENV X=${LARA_VERSION:-none}", "forms"),
    ],
)
def test_metadata_steps_only_a_build_can_repeat(step: str, why: str) -> None:
    text = f"FROM debian\nARG LARA_VERSION\nARG LARA_COMMIT\n{step}\n"
    with pytest.raises(CannotPromote, match=why.replace("$", r"\$")):
        promotion_recipe.app_recipe(text, ARGS, b"x")


def test_the_layer_is_deterministic_and_holds_the_file_as_built() -> None:
    files = (File("/lara/config/version.yml", b"version: 1.2.3\n"),)
    data, diff_id = manifest_rewrite.layer(files, 1767323045)
    assert manifest_rewrite.layer(files, 1767323045) == (data, diff_id)
    raw = gzip.decompress(data)
    assert diff_id == sha(raw)
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        (member,) = tar.getmembers()
        content = tar.extractfile(member).read()  # type: ignore[union-attr]
    assert (member.name, member.mode, member.uid, member.gid, member.mtime) == (
        "lara/config/version.yml",
        0o644,
        0,
        0,
        1767323045,
    )
    assert content == b"version: 1.2.3\n"


def image(kind: str = DOCKER_MANIFEST, labels: dict | None = None) -> tuple[bytes, dict]:
    config_type, layer_type = manifest_rewrite.FAMILIES[kind]
    config = manifest_rewrite.compact(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "Env": ["PATH=/usr/bin", "LARA_VERSION=master", "LARA_BRANCH=master"],
                "Labels": labels
                or {
                    "org.opencontainers.image.version": "master",
                    "org.concord.lara.build.branch": "master",
                    "vendor.base": "debian",
                },
            },
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64]},
            "history": [{"created_by": "RUN apt-get"}],
            # The classic builder's last build container, with master's labels.
            "container": "0f" * 32,
            "container_config": {"Labels": {"org.concord.lara.build.branch": "master"}},
        }
    )
    manifest = manifest_rewrite.compact(
        {
            "schemaVersion": 2,
            "mediaType": kind,
            "config": {"mediaType": config_type, "size": len(config), "digest": sha(config)},
            "layers": [{"mediaType": layer_type, "size": 10, "digest": "sha256:" + "2" * 64}],
        }
    )
    return manifest, {sha(config): config}


CHANGES = Changes(
    labels={"org.opencontainers.image.version": "1.2.3", "org.concord.lara.build.tag": "v1.2.3"},
    env={"LARA_VERSION": "1.2.3", "LARA_BRANCH": ""},
    files=(File("/lara/config/version.yml", b"version: 1.2.3\n"),),
    created="2026-01-02T03:04:05Z",
)


@pytest.mark.parametrize("kind", [DOCKER_MANIFEST, OCI_MANIFEST])
def test_an_image_gets_the_release_config_and_one_more_layer(kind: str) -> None:
    manifest, configs = image(kind)
    done = manifest_rewrite.promote(SourceImage(manifest, kind, configs=configs), CHANGES)
    config_type, layer_type = manifest_rewrite.FAMILIES[kind]
    new = json.loads(done.manifest)
    old = json.loads(manifest)
    assert done.source == sha(manifest) and done.digest == sha(done.manifest)
    assert new["mediaType"] == kind and done.media_type == kind
    assert new["layers"][:-1] == old["layers"]
    assert new["layers"][-1]["mediaType"] == layer_type
    blobs = {b.digest: b for b in done.blobs}
    added = blobs[new["layers"][-1]["digest"]]
    assert len(added.data) == new["layers"][-1]["size"]
    config_blob = blobs[new["config"]["digest"]]
    assert (config_blob.media_type, new["config"]["mediaType"]) == (config_type, config_type)
    assert done.config_digest == new["config"]["digest"] == sha(config_blob.data)
    config = json.loads(config_blob.data)
    assert config["config"]["Labels"] == {
        "org.opencontainers.image.version": "1.2.3",
        "org.concord.lara.build.tag": "v1.2.3",
        "vendor.base": "debian",  # not ours: kept; the branch label is ours and gone
        # The tested image says nothing of a smoke test: the release image does not claim one.
        "org.concord.lara.build.smoke-test": "none",
    }
    assert config["config"]["Env"] == ["PATH=/usr/bin", "LARA_VERSION=1.2.3", "LARA_BRANCH="]
    assert config["rootfs"]["diff_ids"] == [
        "sha256:" + "1" * 64,
        sha(gzip.decompress(added.data)),
    ]
    assert config["history"][-1]["created"] == "2026-01-02T03:04:05Z"
    assert len(config["history"]) == 2
    assert "container" not in config and "container_config" not in config  # master's, stale
    assert config["architecture"] == "amd64" and config["os"] == "linux"
    again = manifest_rewrite.promote(SourceImage(manifest, kind, configs=configs), CHANGES)
    assert again.digest == done.digest  # a re-run puts the same manifest


@pytest.mark.parametrize("tested", ["passed-before-push", "none"])
def test_the_release_image_keeps_the_tested_images_smoke_test_label(tested: str) -> None:
    smoke = "org.concord.lara.build.smoke-test"
    manifest, configs = image(labels={smoke: tested, "org.concord.lara.build.branch": "master"})
    # `invoke release` never smoke-tests: its labels say none, yet the image it promotes may
    # have passed one before `invoke ci` pushed it; that stays a fact about the image.
    release = Changes(labels={**CHANGES.labels, smoke: "none"})
    done = manifest_rewrite.promote(
        SourceImage(manifest, DOCKER_MANIFEST, configs=configs), release
    )
    config = json.loads(next(b.data for b in done.blobs if b.digest == done.config_digest))
    assert config["config"]["Labels"][smoke] == tested
    assert "org.concord.lara.build.branch" not in config["config"]["Labels"]


def test_the_sidecar_gets_labels_and_no_layer() -> None:
    manifest, configs = image()
    done = manifest_rewrite.promote(
        SourceImage(manifest, DOCKER_MANIFEST, configs=configs), Changes(labels=CHANGES.labels)
    )
    assert json.loads(done.manifest)["layers"] == json.loads(manifest)["layers"]
    (config,) = done.blobs
    assert json.loads(config.data)["rootfs"]["diff_ids"] == ["sha256:" + "1" * 64]


@pytest.mark.parametrize(
    "index_kind, kind", [(OCI_INDEX, OCI_MANIFEST), (DOCKER_MANIFEST_LIST, DOCKER_MANIFEST)]
)
def test_an_index_promotes_each_image_and_drops_attestations(index_kind: str, kind: str) -> None:
    amd, amd_configs = image(kind)
    attestation = {
        "mediaType": kind,
        "digest": "sha256:" + "3" * 64,
        "size": 100,
        "annotations": {"vnd.docker.reference.type": "attestation-manifest"},
    }
    index = manifest_rewrite.compact(
        {
            "schemaVersion": 2,
            "mediaType": index_kind,
            "manifests": [
                {
                    "mediaType": kind,
                    "digest": sha(amd),
                    "size": len(amd),
                    "platform": {"architecture": "amd64", "os": "linux"},
                },
                attestation,
            ],
        }
    )
    assert manifest_rewrite.wanted_children(index, index_kind) == [sha(amd)]
    source = SourceImage(index, index_kind, manifests={sha(amd): amd}, configs=amd_configs)
    assert manifest_rewrite.config_digests(source) == list(amd_configs)
    done = manifest_rewrite.promote(source, CHANGES)
    assert done.config_digest is None and done.image_id == done.digest
    assert done.media_type == index_kind
    new = json.loads(done.manifest)
    (entry,) = new["manifests"]
    (child,) = done.children
    assert entry["digest"] == child.digest == sha(child.data)
    assert entry["platform"] == {"architecture": "amd64", "os": "linux"}
    assert len(done.blobs) == 2  # the layer and the config
    assert "dropped 1 attestation manifest" in done.warnings[0]


def test_unknown_and_mixed_shapes_cannot_be_promoted() -> None:
    with pytest.raises(CannotPromote, match=r"media type application/vnd\.example"):
        manifest_rewrite.promote(SourceImage(b"{}", "application/vnd.example+json"), CHANGES)
    manifest, configs = image(OCI_MANIFEST)
    mixed = json.loads(manifest)
    mixed["config"]["mediaType"] = manifest_rewrite.DOCKER_CONFIG
    with pytest.raises(CannotPromote, match="config of type"):
        manifest_rewrite.promote(
            SourceImage(manifest_rewrite.compact(mixed), OCI_MANIFEST, configs=configs), CHANGES
        )
    zstd = json.loads(manifest)
    zstd["layers"][0]["mediaType"] = "application/vnd.oci.image.layer.v1.tar+zstd"
    with pytest.raises(CannotPromote, match="zstd"):
        manifest_rewrite.promote(
            SourceImage(manifest_rewrite.compact(zstd), OCI_MANIFEST, configs=configs), CHANGES
        )
