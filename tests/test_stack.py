"""The smoke stack's environment: literal values pass, bare names come from the environment and
are the secrets every message the stack shows is cleaned of (pure parts; test_ci_e2e and
test_adoption run the stack for real); and two stacks of one commit at once on one engine."""

from __future__ import annotations

import threading

import docker
import pytest

from buildtools import stack
from buildtools.config import ServiceConfig, SmokeConfig
from buildtools.errors import BuildToolsError
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
