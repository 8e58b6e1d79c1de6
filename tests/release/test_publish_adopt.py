"""With a signing key, a release never adopts and signs a registry image on its labels alone.

A re-run of an interrupted release takes the image its exact tag already holds "from this very
commit" (``publish.finish_interrupted``): without keys, its labels decide (what anyone who can
push writes). With a key the release then signs that image, so its key would vouch for an
image it never built: here someone pushed ``1.2.3`` with exactly the labels this commit's
release gives, and the release must refuse it, sign nothing, and move no floating tag.
End to end: the real engine builds the commit, the real registry holds the forged images."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import docker
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import testbed
from buildtools.plan.cosign_layout import signature_tag
from tests.fixtures.git import git_env, init_repo
from tests.fixtures.held_images import discard, local_tags
from tests.fixtures.project import copy_into
from tests.fixtures.promotion import env_of
from tests.fixtures.registry_images import RegistryWriter

ROOT = Path(__file__).resolve().parents[2]
INVOKE = ROOT / ".venv" / "bin" / "invoke"
RUN_ID = uuid.uuid4().hex[:8]
DROP = ("TRAVIS", "GITHUB_", "GITLAB_", "CI_", "INVOKE_", "DOCKER_", "COSIGN_")


def invoke(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(DROP) and k != "CI"}
    return subprocess.run(
        [str(INVOKE), *args], cwd=cwd, env={**base, **env}, capture_output=True, text=True,
        timeout=1200,
    )  # fmt: skip


@pytest.fixture
def cleanup(docker_client: docker.DockerClient):
    yield
    for _, ref in local_tags(docker_client):
        if f"lara-adopt-{RUN_ID}/" in ref:
            discard(docker_client, ref)


def test_a_forged_exact_tag_with_this_commits_labels_is_refused_not_signed(
    docker_client: docker.DockerClient,
    base_image: str,
    registry: testbed.LocalRegistry,
    tmp_path: Path,
    cleanup: None,
) -> None:
    repo = init_repo(tmp_path / "lara", git_env(tmp_path))
    copy_into(repo)
    repo.commit("import lara-buildtools")
    repo.tag("v1.2.3", annotated=True)
    key = tmp_path / "signing.pem"
    key.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    names = {"app": f"lara-adopt-{RUN_ID}/app", "nginx": f"lara-adopt-{RUN_ID}/nginx"}
    env = {
        "INVOKE_BUILDTOOLS_APP_REPOSITORY": names["app"],
        "INVOKE_BUILDTOOLS_NGINX_REPOSITORY": names["nginx"],
        "INVOKE_BUILDTOOLS_RELEASE_REGISTRIES": registry.host,
        "INVOKE_BUILDTOOLS_RELEASE_RETRY_BASE_DELAY": "0.05",
        "INVOKE_BUILDTOOLS_RELEASE_SIGNING_KEY": str(key),
        "DOCKER_USERNAME": registry.username,
        "DOCKER_PASSWORD": registry.password,
    }
    planned = invoke(repo.path, env, "build", "--dry-run", "--json")
    assert planned.returncode == 0, planned.stderr
    # Someone who can push (not the key's holder) puts images under 1.2.3 with the very labels
    # this release gives: a different image, never built from the commit.
    writer = RegistryWriter(registry)
    forged = {
        spec["name"]: writer.image(
            names[spec["name"]], spec["labels"], env_of(spec["buildargs"]) if spec["name"] ==
            "app" else ["PATH=/usr/bin"], tag="1.2.3",
        )[1]
        for spec in json.loads(planned.stdout)
    }  # fmt: skip

    done = invoke(repo.path, env, "release")

    assert done.returncode != 0, done.stderr
    error = done.stderr.strip().splitlines()[-1]
    assert "refusing to release" in error and "holds an image labelled this commit's" in error
    assert "Traceback" not in done.stderr
    for name, digest in forged.items():
        tags = registry.tags(names[name])
        assert signature_tag(digest) not in tags, tags  # the key vouches for nothing forged
        assert not {"1.2", "1", "latest"} & set(tags), tags
