"""The smoke stack's environment: literal values pass, bare names come from the environment and
are the secrets every message the stack shows is cleaned of; where `invoke up`'s URL points for
each kind of DOCKER_HOST; how an answer read inside the stack's network is parsed (pure parts;
test_ci_e2e, test_adoption and test_remote_engine run the stack for real); and two stacks of
one commit at once on one engine."""

from __future__ import annotations

import io
import secrets
import threading
import time

import docker
import pytest

from buildtools import stack
from buildtools.config import ServiceConfig, SmokeConfig
from buildtools.errors import BuildToolsError
from tests.fixtures.held_images import discard
from tests.fixtures.sidecar import project_settings

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
    assert stack.engine_host(docker_host) == host
    assert stack.publish_address(docker_host) == bind


def test_an_answer_read_inside_the_network_is_parsed_like_a_browser_would() -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\nServer: nginx\r\nCache-Control: max-age=31536000, immutable\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n<p>LARA 1.2.3 \xc3\xa9</p>"
    )
    answer = stack.parse_response(raw)
    assert answer.status == 200
    assert answer.headers["cache-control"] == "max-age=31536000, immutable"
    assert answer.text == "<p>LARA 1.2.3 \u00e9</p>"
    chunked = stack.parse_response(
        b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4\r\nno s\r\n4\r\nuch!\r\n0\r\n\r\n"
    )
    assert (chunked.status, chunked.text) == (404, "no such!")


@pytest.mark.parametrize("raw", [b"", b"bash: connect: Connection refused\n", b"SSH-2.0-x\r\n\r\n"])
def test_no_http_answer_is_not_mistaken_for_one(raw: bytes) -> None:
    with pytest.raises(ValueError, match="not an HTTP response"):
        stack.parse_response(raw)


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
    running = stack.Stack(f"lbt-nobash-{secrets.token_hex(3)}", "")
    sidecar = docker_client.containers.run(
        image.id, ["sleep", "300"], name=running.sidecar, detach=True
    )
    try:
        started = time.monotonic()
        with pytest.raises(BuildToolsError) as caught:
            stack.wait_for(docker_client, running, "/", seconds=60)
        assert time.monotonic() - started < 10
    finally:
        sidecar.remove(force=True)
        discard(docker_client, image.id)
    message = str(caught.value)
    assert "the sidecar image has no bash" in message and "did not answer" not in message
    assert "\n" not in message
