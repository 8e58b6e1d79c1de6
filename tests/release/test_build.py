"""`invoke build` of the example LARA app image, against the real engine.

Builds run through the invoke CLI as a user runs them; the metadata comes from a real temp
git repository (INVOKE_BUILDTOOLS_REPO) so two builds can differ only in their metadata.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import docker.errors
import pytest
import requests

from tests.fixtures.git import git_env, init_repo
from tests.fixtures.held_images import discard
from tests.fixtures.project import commit_example
from tests.fixtures.services import running_app

ROOT = Path(__file__).resolve().parents[2]
INVOKE = [sys.executable, "-m", "invoke"]
# Test images get repositories of their own, so no run touches a user's lara/app images.
RUN_ID = uuid.uuid4().hex[:8]
APP_REPO = f"lara-test/app-{RUN_ID}"
NGINX_REPO = f"lara-test/nginx-{RUN_ID}"


def invoke(*args: str, repo: Path, extra_env: dict[str, str] | None = None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRAVIS", "GITHUB", "GITLAB"))}
    env.pop("CI", None)
    if (repo / "example").is_dir():  # the example app committed there: its build context
        env["INVOKE_BUILDTOOLS_APP_CONTEXT"] = str(repo / "example")
    env.update(
        INVOKE_BUILDTOOLS_REPO=str(repo),
        INVOKE_BUILDTOOLS_APP_REPOSITORY=APP_REPO,
        INVOKE_BUILDTOOLS_NGINX_REPOSITORY=NGINX_REPO,
        **(extra_env or {}),
    )
    return subprocess.run(
        [*INVOKE, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
    )


def history_before_metadata(client, image_id: str) -> list[str]:
    """Ids of the image's history entries (oldest first) made before the metadata ARGs."""
    entries = list(reversed(client.api.history(image_id)))
    first_meta = next(i for i, e in enumerate(entries) if "ARG LARA_VERSION" in e["CreatedBy"])
    return [e["Id"] for e in entries[:first_meta]]


@pytest.fixture(scope="module")
def two_builds(docker_client, base_image, tmp_path_factory):
    """The example app built for one commit, then for the next commit (metadata only)."""
    home = tmp_path_factory.mktemp("home")
    repo = init_repo(tmp_path_factory.mktemp("src") / "lara", git_env(home), branch="master")
    commit_example(repo)  # built from the commit's files: the app is in the checkout
    builds = []
    for _ in range(2):
        repo.commit("metadata-only change")
        # A CI's test env must not leak into the production image.
        done = invoke(
            "build", "--only", "app", "--json", repo=repo.path, extra_env={"RAILS_ENV": "test"}
        )
        assert done.returncode == 0, done.stderr
        (built,) = json.loads(done.stdout)
        version = invoke("version", "--format", "yaml", repo=repo.path)
        assert version.returncode == 0, version.stderr
        builds.append({"built": built, "commit": repo.head(), "version_yml": version.stdout})
    yield builds
    for b in builds:
        for ref in b["built"]["tags"]:
            discard(docker_client, ref)


def test_metadata_only_rebuild_reuses_every_earlier_layer(docker_client, two_builds):
    first, second = (b["built"] for b in two_builds)
    assert first["id"] != second["id"]
    before_1 = history_before_metadata(docker_client, first["id"])
    before_2 = history_before_metadata(docker_client, second["id"])
    assert len(before_1) > 5
    assert before_1 == before_2  # the same layers, by the engine's own ids
    layers_1 = docker_client.images.get(first["id"]).attrs["RootFS"]["Layers"]
    layers_2 = docker_client.images.get(second["id"]).attrs["RootFS"]["Layers"]
    # Only the version.yml layer differs.
    assert layers_1[:-1] == layers_2[:-1]
    assert layers_1[-1] != layers_2[-1]
    # The build reported reuse of every step up to the metadata.
    assert second["cached_steps"] >= len(before_2) - 2  # FROM and ARG BASE_IMAGE are not cached


def test_version_file_and_env_inside_the_image_are_the_second_builds(docker_client, two_builds):
    second = two_builds[1]
    ref = second["built"]["tags"][0]
    content = docker_client.containers.run(
        ref, ["cat", "/lara/config/version.yml"], remove=True
    ).decode()
    assert content == second["version_yml"]
    assert f"commit: {second['commit']}" in content
    env = docker_client.containers.run(ref, ["env"], remove=True).decode().splitlines()
    assert f"LARA_COMMIT={second['commit']}" in env
    assert "LARA_BRANCH=master" in env
    version = next(line.split("=", 1)[1] for line in env if line.startswith("LARA_VERSION="))
    assert f"LARA_IMAGE_VERSION={version}" in env
    assert second["commit"][:7] in version
    assert "RAILS_ENV=production" in env
    labels = docker_client.images.get(ref).labels
    assert labels["org.opencontainers.image.revision"] == second["commit"]


def test_running_app_reports_its_version_over_http(docker_client, two_builds):
    second = two_builds[1]
    with running_app(docker_client, second["built"]["tags"][0]) as url:
        resp = requests.get(f"{url}/version.json", timeout=5)
        page = requests.get(f"{url}/", timeout=5).text
    assert resp.status_code == 200
    data = resp.json()
    assert data["commit"] == second["commit"]
    assert data["branch"] == "master"
    assert data["image_version_env"] == data["version"]
    assert second["commit"] in page


def test_failing_step_names_the_step_and_its_output(base_image, tmp_path, repo):
    context = tmp_path / "broken"
    context.mkdir()
    (context / "Dockerfile").write_text(
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n"
        "RUN echo 'compiling assets' && echo 'Sass::SyntaxError: broken.scss' >&2 && exit 3\n"
        "ARG LARA_VERSION\n"
    )
    done = invoke(
        "build",
        "--only",
        "app",
        "--context",
        str(context),
        "--dockerfile",
        str(context / "Dockerfile"),
        repo=repo.path,
    )
    assert done.returncode != 0
    error = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1, done.stderr
    assert "step 3/" in error[0]  # labels add steps after it
    assert "RUN echo 'compiling assets'" in error[0]
    assert "Sass::SyntaxError: broken.scss" in error[0]
    assert "returned a non-zero code: 3" in error[0]
    assert "Traceback" not in done.stderr


def test_missing_base_image_says_how_to_provide_it(docker_client, repo):
    done = invoke(
        "build",
        "--only",
        "app",
        repo=repo.path,
        extra_env={"INVOKE_BUILDTOOLS_APP_BASE_IMAGE": "lara-buildtools/nope:never"},
    )
    assert done.returncode != 0
    assert "base image lara-buildtools/nope:never is not present locally" in done.stderr
    assert "invoke bases" in done.stderr
    assert "Traceback" not in done.stderr


def test_missing_dockerfile_is_a_clear_error(docker_client, repo, tmp_path):
    done = invoke("build", "--only", "app", "--dockerfile", str(tmp_path / "nope"), repo=repo.path)
    assert done.returncode != 0
    assert f"Dockerfile not found: {tmp_path / 'nope'}" in done.stderr


def test_no_daemon_says_how_to_start_one(repo, tmp_path):
    done = invoke(
        "build", repo=repo.path, extra_env={"DOCKER_HOST": f"unix://{tmp_path}/none.sock"}
    )
    assert done.returncode != 0
    assert "no Docker Engine answers" in done.stderr
    assert "dockerd" in done.stderr
    assert "Traceback" not in done.stderr


def test_dry_run_shows_the_plan_and_builds_nothing(docker_client, repo):
    commit_example(repo)
    repo.tag("v1.4.0")
    done = invoke("build", "--dry-run", "--json", repo=repo.path)
    assert done.returncode == 0, done.stderr
    plans = json.loads(done.stdout)
    assert [p["name"] for p in plans] == ["app", "nginx"]
    app = plans[0]
    assert app["tags"][0] == f"{APP_REPO}:1.4.0"
    assert f"{APP_REPO}:latest" in app["tags"]
    assert app["buildargs"]["LARA_TAG"] == "v1.4.0"
    assert app["buildargs"]["LARA_COMMIT"] == repo.head()
    assert "version: 1.4.0" in app["buildargs"]["LARA_VERSION_YML"]
    assert app["labels"]["org.opencontainers.image.version"] == "1.4.0"
    assert plans[1]["tags"][0] == f"{NGINX_REPO}:1.4.0"
    for plan in plans:
        for ref in plan["tags"]:
            with pytest.raises(docker.errors.ImageNotFound):
                docker_client.images.get(ref)
    text = invoke("build", "--dry-run", repo=repo.path)
    assert f"tag    {APP_REPO}:1.4.0" in text.stdout
    assert "arg    LARA_COMMIT=" in text.stdout
