"""On an engine elsewhere, as GitLab's docker:dind service is for a job: the Quickstart's
`invoke build` and `invoke up`, and GitLab's template (a push of master, then the tag v1.2.3) in
fresh clones of a copy of this project.

The engine is a second dockerd in a network namespace of its own (``FreshEngine(remote=True)``),
reachable from here only at ``tcp://<its address>:2375``: a port it publishes on its loopback is
unreachable from the test, as from a job container. It starts with only the base image (carried
over, as a CI runner's cache would hold it, with the MariaDB image as a cache source);
`scripts/setup` in each GitLab job makes the rest there, through the engine's API.
The registry listens on the host's end of the engine's link, which both reach; the engine has
it as an insecure registry, as a dind service would be configured for a plain-HTTP registry.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import docker
import pytest
import requests
import yaml

import testbed
from buildtools.engine import stack
from buildtools.errors import BuildToolsError
from tests.fixtures import ci_run
from tests.fixtures.ci_files import ROOT, gitlab_commands, gitlab_event
from tests.fixtures.ci_run import fresh_clone, make_project, run_commands, with_credentials
from tests.fixtures.services import unavailable

RUN_ID = uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def remote_engine(docker_client, base_image, mariadb_image) -> Iterator[testbed.FreshEngine]:
    """An engine in its own network namespace, holding only what a CI runner's cache would:
    the base image, and the MariaDB service image (a cache source for `scripts/setup`)."""
    try:
        engine = testbed.FreshEngine(remote=True, tls=True).start()
    except BuildToolsError as exc:
        unavailable("a remote fresh Docker Engine", exc)
        raise
    try:
        engine.load(base_image, mariadb_image, source=docker_client)
        yield engine
    finally:
        engine.stop()


@pytest.fixture(scope="module")
def remote_registry(remote_engine, tmp_path_factory) -> Iterator[testbed.LocalRegistry]:
    """The htpasswd registry on the host's end of the engine's link: both reach it there."""
    root = tmp_path_factory.mktemp("remote-registry")
    try:
        reg = testbed.LocalRegistry(root, address=remote_engine.host_address).start()
    except BuildToolsError as exc:
        unavailable("docker-registry", exc)
        raise
    yield reg
    reg.stop()


EVENTS = ("push", "tag")


@pytest.fixture(scope="module")
def earlier_master(remote_engine, remote_registry, docker_client, app_image) -> dict[str, str]:
    """An earlier master image of the app in each event's repository (built on the main engine
    from the same source), as a project's registry holds one. The empty engine pulls it as build
    cache (``cache.from``: a tag build looks for the release branch's), as each new dind service
    must: a cold app build there takes minutes."""
    client = remote_engine.client()
    remote_engine.load(app_image, source=docker_client)
    auth = {"username": remote_registry.username, "password": remote_registry.password}
    refs = {}
    for event in EVENTS:
        repository = f"{remote_registry.host}/lara-e2e-{RUN_ID}/gitlab-{event}-app"
        client.images.get(app_image).tag(repository, "master")
        for line in client.api.push(
            repository, tag="master", stream=True, decode=True, auth_config=auth
        ):
            assert "errorDetail" not in line, line
        refs[event] = f"{repository}:master"
    client.images.remove(app_image, force=True)  # the engine holds only the bases again
    return refs


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> dict:
    return make_project(tmp_path_factory)


def gitlab_env(remote_engine, registry, event: str, **ci_vars: str) -> dict[str, str]:
    """The job's environment: the template's variables, with its dind service's address and
    the folder its client certificates are in (dind's $DOCKER_TLS_CERTDIR/client)."""
    template = yaml.safe_load((ROOT / "ci-templates" / "gitlab-ci.yml").read_text())
    variables = {k: str(v) for k, v in template["images"]["variables"].items()}
    # The service is `docker` to the job; here it is the engine's address, over TLS as there.
    assert variables["DOCKER_HOST"] == "tcp://docker:2376"
    assert variables["DOCKER_TLS_VERIFY"] == "1"
    variables["DOCKER_HOST"] = remote_engine.host
    variables["DOCKER_CERT_PATH"] = str(remote_engine.cert_path)
    env = ci_run.clean_env(registry, RUN_ID, f"gitlab-{event}", **variables, **ci_vars)
    # A CA bundle for the job's proxies, as many CI images and corporate runners set: the
    # engine is still verified with its own CA from DOCKER_CERT_PATH (docker-py alone let the
    # bundle replace it, and every call failed certificate verification).
    env["REQUESTS_CA_BUNDLE"] = requests.certs.where()
    # Plain HTTP off the loopback is said in the config (the engine lists it as insecure).
    env["INVOKE_BUILDTOOLS_RELEASE_REGISTRIES"] = registry.url
    return env


def pushed_version(client: docker.DockerClient, registry, event: str, tag: str) -> dict:
    """Pull the app image on the remote engine and read its version.yml, as a user would."""
    repository = f"{registry.host}/lara-e2e-{RUN_ID}/gitlab-{event}-app"
    auth = {"username": registry.username, "password": registry.password}
    client.images.pull(repository, tag=tag, auth_config=auth)
    try:
        out = client.containers.run(
            f"{repository}:{tag}", ["cat", "/lara/config/version.yml"], remove=True
        )
        return yaml.safe_load(out.decode())
    finally:
        client.images.remove(f"{repository}:{tag}")


@pytest.mark.parametrize(
    "event, ref, expected",
    [
        ("push", "master", ["edge", "master", "sha-{short}"]),
        ("tag", "1.2.3", ["1", "1.2", "1.2.3", "latest", "sha-{short}"]),
    ],
)
def test_gitlab_template_on_its_dind_engine(
    remote_engine,
    remote_registry,
    earlier_master,
    project,
    event: str,
    ref: str,
    expected: list[str],
):
    """GitLab's job as the template writes it, against an engine like its docker:dind service:
    the smoke test passes there, the release is pushed and verified, and what was pushed is
    this commit (read back on that engine from the registry). Each finds the earlier master
    image in the registry and builds on it."""
    release = project["release"]
    checkout, ci_vars = gitlab_event(event, release, project["pr_head"])
    clone = fresh_clone(project, f"gitlab-{event}", checkout, depth=None)  # GIT_DEPTH: 0
    env = gitlab_env(remote_engine, remote_registry, event, **ci_vars)
    env = with_credentials(env, remote_registry)
    started = time.monotonic()
    log = run_commands(gitlab_commands(), clone.path, env)
    print(f"\ngitlab {event} on the remote engine: {time.monotonic() - started:.0f} s")
    print(*(line for line in log.splitlines() if line.startswith("$ ")), sep="\n")

    assert "smoke test passed" in log, log
    assert f"from {earlier_master[event]}" in log, log
    tags = sorted(t.format(short=release[:7]) for t in expected)
    held = ci_run.registry_tags(remote_registry, RUN_ID, f"gitlab-{event}")
    # A tag leaves the earlier master as it was: it is not this build's to move.
    app_tags = sorted({*tags, "master"})
    assert held == {"app": app_tags, "nginx": tags}, log
    pushed = pushed_version(remote_engine.client(), remote_registry, event, ref)
    assert pushed["commit"] == release
    if event == "push":
        assert (pushed["branch"], pushed["tag"]) == ("master", None)
    else:
        assert (pushed["tag"], pushed["version"], pushed["branch"]) == ("v1.2.3", "1.2.3", None)


def test_quickstart_build_and_up_on_a_remote_engine(remote_engine, base_image, project):
    """`invoke build && invoke up` with DOCKER_HOST=tcp://…: the printed URL answers from here
    (before, it was http://127.0.0.1:8080/notes, where nothing listens). Only the venv is made
    here: what `scripts/setup` makes on such an engine, the GitLab jobs above check. Under
    `pytest -n` this test may have an engine of its own, where no GitLab job ran: the base's
    `latest` tag that `scripts/setup` gives it (invoke.yaml names it) is given here."""
    repository, _, _ = base_image.rpartition(":")
    remote_engine.client().images.get(base_image).tag(repository, "latest")
    clone = fresh_clone(project, "quickstart", "master", depth=None)
    port = testbed.free_port()
    drop = ("TRAVIS", "GITHUB_", "GITLAB_", "CI_", "INVOKE_", "DOCKER_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop) and k != "CI"}
    env.update(remote_engine.env())  # DOCKER_HOST=tcp://…:2376 with its TLS client certificates
    # The repositories GitLab's push built into on this engine: their images are the build's
    # cache sources, as on a build host a developer shares with CI (cold when run alone).
    env["INVOKE_BUILDTOOLS_APP_REPOSITORY"] = f"lara-e2e-{RUN_ID}/gitlab-push-app"
    env["INVOKE_BUILDTOOLS_NGINX_REPOSITORY"] = f"lara-e2e-{RUN_ID}/gitlab-push-nginx"
    log = run_commands(
        ["bash scripts/venv", ".venv/bin/invoke build", f".venv/bin/invoke up --port {port}"],
        clone.path,
        env,
    )
    print("", *(line for line in log.splitlines() if line.startswith("$ ")), sep="\n")
    try:
        url = re.search(r"^LARA: (\S+)$", log, re.MULTILINE)
        assert url, log
        assert urlsplit(url[1]).hostname == remote_engine.engine_address, log
        version = subprocess.run(
            [".venv/bin/invoke", "version", "--format", "json"],
            cwd=clone.path,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        expected = json.loads(version.stdout)["version"]
        page = requests.get(url[1], timeout=10)
        assert page.status_code == 200
        assert expected in page.text
        # The engine's port is not on this machine: the old URL would not answer.
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/", timeout=5)
    finally:
        run_commands([".venv/bin/invoke down"], clone.path, env)
    left = remote_engine.client().containers.list(all=True, filters={"label": stack.OWNER_LABEL})
    assert left == []
