"""Promotion against the real htpasswd registry, with no Docker Engine: `invoke release` of a
tag on a commit whose ``sha-`` images the registry holds (made here through the registry API,
with the labels and ENV a master build of that commit gives) puts them under the release tags.
skopeo, a client that is not ours, reads what was put.

`invoke ci` of a tag is in test_promote_ci.py; a registry or proxy that lies, a SIGTERM and a
rerun in test_promote_faults.py. The tagged commit is tests/fixtures/promotion.py's.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

import testbed
from buildtools.registry.credentials import variable_names
from tests.fixtures.git import GitRepo
from tests.fixtures.promotion import (
    RELEASE_TAGS,
    build_plan,
    env_of,
    invoke,
    push_master_images,
    record_built,
)
from tests.fixtures.registry_images import (
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    RegistryWriter,
    sha,
    skopeo_inspect,
)


def layer_files(data: bytes) -> dict[str, tuple[bytes, int, int, int]]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as tar:
        return {
            m.name: (tar.extractfile(m).read(), m.mode, m.uid, m.gid)  # type: ignore[union-attr]
            for m in tar.getmembers()
        }


@pytest.mark.parametrize("kind", [DOCKER_MANIFEST, OCI_MANIFEST])
def test_release_of_a_tag_promotes_the_tested_images_without_an_engine(
    registry: testbed.LocalRegistry,
    repo: GitRepo,
    tagged: dict[str, Any],
    tmp_path: Path,
    kind: str,
) -> None:
    sources = push_master_images(tagged, kind=kind)
    writer: RegistryWriter = tagged["writer"]

    done = invoke(repo, tagged["env"], "release", real_cli=True)  # the console script itself

    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and registry.password not in done.stdout + done.stderr
    at_tag = build_plan(repo, tagged["env"])  # what `invoke build` gives at v1.2.3
    version_yml = invoke(repo, tagged["env"], "version", "--format", "yaml").stdout
    for name in ("app", "nginx"):
        repository = tagged[name]
        source_body, source_digest = sources[name]
        assert f"{repository}:{tagged['sha']} {source_digest}" in done.stdout
        assert sorted(registry.tags(repository)) == sorted([*RELEASE_TAGS, tagged["sha"]])
        assert writer.read(repository, tagged["sha"])[1] == source_digest  # sha- stays tested
        digests = set()
        for tag in RELEASE_TAGS:
            body, digest = writer.read(repository, tag)
            digests.add(digest)
            (row,) = [line for line in done.stdout.splitlines() if f" {repository}:{tag} " in line]
            assert row.split()[0] == "pushed" and row.split()[-1] == digest
            # The progress line counts what that tag's PUT sent: its manifest.
            size = f"{len(body)} B" if len(body) < 1000 else f"{len(body) / 1000:.1f} kB"
            assert f"  {tag}: {digest} ({size} sent, verified)" in done.stderr
            seen = skopeo_inspect(registry, f"{repository}:{tag}", tmp_path)
            assert seen["Digest"] == digest
            assert seen["Labels"] == at_tag["labels"]
        assert len(digests) == 1
        manifest = json.loads(body)
        source = json.loads(source_body)
        assert manifest["mediaType"] == kind
        config = json.loads(writer.read_blob(repository, manifest["config"]["digest"]))
        assert config["config"]["Labels"] == at_tag["labels"]
        if name == "nginx":
            assert manifest["layers"] == source["layers"]
            continue
        assert manifest["layers"][:-1] == source["layers"]
        assert manifest["layers"][-1]["mediaType"] == source["layers"][0]["mediaType"]
        assert config["config"]["Env"] == env_of(at_tag["buildargs"])
        added = writer.read_blob(repository, manifest["layers"][-1]["digest"])
        assert config["rootfs"]["diff_ids"][-1] == sha(gzip.decompress(added))
        assert layer_files(added) == {
            "lara/config/version.yml": (version_yml.encode(), 0o644, 0, 0)
        }
        assert "tag: v1.2.3" in version_yml

    # Again, as JSON: everything is in place, nothing is put.
    again = invoke(repo, tagged["env"], "release", "--json")
    assert again.returncode == 0, again.stderr
    result = json.loads(again.stdout)
    assert result["pushed"] == 0 and result["unchanged"] == 8
    assert {p["source_digest"] for p in result["promoted"]} == {
        sources["app"][1],
        sources["nginx"][1],
    }


def test_an_index_is_promoted_without_its_attestation(
    registry: testbed.LocalRegistry, repo: GitRepo, tagged: dict[str, Any], tmp_path: Path
) -> None:
    writer: RegistryWriter = tagged["writer"]
    master = tagged["master"]
    for name in ("app", "nginx"):
        writer.index_with_attestation(
            tagged[name], tagged["sha"], master["labels"], env_of(master["buildargs"])
        )
        index, _ = writer.read(tagged[name], tagged["sha"])
        image = json.loads(index)["manifests"][0]["digest"]  # the image, not the attestation
        record_built(tagged, name, writer.read(tagged[name], image)[0])

    done = invoke(repo, tagged["env"], "release", "--json")

    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert any("dropped 1 attestation manifest" in line for line in result["warnings"])
    at_tag = build_plan(repo, tagged["env"])
    for name in ("app", "nginx"):
        repository = tagged[name]
        body, digest = writer.read(repository, "1.2.3")
        assert sha(body) == digest
        assert {p["digest"] for p in result["pushes"] if p["repository"] == repository} == {digest}
        raw = skopeo_inspect(registry, f"{repository}:1.2.3", tmp_path, raw=True)
        assert raw["mediaType"] == OCI_INDEX
        (entry,) = raw["manifests"]  # the attestation is gone
        assert entry["platform"] == {"architecture": "amd64", "os": "linux"}
        seen = skopeo_inspect(registry, f"{repository}:1.2.3", tmp_path)
        assert seen["Labels"] == at_tag["labels"]


def test_an_image_no_engine_runs_falls_back_to_building(
    registry: testbed.LocalRegistry, repo: GitRepo, tagged: dict[str, Any]
) -> None:
    writer: RegistryWriter = tagged["writer"]
    master = tagged["master"]
    manifest, _ = writer.image(
        tagged["app"],
        master["labels"],
        env_of(master["buildargs"]),
        tag=tagged["sha"],
    )
    record_built(tagged, "app", manifest)
    writer.artifact(tagged["nginx"], tagged["sha"], master["labels"])

    done = invoke(repo, tagged["env"], "release")

    line = (
        f"not promoting: {registry.host}/{tagged['nginx']}:{tagged['sha']}: its "
        f"{OCI_MANIFEST} manifest has a config of type application/vnd.cncf.helm.config.v1+json"
    )
    assert line in done.stderr
    # The fallback builds, which needs the engine this machine does not have here.
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "Docker" in done.stderr
    assert sorted(registry.tags(tagged["app"])) == [tagged["sha"]]


def test_an_image_of_another_commit_is_never_promoted(
    registry: testbed.LocalRegistry, repo: GitRepo, tagged: dict[str, Any]
) -> None:
    other = {**tagged["master"]["labels"], "org.opencontainers.image.revision": "f" * 40}
    push_master_images(tagged, other)

    done = invoke(repo, tagged["env"], "release")

    assert (
        f"{tagged['app']}:{tagged['sha']} is not this commit's tested image: built from commit "
        "fffffff" in done.stderr
    )
    assert done.returncode != 0
    assert sorted(registry.tags(tagged["app"])) == [tagged["sha"]]


def test_no_promote_builds(
    registry: testbed.LocalRegistry, repo: GitRepo, tagged: dict[str, Any]
) -> None:
    push_master_images(tagged)

    done = invoke(repo, tagged["env"], "release", "--no-promote")

    assert done.returncode != 0 and "not promoting" not in done.stderr  # it went to the engine
    assert sorted(registry.tags(tagged["app"])) == [tagged["sha"]]


def test_a_dry_run_says_what_it_would_promote_and_puts_nothing(
    registry: testbed.LocalRegistry, repo: GitRepo, tagged: dict[str, Any]
) -> None:
    digest = push_master_images(tagged)["nginx"][1]

    done = invoke(repo, tagged["env"], "release", "--dry-run")

    assert done.returncode == 0, done.stderr
    assert f"would promote {registry.host} {tagged['nginx']}:{tagged['sha']} {digest}" in (
        done.stdout
    )
    # Where the login goes, before anything is put (#27 item 2): htpasswd, so the registry.
    user_var, pass_var = variable_names(registry.host)
    assert (
        f"credentials for {registry.host} ({user_var}/{pass_var}) go to "
        f"http://{registry.host} (Basic auth, every request)"
    ) in done.stdout.splitlines()
    # 27.16: every column of the table is named; the digest is what the tag points at now.
    lines = done.stdout.splitlines()
    header = next(line for line in lines if line.startswith("ACTION"))
    assert header.split() == ["ACTION", "REGISTRY", "REPOSITORY:TAG", "KIND", "DIGEST", "NOW"]
    row = next(line for line in lines if f" {tagged['app']}:1.2.3 " in line)
    assert row.split()[0::4] == ["would", "immutable"] and row.split()[-1] == "none"
    assert sorted(registry.tags(tagged["app"])) == [tagged["sha"]]


@pytest.mark.parametrize(
    "value, expected", [("never", ""), ("off", ""), ("sometimes", "auto or never")]
)
def test_release_promote_never_builds_and_a_bad_value_is_one_line(
    registry: testbed.LocalRegistry,
    repo: GitRepo,
    tagged: dict[str, Any],
    value: str,
    expected: str,
) -> None:
    push_master_images(tagged)

    done = invoke(repo, {**tagged["env"], "INVOKE_BUILDTOOLS_RELEASE_PROMOTE": value}, "release")

    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "not promoting" not in done.stderr and expected in done.stderr
    assert sorted(registry.tags(tagged["app"])) == [tagged["sha"]]


def test_an_image_that_already_says_what_the_release_writes_is_released_as_it_is() -> None:
    """Hostile pass: `invoke release` run again on a branch rewrote the branch build's own
    sha- image (a new version.yml layer: a new digest) and moved `main` to it. An image whose
    labels already say everything the release writes is its release: same manifest, same
    digest; any label that differs still means a rewrite."""
    from buildtools.plan.manifest_rewrite import Changes, SourceImage
    from buildtools.release.promote import already_released

    labels = {"org.opencontainers.image.version": "0.1.0-main.1", "org.x.tags": "main"}
    config = json.dumps({"config": {"Labels": labels}}).encode()
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    manifest = json.dumps({"config": {"digest": config_digest}, "layers": []}).encode()
    source = SourceImage(manifest, DOCKER_MANIFEST, configs={config_digest: config})

    same = already_released(source, Changes(labels=dict(labels)))
    assert same is not None
    assert (same.digest, same.manifest, same.blobs) == (source.digest, manifest, ())
    assert same.image_id == config_digest
    other = {**labels, "org.opencontainers.image.version": "1.0.0"}
    assert already_released(source, Changes(labels=other)) is None


def test_labels_alone_never_promote_without_keys(
    registry: testbed.LocalRegistry, repo: GitRepo, tagged: dict[str, Any]
) -> None:
    """Issue #26, case 6 without keys: ``sha-`` images with every right label, pushed by
    anyone who can push (no build record on this machine names them), are not promoted."""
    push_master_images(tagged, record=False)

    done = invoke(repo, tagged["env"], "release")

    ref = f"{registry.host}/{tagged['app']}:{tagged['sha']}"
    assert (
        f"not promoting: {ref} is not proven to be this commit's build: no build record here "
        "names its config" in done.stderr
    )
    assert "building the release instead" in done.stderr  # and the build needs an engine here
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert sorted(registry.tags(tagged["app"])) == [tagged["sha"]]


def test_a_record_of_another_image_does_not_promote_a_forged_one(
    registry: testbed.LocalRegistry, repo: GitRepo, tagged: dict[str, Any]
) -> None:
    """A record of this commit's build exists, but the registry's image is another one under
    the same tag with the same labels (its config digest is not the recorded image ID)."""
    real = push_master_images(tagged)  # built here, recorded
    forged = {**tagged["master"]["labels"], "org.example.forged": "yes"}
    fake = push_master_images(tagged, forged, record=False)  # same tag, other content
    assert fake["app"][1] != real["app"][1]

    done = invoke(repo, tagged["env"], "release")

    assert "is not proven to be this commit's build: no build record here names" in done.stderr
    assert sorted(registry.tags(tagged["app"])) == [tagged["sha"]]
