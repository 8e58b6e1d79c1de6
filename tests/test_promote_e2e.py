"""End to end: master built, smoke-tested and released by `invoke ci` (a Travis push build),
then the tag v1.2.3 on the same commit: `invoke ci` of the tag, pointed at a fresh engine,
promotes both images in the registry (htpasswd) and neither pulls nor builds. The promoted app
image, pulled into the fresh engine and run, is what `invoke build` makes at that tag."""

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
from tests.fixtures.git import git_env, init_repo
from tests.fixtures.held_images import discard, local_tags
from tests.fixtures.project import copy_into
from tests.fixtures.registry_images import RegistryWriter, skopeo_inspect

ROOT = Path(__file__).resolve().parents[1]
INVOKE = ROOT / ".venv" / "bin" / "invoke"
RUN_ID = uuid.uuid4().hex[:8]
TRAVIS = {
    "CI": "true",
    "TRAVIS": "true",
    "TRAVIS_PULL_REQUEST": "false",
    "TRAVIS_EVENT_TYPE": "push",
}
DROP = ("TRAVIS", "GITHUB_", "GITLAB_", "CI_", "INVOKE_", "DOCKER_")


def invoke(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(DROP) and k != "CI"}
    done = subprocess.run(
        [str(INVOKE), *args],
        cwd=cwd,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture
def cleanup(docker_client: docker.DockerClient):
    yield
    for _, ref in local_tags(docker_client):
        if f"lara-promote-{RUN_ID}/" in ref:
            discard(docker_client, ref)


def test_a_tag_on_a_released_commit_is_promoted_not_built(
    docker_client: docker.DockerClient,
    base_image: str,
    registry: testbed.LocalRegistry,
    fresh_engine: testbed.FreshEngine,
    tmp_path: Path,
    cleanup: None,
) -> None:
    repo = init_repo(tmp_path / "lara", git_env(tmp_path))
    copy_into(repo)
    commit = repo.commit("import lara-buildtools")
    app, nginx = f"lara-promote-{RUN_ID}/app", f"lara-promote-{RUN_ID}/nginx"
    env = {
        "INVOKE_BUILDTOOLS_APP_REPOSITORY": app,
        "INVOKE_BUILDTOOLS_NGINX_REPOSITORY": nginx,
        "INVOKE_BUILDTOOLS_RELEASE_REGISTRIES": registry.host,
        "INVOKE_BUILDTOOLS_RELEASE_RETRY_BASE_DELAY": "0.2",
        "DOCKER_USERNAME": registry.username,
        "DOCKER_PASSWORD": registry.password,
        "TRAVIS_COMMIT": commit,
    }
    master = invoke(repo.path, {**env, **TRAVIS, "TRAVIS_BRANCH": "master"}, "ci", "--json")
    assert "smoke test passed" in master.stderr
    repo.tag("v1.2.3", annotated=True)
    tag_env = {**env, **TRAVIS, "TRAVIS_BRANCH": "v1.2.3", "TRAVIS_TAG": "v1.2.3"}
    fresh = fresh_engine.client()
    before = sorted(i.id for i in fresh.images.list(all=True))

    try:
        done = invoke(repo.path, {**tag_env, "DOCKER_HOST": fresh_engine.host}, "ci", "--json")

        result: dict[str, Any] = json.loads(done.stdout)
        assert "ci: promoted the sha-" in done.stderr, done.stderr
        assert result["images"] == [] and result["cache_sources"] == []  # nothing built or pulled
        assert sorted(i.id for i in fresh.images.list(all=True)) == before
        released = result["released"]
        assert {p["image"] for p in released["promoted"]} == {"app", "nginx"}
        writer = RegistryWriter(registry)
        sha = f"sha-{commit[:7]}"
        for push in released["pushes"]:
            assert push["verified"] and push["tag"] in ("1.2.3", "1.2", "1", "latest")
            seen = skopeo_inspect(registry, f"{push['repository']}:{push['tag']}", tmp_path)
            assert seen["Digest"] == push["digest"]
        for repository in (app, nginx):
            source = json.loads(writer.read(repository, sha)[0])
            release = json.loads(writer.read(repository, "1.2.3")[0])
            kept = release["layers"] if repository == nginx else release["layers"][:-1]
            assert kept == source["layers"]

        # The promoted app image, pulled into the fresh engine and run.
        auth = {"username": registry.username, "password": registry.password}
        ref = f"{registry.host}/{app}"
        fresh.images.pull(ref, tag="1.2.3", auth_config=auth)
        printed = fresh.containers.run(
            f"{ref}:1.2.3", ["cat", "/lara/config/version.yml"], remove=True
        ).decode()
        expected = invoke(repo.path, tag_env, "version", "--format", "yaml").stdout
        assert printed == expected
        # What `invoke build` makes at the tag (on the main engine, which holds master's layers).
        built = json.loads(invoke(repo.path, tag_env, "build", "--json").stdout)
        for name, repository in (("app", app), ("nginx", nginx)):
            image_id = next(b["id"] for b in built if b["name"] == name)
            mine = docker_client.api.inspect_image(image_id)["Config"]
            if name == "nginx":
                fresh.images.pull(f"{registry.host}/{repository}", tag="1.2.3", auth_config=auth)
            theirs = fresh.api.inspect_image(f"{registry.host}/{repository}:1.2.3")["Config"]
            assert theirs["Env"] == mine["Env"]
            # All but one label as `invoke build` gives them; that one says the promoted image
            # is the one `invoke ci` pushed only after its smoke test passed (`invoke build`
            # never tests).
            smoke = "org.concord.lara.build.smoke-test"
            assert (theirs["Labels"].pop(smoke), mine["Labels"].pop(smoke)) == (
                "passed-before-push",
                "none",
            )
            assert theirs["Labels"] == mine["Labels"]
            assert (theirs["Cmd"], theirs["User"], theirs["WorkingDir"]) == (
                mine["Cmd"],
                mine["User"],
                mine["WorkingDir"],
            )
    finally:  # the session's fresh engine is shared: leave it holding only what it held
        for image in fresh.images.list(all=True):
            if image.id not in before:
                fresh.images.remove(image.id, force=True)
