"""The smoke stack's environment: literal values pass, bare names come from the environment and
are the secrets every message the stack shows is cleaned of (pure parts; test_ci_e2e and
test_adoption run the stack for real)."""

from __future__ import annotations

import pytest

from buildtools import stack
from buildtools.config import ServiceConfig, SmokeConfig
from buildtools.errors import BuildToolsError

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
