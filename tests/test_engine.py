"""The one way to reach the engine: a one-line error naming the fix when it does not answer, and
an image checked to be present (or pullable) before anything needs it."""

from __future__ import annotations

import importlib.util

import docker
import pytest

from buildtools.engine import connect, ensure_image
from buildtools.errors import BuildToolsError


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
