"""End to end, with a key made by the real cosign: `invoke ci` of master builds, smoke-tests,
pushes, signs and attests both images; `invoke ci` of the tag v1.2.3 on that commit promotes
them and signs the promoted digests, carrying the tested images' proof over. The real
``cosign verify`` and ``verify-attestation`` accept the ``sha-`` and the promoted digests, and
``invoke verify`` says what they hold."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import docker
import pytest

import testbed
from buildtools.plan import statements as stm
from tests.fixtures import promotion
from tests.fixtures.cosign_cli import cosign_for, statements
from tests.fixtures.git import GitRepo, git_env, init_repo
from tests.fixtures.held_images import discard, local_tags
from tests.fixtures.project import copy_into
from tests.fixtures.signing import Cosign

ROOT = Path(__file__).resolve().parents[2]
INVOKE = ROOT / ".venv" / "bin" / "invoke"
RUN_ID = uuid.uuid4().hex[:8]
TRAVIS = {
    "CI": "true",
    "TRAVIS": "true",
    "TRAVIS_PULL_REQUEST": "false",
    "TRAVIS_EVENT_TYPE": "push",
    "TRAVIS_BUILD_WEB_URL": "https://travis.example/builds/7",
}
DROP = ("TRAVIS", "GITHUB_", "GITLAB_", "CI_", "INVOKE_", "DOCKER_", "COSIGN_")


def invoke(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(DROP) and k != "CI"}
    return subprocess.run(
        [str(INVOKE), *args],
        cwd=cwd,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=1200,
    )


@pytest.fixture
def cleanup(docker_client: docker.DockerClient):
    yield
    for _, ref in local_tags(docker_client):
        if f"lara-sign-{RUN_ID}/" in ref:
            discard(docker_client, ref)


def provenance_of(cosign: Cosign, pub: Path, image: str) -> dict[str, Any]:
    (statement,) = statements(cosign.verify_attestation(pub, image, "slsaprovenance1"))
    return statement


def test_invoke_ci_with_a_key_signs_and_attests_the_sha_and_the_promoted_images(
    docker_client: docker.DockerClient,
    base_image: str,
    registry: testbed.LocalRegistry,
    cosign_keys: tuple[Path, Path, str],
    tmp_path: Path,
    cleanup: None,
) -> None:
    key, pub, password = cosign_keys
    repo = init_repo(tmp_path / "lara", git_env(tmp_path))
    copy_into(repo)
    commit = repo.commit("import lara-buildtools")
    app, nginx = f"lara-sign-{RUN_ID}/app", f"lara-sign-{RUN_ID}/nginx"
    env = {
        "INVOKE_BUILDTOOLS_APP_REPOSITORY": app,
        "INVOKE_BUILDTOOLS_NGINX_REPOSITORY": nginx,
        "INVOKE_BUILDTOOLS_RELEASE_REGISTRIES": registry.host,
        "INVOKE_BUILDTOOLS_RELEASE_RETRY_BASE_DELAY": "0.2",
        "INVOKE_BUILDTOOLS_RELEASE_SIGNING_KEY": str(key),
        "COSIGN_PASSWORD": password,
        "DOCKER_USERNAME": registry.username,
        "DOCKER_PASSWORD": registry.password,
        "TRAVIS_COMMIT": commit,
    }
    cosign = cosign_for(registry, tmp_path / "cosign")

    master = invoke(repo.path, {**env, **TRAVIS, "TRAVIS_BRANCH": "master"}, "ci", "--json")
    assert master.returncode == 0, master.stderr
    assert "NOT SIGNED" not in master.stderr and password not in master.stdout + master.stderr
    signed = json.loads(master.stdout)["released"]["signatures"]
    kinds = sorted([stm.SLSA_PROVENANCE_V1, stm.CYCLONEDX, stm.SMOKE_TEST])
    assert sorted((s["image"], s["attestations"] == kinds) for s in signed) == [
        ("app", True),
        ("nginx", True),
    ]
    tested = {s["image"]: s["digest"] for s in signed}
    for s in signed:
        assert f"sha-{commit[:7]}" in s["tags"]
        image = f"{registry.host}/{s['repository']}@{s['digest']}"
        assert f"signing {image}" in master.stderr
        done = cosign.verify(pub, image)
        assert done.returncode == 0, done.stderr
        statement = provenance_of(cosign, pub, image)
        assert statement["subject"][0]["digest"]["sha256"] == s["digest"].split(":")[1]
        dependencies = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
        assert dependencies[0]["digest"] == {"gitCommit": commit}
        run = statement["predicate"]["runDetails"]
        assert run["builder"]["id"].endswith("lara-buildtools")
        assert run["metadata"]["invocationId"] == TRAVIS["TRAVIS_BUILD_WEB_URL"]
        boms = statements(cosign.verify_attestation(pub, image, "cyclonedx"))
        debs = [c for c in boms[0]["predicate"]["components"] if "pkg:deb/" in c.get("purl", "")]
        assert any(c["name"] == "dpkg" for c in debs)
        smoke = statements(cosign.verify_attestation(pub, image, stm.SMOKE_TEST))
        assert smoke[0]["predicate"]["result"] == "passed"

    repo.tag("v1.2.3", annotated=True)
    tag_env = {**env, **TRAVIS, "TRAVIS_BRANCH": "v1.2.3", "TRAVIS_TAG": "v1.2.3"}
    done = invoke(repo.path, tag_env, "ci", "--json")
    assert done.returncode == 0, done.stderr
    assert "ci: promoted the sha-" in done.stderr, done.stderr
    released = json.loads(done.stdout)["released"]
    promoted = {p["image"]: p["digest"] for p in released["promoted"]}
    assert {s["image"]: s["promoted_from"] for s in released["signatures"]} == tested
    for s in released["signatures"]:
        assert s["digest"] == promoted[s["image"]] != tested[s["image"]]
        image = f"{registry.host}/{s['repository']}@{s['digest']}"
        check = cosign.verify(pub, image)
        assert check.returncode == 0, check.stderr
        statement = provenance_of(cosign, pub, image)
        dependencies = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
        assert dependencies[0]["digest"] == {"gitCommit": commit}
        link = [d for d in dependencies if d.get("name") == stm.PROMOTED_FROM]
        assert link[0]["digest"]["sha256"] == tested[s["image"]].split(":")[1]
        (bom,) = statements(cosign.verify_attestation(pub, image, "cyclonedx"))
        assert bom["predicate"]["externalReferences"][0]["url"].endswith(tested[s["image"]])
        # What invoke verify says of the release tag: the tested commit, its smoke test, and
        # the SBOM carried over from the tested image.
        said = invoke(repo.path, tag_env, "verify", f"{registry.host}/{s['repository']}:1.2.3",
                      "--key", str(pub), "--commit", commit, "--json")  # fmt: skip
        assert said.returncode == 0, said.stderr
        verified = json.loads(said.stdout)
        assert verified["digest"] == s["digest"] and verified["commit"] == commit
        assert verified["smoke_test"]["result"] == "passed"
        assert verified["sbom"]["components"] > 50


def test_without_a_key_nothing_is_signed_and_the_output_says_so_once(
    registry: testbed.LocalRegistry, repo: GitRepo, tagged: dict[str, Any]
) -> None:
    promotion.push_master_images(tagged)

    done = promotion.invoke(repo, tagged["env"], "release", "--json")

    assert done.returncode == 0, done.stderr
    assert done.stderr.count("NOT SIGNED: no signing key") == 1
    assert "signatures" not in json.loads(done.stdout)
    for name in ("app", "nginx"):
        assert not [t for t in registry.tags(tagged[name]) if t.endswith((".sig", ".att"))]
