"""The smoke stack's environment: literal values pass, bare names come from the environment and
are the secrets every message the stack shows is cleaned of; where `invoke up`'s URL points for
each kind of DOCKER_HOST; how an answer read inside the stack's network is parsed (pure parts;
test_ci_e2e, test_adoption and test_remote_engine run the stack for real); and two stacks of
one commit at once on one engine."""

from __future__ import annotations

import io
import os
import secrets
import threading
import time

import docker
import docker.errors
import pytest

import testbed
from buildtools.config.schema import ServiceConfig, SmokeConfig
from buildtools.engine import ports, stack, stack_parts, stack_probe
from buildtools.errors import BuildToolsError
from tests.fixtures.bad_input import (
    REAL_CLI,
    App,
    one_error,
)
from tests.fixtures.held_images import discard
from tests.fixtures.sidecar import project_settings
from tests.fixtures.tunnel import Tunnel

CFG = SmokeConfig(
    env=("DB_HOST=db", "DATABASE_URL"),
    services=(ServiceConfig("db", "mariadb:11.2", env=("MARIADB_PASSWORD", "X=1")),),
)
ENV = {"DATABASE_URL": "mysql2://lara:Hunter2@db/lara", "MARIADB_PASSWORD": "Hunter2"}


def test_bare_names_are_read_from_the_environment_and_are_the_secrets() -> None:
    assert stack.resolve_env(CFG.env, ENV, "smoke.env") == {
        "DB_HOST": "db",
        "DATABASE_URL": ENV["DATABASE_URL"],
    }
    assert sorted(stack.secret_values(CFG, ENV)) == sorted(ENV.values())


def test_a_missing_secret_is_one_line_naming_it_not_its_value() -> None:
    with pytest.raises(BuildToolsError, match="takes DATABASE_URL from the environment"):
        stack.resolve_env(CFG.env, {}, "smoke.env")


def test_errors_and_log_lines_are_cleaned_of_the_secrets() -> None:
    secrets = stack.secret_values(CFG, ENV)
    error = BuildToolsError(f"prepare exited 1: cannot parse {ENV['DATABASE_URL']}")
    assert "Hunter2" not in str(error.redact(secrets))
    shown: list[str] = []

    # A stand-in for the engine: only its log text matters here (the real stack runs in
    # test_ci_e2e and test_adoption, where a secret in a log would need a failing app).
    class Container:
        name = "x-app"

        def logs(self, tail: int) -> bytes:
            return f"connecting with {ENV['MARIADB_PASSWORD']}\n".encode()

    class Client:
        class containers:  # docker-py's collection, as report_logs uses it
            @staticmethod
            def list(**_: object) -> list[Container]:
                return [Container()]

    stack.report_logs(Client(), "x", shown.append, secrets)  # type: ignore[arg-type]
    assert shown == ["  x-app: connecting with ***"]


def test_each_run_gets_a_stack_name_of_its_own() -> None:
    first, second = (stack.run_name("lara-ci", "0123abc4567") for _ in range(2))
    assert first.startswith("lara-ci-0123abc-") and second.startswith("lara-ci-0123abc-")
    assert first != second


@pytest.mark.parametrize(
    "docker_host, host, bind",
    [
        (None, "127.0.0.1", "127.0.0.1"),
        ("", "127.0.0.1", "127.0.0.1"),
        ("unix:///var/run/docker.sock", "127.0.0.1", "127.0.0.1"),
        ("npipe:////./pipe/docker_engine", "127.0.0.1", "127.0.0.1"),
        ("tcp://docker:2375", "docker", "0.0.0.0"),  # GitLab's docker:dind service
        ("tcp://10.213.0.6:2375", "10.213.0.6", "0.0.0.0"),
        ("ssh://ci@build-host.example.org:2222", "build-host.example.org", "0.0.0.0"),
        ("ssh://build-host", "build-host", "0.0.0.0"),
        ("tcp://[fd00::6]:2375", "[fd00::6]", "0.0.0.0"),
        ("tcp://127.0.0.1:2375", "127.0.0.1", "127.0.0.1"),
        ("tcp://localhost:2375", "localhost", "127.0.0.1"),
    ],
)
def test_up_publishes_where_the_user_reaches_the_engine(
    docker_host: str | None, host: str, bind: str
) -> None:
    """The URL's host is the engine's host as DOCKER_HOST names it; the port is bound to the
    loopback only when that loopback is this machine's."""
    assert ports.engine_host(docker_host) == host
    assert ports.publish_address(docker_host) == bind


def test_an_answer_read_inside_the_network_is_parsed_like_a_browser_would() -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\nServer: nginx\r\nCache-Control: max-age=31536000, immutable\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n<p>LARA 1.2.3 \xc3\xa9</p>"
    )
    answer = stack_probe.parse_response(raw)
    assert answer.status == 200
    assert answer.headers["cache-control"] == "max-age=31536000, immutable"
    assert answer.text == "<p>LARA 1.2.3 \u00e9</p>"
    chunked = stack_probe.parse_response(
        b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4\r\nno s\r\n4\r\nuch!\r\n0\r\n\r\n"
    )
    assert (chunked.status, chunked.text) == (404, "no such!")


@pytest.mark.parametrize("raw", [b"", b"bash: connect: Connection refused\n", b"SSH-2.0-x\r\n\r\n"])
def test_no_http_answer_is_not_mistaken_for_one(raw: bytes) -> None:
    with pytest.raises(ValueError, match="not an HTTP response"):
        stack_probe.parse_response(raw)


@pytest.mark.docker
def test_two_smoke_runs_of_one_commit_on_one_engine_both_pass(
    docker_client: docker.DockerClient, app_image: str, sidecar_image: str
) -> None:
    """A re-run or a CI matrix: two `invoke ci` of one commit at once. With a shared stack
    name each run's start removed the other's containers."""
    cfg = project_settings().smoke
    names = [stack.run_name("lara-ci", "0123abc4567") for _ in range(2)]
    version = docker_client.images.get(app_image).attrs["Config"]["Env"]
    expect = next(e.split("=", 1)[1] for e in version if e.startswith("LARA_IMAGE_VERSION="))
    outcomes: dict[str, object] = {}

    def run(name: str) -> None:
        try:
            outcomes[name] = stack.smoke(
                docker_client, app_image, sidecar_image, expect, name, cfg=cfg, env={}, say=print
            )
        except BaseException as exc:  # reported below, with the other run's outcome
            outcomes[name] = exc

    threads = [threading.Thread(target=run, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert all(isinstance(outcomes.get(n), dict) for n in names), outcomes
    for name in names:  # each run removed its own containers and network, and only those
        assert (
            docker_client.containers.list(
                all=True, filters={"label": f"{stack.OWNER_LABEL}={name}"}
            )
            == []
        )


@pytest.mark.docker
def test_a_sidecar_without_bash_is_said_at_once_not_after_the_smoke_timeout(
    docker_client: docker.DockerClient, base_image: str
) -> None:
    """A user's own sidecar Dockerfile on an image without bash (the HTTP check runs in it):
    one line naming that, at the first try, instead of the whole wait and 'did not answer'."""
    image, _ = docker_client.images.build(
        fileobj=io.BytesIO(f"FROM {base_image}\nRUN rm /usr/bin/bash\n".encode()),
        rm=True,
        tag=f"lbt-test-nobash-{secrets.token_hex(4)}:local",
    )
    running = stack_parts.Stack(f"lbt-nobash-{secrets.token_hex(3)}", "")
    sidecar = docker_client.containers.run(
        image.id, ["sleep", "300"], name=running.sidecar, detach=True
    )
    try:
        started = time.monotonic()
        with pytest.raises(BuildToolsError) as caught:
            stack_probe.wait_for(docker_client, running, "/", seconds=60)
        assert time.monotonic() - started < 10
    finally:
        sidecar.remove(force=True)
        discard(docker_client, image.id)
    message = str(caught.value)
    assert "the sidecar image has no bash" in message and "did not answer" not in message
    assert "\n" not in message


# --- bad input (tests/fixtures/bad_input.py) ---


@pytest.mark.docker
@REAL_CLI
def test_down_never_removes_a_container_it_did_not_start(
    app: App, docker_client: docker.DockerClient, base_image: str
) -> None:
    prefix = f"lbt-foreign-{secrets.token_hex(3)}"
    foreign = docker_client.containers.run(
        base_image, ["sleep", "600"], name=f"{prefix}-app", detach=True
    )
    try:
        line = one_error(app.invoke("down", "--name", prefix))
        assert f"a container named {prefix}-app exists and was not started by invoke up" in line
        foreign.reload()
        assert foreign.status == "running"
    finally:
        foreign.remove(force=True)


@pytest.mark.docker
def test_an_engine_behind_a_loopback_port_is_here_only_if_it_is_this_machines(
    docker_client: docker.DockerClient, fresh_engine: testbed.FreshEngine
) -> None:
    """27.10: tcp://127.0.0.1:N was taken for this machine's engine by its text: an SSH tunnel
    to another machine's engine then published `invoke up`'s port on that machine's loopback
    and printed a URL on this one's, where nothing answered. Asked by its ID instead."""
    main_socket = (os.environ.get("DOCKER_HOST") or ports.DEFAULT_SOCKET).removeprefix("unix://")
    to_main = Tunnel(main_socket)
    # Another engine (the fresh one: its own data root; on another machine, its own ID too).
    to_other = Tunnel(fresh_engine.host.removeprefix("unix://"))
    try:
        main = docker.DockerClient(base_url=to_main.host, timeout=30)
        other = docker.DockerClient(base_url=to_other.host, timeout=30)
        local = f"unix://{main_socket}"
        assert ports.engine_is_here(main, to_main.host, local) is True
        assert ports.engine_is_here(other, to_other.host, local) is False
        # The text alone still decides where it can: a socket here, an address elsewhere.
        assert ports.engine_is_here(other, fresh_engine.host, local) is True
        assert ports.engine_is_here(main, "tcp://10.213.0.6:2375", local) is False
    finally:
        to_main.close()
        to_other.close()
