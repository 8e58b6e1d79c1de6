"""Logging in to a registry: the challenge, the token, and the one clear line when refused.

Basic auth runs against a real docker-registry with htpasswd; bearer tokens against the
in-process stand-in of :mod:`tests.fixtures.token_registry` (Docker Hub cannot be reached from
CI). Challenge and scope parsing are pure.
"""

from __future__ import annotations

import secrets

import pytest

import testbed
from buildtools.registry.auth import parse_challenge, push_scope, scope_covers
from buildtools.registry.failures import AuthError, CredentialsMissing
from tests.fixtures.registry_client import client_for
from tests.fixtures.token_registry import TokenRegistry


def test_a_bearer_challenge_names_its_realm_service_and_scope() -> None:
    header = (
        'Bearer realm="https://auth.example.org/token",service=registry.example.org,'
        'scope="repository:lara/app:pull,push"'
    )
    assert parse_challenge(header) == (
        "bearer",
        {
            "realm": "https://auth.example.org/token",
            "service": "registry.example.org",
            "scope": "repository:lara/app:pull,push",
        },
    )
    assert parse_challenge('Basic realm="Registry Realm"') == ("basic", {"realm": "Registry Realm"})


def test_a_push_token_also_reads_but_a_pull_token_does_not_push() -> None:
    both = push_scope(["lara/app", "lara/nginx"])
    assert scope_covers(both, "repository:lara/nginx:pull")
    assert not scope_covers(both, "repository:lara/other:pull")
    assert not scope_covers("repository:lara/app:pull", push_scope(["lara/app"]))
    assert not scope_covers(both, "")  # nothing asked for: no token is lent


@pytest.mark.registry
def test_htpasswd_registry_needs_a_login_and_accepts_the_right_one(
    fast_registry: testbed.LocalRegistry,
) -> None:
    reg = fast_registry
    with pytest.raises(CredentialsMissing):
        client_for(reg.host).tags("lara/app")
    client = client_for(reg.host, reg.username, reg.password)
    client.check_access(["lara/app"])
    assert client.tags("lara/app") == []


@pytest.mark.registry
def test_wrong_password_is_refused_at_once_without_showing_it(
    fast_registry: testbed.LocalRegistry,
) -> None:
    sleeps: list[float] = []
    wrong = "wrong-" + secrets.token_hex(8)
    client = client_for(fast_registry.host, fast_registry.username, wrong, sleeps=sleeps)

    with pytest.raises(AuthError) as failure:
        client.check_access(["lara/app"])

    message = str(failure.value)
    assert f"registry {fast_registry.host} rejected the login of user" in message
    assert "TEST_USER/TEST_PASSWORD" in message
    assert wrong not in message and wrong not in repr(client)
    assert sleeps == []


@pytest.mark.registry
def test_missing_credentials_name_the_variables_to_set(
    fast_registry: testbed.LocalRegistry,
) -> None:
    port = fast_registry.port
    with pytest.raises(CredentialsMissing) as failure:
        client_for(fast_registry.host).check_access(["lara/app"])
    assert f"DOCKER_USERNAME_127_0_0_1_{port}" in str(failure.value)
    assert f"DOCKER_PASSWORD_127_0_0_1_{port}" in str(failure.value)


def test_bearer_login_gets_a_scoped_token_and_reads_tags(token_registry: TokenRegistry) -> None:
    reg = token_registry
    with pytest.raises(CredentialsMissing):
        client_for(reg.host).check_access(["org/app"])
    client = client_for(reg.host, reg.user, reg.password)

    client.check_access(["org/app"])

    assert reg.token_requests[0]["service"] == ["stand-in"]
    assert reg.token_requests[0]["scope"] == ["repository:org/app:pull,push"]
    assert client.tags("org/app") == ["1.0.0", "latest"]


def test_bearer_login_without_push_access_is_refused_before_pushing(
    token_registry: TokenRegistry,
) -> None:
    reg = token_registry
    with pytest.raises(AuthError, match="does not let user 'robot' push to org/other"):
        client_for(reg.host, reg.user, reg.password).check_access(["org/app", "org/other"])


def test_bearer_wrong_password_is_refused(token_registry: TokenRegistry) -> None:
    reg = token_registry
    sleeps: list[float] = []
    client = client_for(reg.host, reg.user, "wrong", sleeps=sleeps)
    with pytest.raises(AuthError, match="rejected the login of user 'robot'"):
        client.check_access(["org/app"])
    assert sleeps == []


def test_bearer_anonymous_reads_use_an_anonymous_token(token_registry: TokenRegistry) -> None:
    assert client_for(token_registry.host).tags("org/app") == ["1.0.0", "latest"]
