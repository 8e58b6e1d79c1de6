"""The one way to reach the engine: a one-line error naming the fix when it does not answer, and
an image checked to be present (or pullable) before anything needs it."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
from pathlib import Path

import docker
import docker.errors
import pytest

from buildtools.engine.connect import connect, ensure_image
from buildtools.errors import BuildToolsError
from tests.fixtures.bad_input import (
    REAL_CLI,
    App,
    one_error,
)


def test_engine_error_names_the_fix(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(BuildToolsError) as caught:
        connect()
    message = str(caught.value)
    assert "no Docker Engine answers at unix:///nonexistent/docker.sock" in message
    assert "dockerd" in message
    assert "\n" not in message
    assert "(no such file or directory)" in message  # the system's words, not urllib3's reprs


def test_an_engine_that_does_not_answer_is_named_with_the_system_reason(
    monkeypatch, closed_port: int
):
    host, reason = f"tcp://127.0.0.1:{closed_port}", "connection refused"  # nothing listens
    monkeypatch.setenv("DOCKER_HOST", host)
    with pytest.raises(BuildToolsError) as caught:
        connect()
    assert str(caught.value).startswith(f"no Docker Engine answers at {host} ({reason}) (fix: ")


@pytest.mark.parametrize("host", ["tcp://[::1", "tcp://", "bogus://engine", "tcp://localhost:x"])
def test_a_malformed_docker_host_is_named_not_blamed_on_a_stopped_engine(monkeypatch, host):
    monkeypatch.setenv("DOCKER_HOST", host)
    with pytest.raises(BuildToolsError) as caught:
        connect()
    message = str(caught.value)
    assert message.startswith(f"DOCKER_HOST={host} is not an engine address")
    assert "tcp://HOST:PORT" in message and "dockerd" not in message
    assert "\n" not in message


def test_an_ssh_engine_without_docker_py_ssh_support_says_what_to_install(monkeypatch):
    if importlib.util.find_spec("paramiko"):
        pytest.skip("paramiko is installed: docker-py speaks ssh:// here")
    monkeypatch.setenv("DOCKER_HOST", "ssh://lara@build-host.invalid")
    with pytest.raises(BuildToolsError) as caught:
        connect()
    message = str(caught.value)
    assert "ssh://lara@build-host.invalid" in message
    assert "docker[ssh]" in message and "dockerd" not in message


def test_a_present_image_is_used_as_it_is(docker_client: docker.DockerClient, base_image: str):
    before = docker_client.images.get(base_image).id
    ensure_image(docker_client, base_image, "base image", "unused")
    assert docker_client.images.get(base_image).id == before


def test_an_image_neither_here_nor_pullable_is_one_line_naming_who_needs_it(
    docker_client: docker.DockerClient,
    closed_port: int,
):
    image = f"127.0.0.1:{closed_port}/nope/db:1"  # nothing listens there: the pull fails
    with pytest.raises(BuildToolsError) as caught:
        ensure_image(docker_client, image, "service db: image", "build it first")
    message = str(caught.value)
    assert message.startswith(f"service db: image {image} is not present locally")
    assert "cannot be pulled" in message and "build it first" in message
    assert "\n" not in message


def make_context(config: Path, name: str, host: str, current: bool = False) -> None:
    """A Docker CLI context, made by the Docker CLI itself in its config folder."""
    env = {"DOCKER_CONFIG": str(config), "PATH": os.environ["PATH"], "HOME": str(config)}
    done = subprocess.run(
        ["docker", "context", "create", name, "--docker", f"host={host}"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    if current:
        (config / "config.json").write_text(json.dumps({"currentContext": name}))


def test_the_current_docker_context_is_the_engine_as_for_the_docker_cli(monkeypatch, tmp_path):
    """Before, a context (Docker Desktop, `docker context use`) was silently ignored and the
    default socket asked instead."""
    make_context(tmp_path, "elsewhere", "unix:///nonexistent/elsewhere.sock", current=True)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    with pytest.raises(BuildToolsError) as caught:
        connect()
    assert "no Docker Engine answers at unix:///nonexistent/elsewhere.sock" in str(caught.value)
    make_context(tmp_path, "other", "unix:///nonexistent/other.sock")
    monkeypatch.setenv("DOCKER_CONTEXT", "other")  # the variable wins over config.json
    with pytest.raises(BuildToolsError) as caught:
        connect()
    assert "no Docker Engine answers at unix:///nonexistent/other.sock" in str(caught.value)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/host.sock")  # and DOCKER_HOST over it
    with pytest.raises(BuildToolsError) as caught:
        connect()
    assert "no Docker Engine answers at unix:///nonexistent/host.sock" in str(caught.value)


def test_a_docker_context_that_does_not_exist_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setenv("DOCKER_CONTEXT", "nosuch")
    with pytest.raises(BuildToolsError) as caught:
        connect()
    assert str(caught.value) == (
        "DOCKER_CONTEXT names the Docker context 'nosuch', which does not exist (fix: "
        "`docker context ls` lists the contexts; or set DOCKER_HOST to the engine's address)"
    )


@pytest.mark.docker
def test_a_context_naming_the_engine_connects(monkeypatch, tmp_path, docker_client):
    socket = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"  # the tests' engine
    make_context(tmp_path, "here", socket, current=True)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    assert connect(timeout=30).ping()
    assert os.environ["DOCKER_HOST"] == socket  # what stacks and `docker compose` then read


# --- bad input (tests/fixtures/bad_input.py) ---


@pytest.mark.docker
@REAL_CLI
def test_a_missing_sidecar_base_image_is_found_before_the_app_is_built(
    app: App, docker_client: docker.DockerClient, base_image: str, closed_port: int
) -> None:
    """17: found after the app image was built, it left one image new and the other not."""
    missing = f"127.0.0.1:{closed_port}/lbt-missing/base:1"  # nothing answers there
    env = {
        "INVOKE_BUILDTOOLS_NGINX_BASE_IMAGE": missing,
        "INVOKE_BUILDTOOLS_CACHE_PULL": "false",
        "INVOKE_BUILDTOOLS_RELEASE_REGISTRIES": f"127.0.0.1:{closed_port}",
    }
    done = app.invoke("build", env=env)
    line = one_error(done)
    assert "[app] step" not in done.stderr, done.stderr  # no step of the app was built
    assert f"base image {missing} is not present locally and cannot be pulled" in line
    assert "buildtools.nginx.base_image" in line
    assert docker_client.images.list(name=f"{app.name}/app") == []
    assert "app image" not in line


def test_a_context_is_read_from_the_clis_folder_only_never_the_working_directory(
    monkeypatch, tmp_path
):
    """Hostile pass: with no config.json beside them (a fresh DOCKER_CONFIG after `docker
    context create`), contexts were looked up in ./contexts: missed, and a repository that
    ships a contexts/ folder could point the engine (and the push credentials) elsewhere."""
    cli, trap = tmp_path / "cli", tmp_path / "checkout"
    cli.mkdir()
    make_context(cli, "good", "unix:///nonexistent/good.sock")  # no config.json written
    assert not (cli / "config.json").exists()
    key = hashlib.sha256(b"good").hexdigest()
    planted = trap / "contexts" / "meta" / key
    planted.mkdir(parents=True)
    endpoints = {"docker": {"Host": "tcp://127.0.0.1:9"}}
    (planted / "meta.json").write_text(json.dumps({"Name": "good", "Endpoints": endpoints}))
    monkeypatch.chdir(trap)
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setenv("DOCKER_CONTEXT", "good")
    monkeypatch.setenv("DOCKER_CONFIG", str(cli))
    with pytest.raises(BuildToolsError) as caught:
        connect()
    assert "no Docker Engine answers at unix:///nonexistent/good.sock" in str(caught.value)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "empty"))  # the CLI knows no "good"
    with pytest.raises(BuildToolsError) as caught:
        connect()
    assert "names the Docker context 'good', which does not exist" in str(caught.value)
