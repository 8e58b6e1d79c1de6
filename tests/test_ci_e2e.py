"""End to end: the commands of .travis.yml and the GitHub/GitLab templates, run in fresh
clones of a temporary copy of this project, with the environment each CI sets, against the real
htpasswd registry: a push to a release branch and a pull request, each once, on this machine's
engine. GitLab's template runs against an engine elsewhere, as its docker:dind service is (a
push of master and the tag v1.2.3): tests/test_remote_engine.py.

The commands are read from the CI files, not repeated here, so a broken .travis.yml fails this
test.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import requests
import yaml

from tests.fixtures import ci_run
from tests.fixtures.ci_files import (
    github_commands,
    github_event,
    github_secrets_env,
    travis_commands,
    travis_event,
)
from tests.fixtures.ci_run import fresh_clone, make_project, run_commands, with_credentials
from tests.fixtures.held_images import discard, local_tags
from tests.fixtures.services import running_app

ROOT = Path(__file__).resolve().parents[1]
RUN_ID = uuid.uuid4().hex[:8]


@pytest.fixture(scope="module", autouse=True)
def remove_this_runs_images(docker_client):
    """The CI runs tag their images locally (lara-e2e-<run>/..., lara-hub-<run>/...)."""
    yield
    for _, ref in local_tags(docker_client):
        if ref.split("/")[0].endswith(RUN_ID) or f"/lara-e2e-{RUN_ID}/" in ref:
            discard(docker_client, ref)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> dict:
    return make_project(tmp_path_factory)


def clean_env(registry, provider: str, **ci_vars: str) -> dict[str, str]:
    return ci_run.clean_env(registry, RUN_ID, provider, **ci_vars)


def registry_tags(registry, provider: str) -> dict[str, list[str]]:
    return ci_run.registry_tags(registry, RUN_ID, provider)


def version_of_pushed(docker_client, registry, provider: str, tag: str) -> dict:
    """Pull the app image from the registry and ask the running container what it is."""
    repository = f"{registry.host}/lara-e2e-{RUN_ID}/{provider}-app"
    image = docker_client.images.pull(
        repository,
        tag=tag,
        auth_config={"username": registry.username, "password": registry.password},
    )
    try:
        with running_app(docker_client, image.id) as url:
            return requests.get(f"{url}/version.json", timeout=5).json()
    finally:
        discard(docker_client, f"{repository}:{tag}")


# provider: (its commands, how deep it clones, its variables for an event)
PROVIDERS = {
    "travis": (travis_commands, 50, travis_event),
    "github": (github_commands, None, github_event),  # fetch-depth: 0
}


# One full `invoke ci` per event kind, each through another CI's own commands and variables, so
# every event and every CI file runs once for real (GitLab's push and tag, on a remote engine,
# in tests/test_remote_engine.py). How each CI's variables become a build (every provider x
# event) is checked without an engine in tests/facts/test_ci_env.py; the CI files' commands and
# settings in tests/test_ci_templates.py.
@pytest.mark.parametrize("provider, event", [("github", "push"), ("travis", "pr")])
def test_invoke_ci(docker_client, base_image, registry, project, provider: str, event: str):
    """What a push to master and a pull request each leave behind."""
    release, pr_head = project["release"], project["pr_head"]
    commands, depth, variables = PROVIDERS[provider]
    if provider == "github":
        # The registry's secrets as the workflow names them; its signing secrets are left
        # unset here (unsigned, as without them): tests/test_adoption.py signs through a job.
        assert set(github_secrets_env()) >= {"DOCKER_USERNAME", "DOCKER_PASSWORD"}
    ref, ci_vars = variables(event, release, pr_head)
    clone = fresh_clone(project, f"{provider}-{event}", ref, depth=depth)
    env = with_credentials(clean_env(registry, provider, **ci_vars), registry)
    log = run_commands(commands(), clone.path, env)

    if event == "push":
        assert "build, smoke test, release" in log
        expected = sorted([f"sha-{release[:7]}", "master", "edge"])
        assert registry_tags(registry, provider) == {"app": expected, "nginx": expected}, log
        pushed = version_of_pushed(docker_client, registry, provider, "master")
        assert (pushed["branch"], pushed["tag"], pushed["commit"]) == ("master", None, release)
    else:
        assert "pull requests are never pushed" in log
        assert registry_tags(registry, provider) == {"app": [], "nginx": []}
        assert "smoke test passed" in log
        assert pr_head[:7] in log


def test_fork_pull_request_without_credentials_builds_but_does_not_push(
    docker_client, base_image, registry, project
):
    """A fork's PR to a release branch with tags.pull_requests on still gets no secrets."""
    clone = fresh_clone(project, "fork", "feature/x", depth=50)
    env = clean_env(
        registry,
        "fork",
        TRAVIS="true",
        TRAVIS_BRANCH="master",
        TRAVIS_PULL_REQUEST="8",
        TRAVIS_PULL_REQUEST_BRANCH="feature/x",
        TRAVIS_PULL_REQUEST_SHA=project["pr_head"],
        TRAVIS_COMMIT=project["pr_head"],
        TRAVIS_EVENT_TYPE="pull_request",
        INVOKE_BUILDTOOLS_RELEASE_ALLOW_PULL_REQUESTS="true",
        INVOKE_BUILDTOOLS_TAGS_PULL_REQUESTS="true",
    )
    log = run_commands(travis_commands(), clone.path, env)
    assert f"not releasing: registry {registry.host} asks for a login" in log
    assert "smoke test passed" in log
    assert registry_tags(registry, "fork") == {"app": [], "nginx": []}


# One ref: how Docker Hub's SOURCE_BRANCH reads as a branch or a tag is checked in
# tests/facts/test_ci_env.py.
@pytest.mark.parametrize("source_branch, expected", [("v1.2.3", {"branch": None, "tag": "v1.2.3"})])
def test_docker_hub_hook_passes_source_branch_and_commit(
    docker_client, base_image, project, source_branch, expected
):
    """hooks/build as Docker Hub runs it: a plain checkout, SOURCE_BRANCH/SOURCE_COMMIT set."""
    clone = fresh_clone(project, "hub", source_branch, depth=None)
    image_name = f"lara-hub-{RUN_ID}/app:{source_branch}"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TRAVIS", "GITHUB_", "GITLAB_", "CI_", "INVOKE_")) and k != "CI"
    }
    env.update(
        SOURCE_BRANCH=source_branch,
        SOURCE_COMMIT=project["release"],
        IMAGE_NAME=image_name,
        DOCKER_TAG=source_branch,
        INVOKE_BUILDTOOLS_APP_REPOSITORY=f"lara-hub-{RUN_ID}/built",
    )
    log = run_commands(["bash hooks/build"], clone.path, env)
    assert f"as {image_name}" in log
    try:
        content = docker_client.containers.run(
            image_name, ["cat", "/lara/config/version.yml"], remove=True
        ).decode()
        data = yaml.safe_load(content)
        assert data["commit"] == project["release"]
        assert data["ci"] == "dockerhub"
        assert {k: data[k] for k in expected} == expected
    finally:
        discard(docker_client, image_name)
