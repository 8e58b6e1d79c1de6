"""Logging in to a registry: the challenge, the token, and the one clear line when refused.

Basic auth runs against a real docker-registry with htpasswd; bearer tokens against the
in-process stand-in of :mod:`tests.fixtures.token_registry` (Docker Hub cannot be reached from
CI). Challenge and scope parsing are pure. Realms that must not get the credentials are
named by :mod:`tests.fixtures.hostile_registry`, a real HTTPS and HTTP server on one port.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

import testbed
from buildtools.errors import BuildToolsError
from buildtools.registry.auth import parse_challenge, push_scope, scope_covers
from buildtools.registry.failures import AuthError, CredentialsMissing
from tests.fixtures.hostile_registry import HostileRegistry, Reply, basic
from tests.fixtures.registry_client import client_for
from tests.fixtures.token_registry import TokenRegistry

PASSWORD = "pa55-in-clear?"


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


# -- the realm is the registry's word: checked before the credentials go there (#27 item 2) --


def _realm_lure(hostile: HostileRegistry, token_registry: TokenRegistry, where: str) -> str:
    return {
        "http on another host": f"http://{token_registry.host}/token",
        "http on the same host and port": f"{hostile.plain_url}/token",
        "not http at all": "file:///etc/passwd",
    }[where]


@pytest.mark.parametrize(
    "where", ["http on another host", "http on the same host and port", "not http at all"]
)
def test_an_https_registry_s_realm_gets_no_credentials_in_clear(
    hostile: HostileRegistry, token_registry: TokenRegistry, where: str
) -> None:
    realm = _realm_lure(hostile, token_registry, where)
    hostile.challenge = f'Bearer realm="{realm}",service="hostile"'
    sleeps: list[float] = []
    client = client_for(f"https://{hostile.host}", "robot", PASSWORD, sleeps=sleeps)

    with pytest.raises(BuildToolsError) as failure:
        client.check_access(["org/app"])

    assert token_registry.token_requests == []
    assert hostile.in_clear() == []
    assert str(failure.value).startswith(f"registry {hostile.host} asked for a bearer token from")
    assert PASSWORD not in str(failure.value)
    assert sleeps == []
    assert client.credentials_go_to() == []


def test_an_https_realm_on_another_host_gets_them_and_says_so(
    hostile: HostileRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Docker Hub's realm is auth.docker.io, GitLab's the GitLab host: another https host is
    fine, and the client can say where the login went (what --dry-run prints)."""
    with HostileRegistry(tmp_path / "auth") as auth:
        bundle = tmp_path / "bundle.pem"
        bundle.write_bytes(hostile.cert.read_bytes() + auth.cert.read_bytes())
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
        auth.routes["/token"] = lambda method, path: Reply(200, body=b'{"token": "opaque-1"}')
        hostile.challenge = f'Bearer realm="{auth.url}/token",service="hostile"'
        hostile.routes["/v2/"] = lambda method, path: Reply(200, body=b"{}")
        client = client_for(f"https://{hostile.host}", "robot", PASSWORD)

        client.check_access(["org/app"])

        assert client.credentials_go_to() == [f"{auth.url}/token (bearer token server)"]
        assert [s.authorization for s in auth.seen] == [basic("robot", PASSWORD)]
        assert all(s.scheme == "https" for s in auth.seen + hostile.seen)
        assert hostile.seen[-1].authorization == "Bearer opaque-1"


def test_a_plain_http_registry_may_name_an_http_realm(token_registry: TokenRegistry) -> None:
    """The stand-in is plain HTTP on loopback with an http realm: allowed, and reported."""
    client = client_for(token_registry.host, token_registry.user, token_registry.password)
    client.check_access(["org/app"])
    assert client.credentials_go_to() == [
        f"http://{token_registry.host}/token (bearer token server)"
    ]
