"""End to end: the commands of .travis.yml (and the GitHub/GitLab templates), run in fresh
clones of a temporary copy of this project, with the environment each CI sets for a push to a
release branch, a tag v1.2.3 and a pull request, against the real htpasswd registry.

The commands are read from the CI files, not repeated here, so a broken .travis.yml fails this
test. The only CI-specific setting left out is GitLab's DOCKER_HOST for its dind service, which
does not exist here (the job then uses the local engine, as on Travis).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
import yaml

from tests.fixtures.git import GitRepo, git_env, init_repo
from tests.fixtures.project import copy_into
from tests.fixtures.services import running_app

ROOT = Path(__file__).resolve().parents[1]
RUN_ID = uuid.uuid4().hex[:8]


def travis_commands() -> list[str]:
    """The install phase plus the script of the job that runs `invoke ci`."""
    config = yaml.safe_load((ROOT / ".travis.yml").read_text())
    jobs = [job for job in config["jobs"]["include"] if "invoke ci" in str(job.get("script"))]
    assert len(jobs) == 1, "exactly one Travis job should run `invoke ci`"
    as_list = lambda v: v if isinstance(v, list) else [v]  # noqa: E731
    return as_list(config["install"]) + as_list(jobs[0]["script"])


def github_commands() -> list[str]:
    workflow = yaml.safe_load((ROOT / "ci-templates" / "github-actions.yml").read_text())
    (job,) = workflow["jobs"].values()
    return [step["run"] for step in job["steps"] if "run" in step]


def github_secrets_env() -> dict[str, str]:
    workflow = yaml.safe_load((ROOT / "ci-templates" / "github-actions.yml").read_text())
    (job,) = workflow["jobs"].values()
    return {k: v for step in job["steps"] for k, v in step.get("env", {}).items()}


def gitlab_commands() -> list[str]:
    return yaml.safe_load((ROOT / "ci-templates" / "gitlab-ci.yml").read_text())["images"]["script"]


@pytest.fixture(scope="module", autouse=True)
def remove_this_runs_images(docker_client):
    """The CI runs tag their images locally (lara-e2e-<run>/..., lara-hub-<run>/...)."""
    yield
    for image in docker_client.images.list():
        for ref in image.tags:
            if ref.split("/")[0].endswith(RUN_ID) or f"/lara-e2e-{RUN_ID}/" in ref:
                docker_client.images.remove(ref, force=True)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> dict:
    """A copy of this project as an app repository: master with a release commit tagged v1.2.3,
    and a pull-request branch."""
    base = tmp_path_factory.mktemp("e2e")
    env = git_env(base)
    repo = init_repo(base / "origin", env, branch="master")
    copy_into(repo)
    release = repo.commit("import lara-buildtools")
    repo.tag("v1.2.3", annotated=True)
    repo.branch("feature/x")
    repo.checkout("feature/x")
    pr_head = repo.commit("a pull request")
    repo.checkout("master")
    return {"repo": repo, "base": base, "release": release, "pr_head": pr_head}


def run_commands(commands: list[str], cwd: Path, env: dict[str, str]) -> str:
    log = []
    for command in commands:
        done = subprocess.run(
            ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
        )
        log.append(f"$ {command}\n{done.stdout}{done.stderr}")
        assert done.returncode == 0, "\n".join(log)
    return "\n".join(log)


def clean_env(registry, provider: str, **ci_vars: str) -> dict[str, str]:
    """The machine's environment without any CI's variables, plus what this CI sets."""
    drop = ("TRAVIS", "GITHUB_", "GITLAB_", "CI_", "INVOKE_", "DOCKER_USERNAME", "DOCKER_PASSWORD")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop) and k != "CI"}
    env.update(
        CI="true",
        INVOKE_BUILDTOOLS_RELEASE_REGISTRIES=registry.host,
        INVOKE_BUILDTOOLS_APP_REPOSITORY=f"lara-e2e-{RUN_ID}/{provider}-app",
        INVOKE_BUILDTOOLS_NGINX_REPOSITORY=f"lara-e2e-{RUN_ID}/{provider}-nginx",
        INVOKE_BUILDTOOLS_RELEASE_RETRY_BASE_DELAY="0.2",
        **ci_vars,
    )
    return env


def with_credentials(env: dict[str, str], registry) -> dict[str, str]:
    return {**env, "DOCKER_USERNAME": registry.username, "DOCKER_PASSWORD": registry.password}


def registry_tags(registry, provider: str) -> dict[str, list[str]]:
    return {
        image: registry.tags(f"lara-e2e-{RUN_ID}/{provider}-{image}") for image in ("app", "nginx")
    }


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
        docker_client.images.remove(f"{repository}:{tag}", force=False)


def check_three_events(
    docker_client,
    registry,
    project: dict,
    provider: str,
    run_event: Callable[[str], str],
) -> None:
    """Push to master, then tag v1.2.3 (same commit), then a PR: what each leaves behind."""
    release, pr_head = project["release"], project["pr_head"]

    log = run_event("push")
    assert "build, smoke test, release" in log
    after_push = registry_tags(registry, provider)
    expected_branch = sorted([f"sha-{release[:7]}", "master", "edge"])
    assert after_push == {"app": expected_branch, "nginx": expected_branch}, log
    pushed = version_of_pushed(docker_client, registry, provider, "master")
    assert (pushed["branch"], pushed["tag"], pushed["commit"]) == ("master", None, release)

    log = run_event("tag")
    after_tag = registry_tags(registry, provider)
    expected_tag = sorted([*expected_branch, "1.2.3", "1.2", "1", "latest"])
    assert after_tag == {"app": expected_tag, "nginx": expected_tag}, log
    pushed = version_of_pushed(docker_client, registry, provider, "1.2.3")
    assert (pushed["tag"], pushed["version"], pushed["commit"]) == ("v1.2.3", "1.2.3", release)
    assert pushed["branch"] is None

    log = run_event("pr")
    assert "pull requests are never pushed" in log
    assert registry_tags(registry, provider) == after_tag
    assert "smoke test passed" in log
    assert pr_head[:7] in log


def fresh_clone(project: dict, name: str, ref: str, depth: int | None) -> GitRepo:
    """A clone checked out at ``ref`` on a detached HEAD, as CI checkouts are."""
    dest = project["base"] / f"{name}-{uuid.uuid4().hex[:6]}"
    clone = project["repo"].clone(dest, depth=depth, branch=ref)
    clone.detach()
    return clone


def test_travis(docker_client, base_image, registry, project):
    commands = travis_commands()
    release, pr_head = project["release"], project["pr_head"]
    common = {
        "TRAVIS": "true",
        "TRAVIS_REPO_SLUG": "concord-consortium/lara",
        "TRAVIS_BUILD_NUMBER": "412",
        "TRAVIS_BUILD_WEB_URL": "https://app.travis-ci.com/concord-consortium/lara/builds/412",
        "TRAVIS_JOB_WEB_URL": "https://app.travis-ci.com/concord-consortium/lara/jobs/9001",
        "RAILS_ENV": "test",
        "RACK_ENV": "test",
    }
    events = {
        "push": ("master", {"TRAVIS_BRANCH": "master", "TRAVIS_TAG": "",
                            "TRAVIS_PULL_REQUEST": "false", "TRAVIS_PULL_REQUEST_BRANCH": "",
                            "TRAVIS_PULL_REQUEST_SHA": "", "TRAVIS_COMMIT": release,
                            "TRAVIS_EVENT_TYPE": "push"}),
        "tag": ("v1.2.3", {"TRAVIS_BRANCH": "v1.2.3", "TRAVIS_TAG": "v1.2.3",
                           "TRAVIS_PULL_REQUEST": "false", "TRAVIS_PULL_REQUEST_BRANCH": "",
                           "TRAVIS_PULL_REQUEST_SHA": "", "TRAVIS_COMMIT": release,
                           "TRAVIS_EVENT_TYPE": "push"}),
        "pr": ("feature/x", {"TRAVIS_BRANCH": "master", "TRAVIS_TAG": "",
                             "TRAVIS_PULL_REQUEST": "7", "TRAVIS_PULL_REQUEST_BRANCH": "feature/x",
                             "TRAVIS_PULL_REQUEST_SHA": pr_head, "TRAVIS_COMMIT": pr_head,
                             "TRAVIS_EVENT_TYPE": "pull_request"}),
    }  # fmt: skip

    def run_event(event: str) -> str:
        ref, ci_vars = events[event]
        clone = fresh_clone(project, f"travis-{event}", ref, depth=50)
        env = with_credentials(clean_env(registry, "travis", **common, **ci_vars), registry)
        return run_commands(commands, clone.path, env)

    check_three_events(docker_client, registry, project, "travis", run_event)


def test_github_actions(docker_client, base_image, registry, project):
    commands = github_commands()
    assert set(github_secrets_env()) == {"DOCKER_USERNAME", "DOCKER_PASSWORD"}
    release, pr_head = project["release"], project["pr_head"]
    common = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "concord-consortium/lara",
        "GITHUB_RUN_ID": "123456",
        "GITHUB_RUN_NUMBER": "77",
    }
    events = {
        "push": ("master", {"GITHUB_EVENT_NAME": "push", "GITHUB_REF": "refs/heads/master",
                            "GITHUB_REF_NAME": "master", "GITHUB_REF_TYPE": "branch",
                            "GITHUB_SHA": release}),
        "tag": ("v1.2.3", {"GITHUB_EVENT_NAME": "push", "GITHUB_REF": "refs/tags/v1.2.3",
                           "GITHUB_REF_NAME": "v1.2.3", "GITHUB_REF_TYPE": "tag",
                           "GITHUB_SHA": release}),
        "pr": ("feature/x", {"GITHUB_EVENT_NAME": "pull_request", "GITHUB_REF": "refs/pull/7/merge",
                             "GITHUB_REF_NAME": "7/merge", "GITHUB_REF_TYPE": "branch",
                             "GITHUB_HEAD_REF": "feature/x", "GITHUB_BASE_REF": "master",
                             "GITHUB_SHA": pr_head}),
    }  # fmt: skip

    def run_event(event: str) -> str:
        ref, ci_vars = events[event]
        clone = fresh_clone(project, f"github-{event}", ref, depth=None)  # fetch-depth: 0
        env = with_credentials(clean_env(registry, "github", **common, **ci_vars), registry)
        return run_commands(commands, clone.path, env)

    check_three_events(docker_client, registry, project, "github", run_event)


def test_gitlab_ci(docker_client, base_image, registry, project):
    commands = gitlab_commands()
    release, pr_head = project["release"], project["pr_head"]
    common = {
        "GITLAB_CI": "true",
        "CI_PIPELINE_IID": "31",
        "CI_JOB_URL": "https://gitlab.com/concord-consortium/lara/-/jobs/555",
    }
    events = {
        "push": ("master", {"CI_COMMIT_REF_NAME": "master", "CI_COMMIT_BRANCH": "master",
                            "CI_COMMIT_SHA": release, "CI_PIPELINE_SOURCE": "push"}),
        "tag": ("v1.2.3", {"CI_COMMIT_REF_NAME": "v1.2.3", "CI_COMMIT_TAG": "v1.2.3",
                           "CI_COMMIT_SHA": release, "CI_PIPELINE_SOURCE": "push"}),
        "pr": ("feature/x", {"CI_COMMIT_REF_NAME": "feature/x", "CI_COMMIT_SHA": pr_head,
                             "CI_MERGE_REQUEST_IID": "7",
                             "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "feature/x",
                             "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "master",
                             "CI_PIPELINE_SOURCE": "merge_request_event"}),
    }  # fmt: skip

    def run_event(event: str) -> str:
        ref, ci_vars = events[event]
        clone = fresh_clone(project, f"gitlab-{event}", ref, depth=None)  # GIT_DEPTH: 0
        env = with_credentials(clean_env(registry, "gitlab", **common, **ci_vars), registry)
        return run_commands(commands, clone.path, env)

    check_three_events(docker_client, registry, project, "gitlab", run_event)


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


def test_travis_yml_has_the_structure_travis_expects():
    config = yaml.safe_load((ROOT / ".travis.yml").read_text())
    assert config["language"] == "python"
    assert "docker" in config["services"]
    assert config["git"]["depth"] is False  # full history and tags for the tag policy
    # A branch safelist must let tag builds through: some entry has to match v1.2.3.
    import re

    only = config["branches"]["only"]
    patterns = [re.compile(p.strip("/")) for p in only if p.startswith("/")]
    assert any(p.match("v1.2.3") for p in patterns)
    assert any(p.match("1.2.3-rc.1") for p in patterns)
    assert "master" in only
    assert config["install"] == ["bash scripts/setup"]
    stages = [job["stage"] for job in config["jobs"]["include"]]
    assert stages == ["test", "images"]
    test_job = config["jobs"]["include"][0]
    readme = (ROOT / "README.md").read_text()
    # The test job runs exactly the README's test command.
    assert f"bash scripts/setup && {test_job['script']}" in readme
    # No clear-text secrets: credentials come from encrypted variables only.
    text = (ROOT / ".travis.yml").read_text()
    assert "DOCKER_PASSWORD=" not in text.replace("DOCKER_PASSWORD=<password>", "")
    assert "deploy" not in config  # `invoke ci` decides; PR builds never push


@pytest.mark.parametrize(
    "source_branch, expected",
    [("master", {"branch": "master", "tag": None}), ("v1.2.3", {"branch": None, "tag": "v1.2.3"})],
)
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
        docker_client.images.remove(image_name, force=True)
