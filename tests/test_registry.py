"""The registry HTTP API client against a real docker-registry (htpasswd, Basic auth).

Bearer-token auth (Docker Hub, GHCR) cannot be reached from CI and the Debian registry's
token mode needs a signing PKI, so it is tested against a small in-process token registry
that speaks the same challenge/token protocol; it is marked as such below.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import docker
import pytest
from hypothesis import given
from hypothesis import strategies as st

from buildtools import testbed
from buildtools.credentials import Credentials
from buildtools.errors import BuildToolsError
from buildtools.registry import (
    DOCKER_MANIFEST,
    AuthError,
    CredentialsMissing,
    RegistryClient,
    RetryPolicy,
    Unreachable,
    parse_registry,
    registry_versions,
    semver_tags,
)
from tests.fixtures.flaky_proxy import FlakyProxy


def client_for(
    host: str,
    username: str | None = None,
    password: str | None = None,
    retries: int = 3,
    sleeps: list[float] | None = None,
    max_delay: float = 0.05,
) -> RegistryClient:
    recorded = sleeps if sleeps is not None else []
    policy = RetryPolicy(retries, 0.01, max_delay, sleep=recorded.append)
    login = Credentials(username, password, "TEST_USER/TEST_PASSWORD") if username else None
    return RegistryClient(parse_registry(host), login, policy)


def push(
    docker_client: docker.DockerClient, reg: testbed.LocalRegistry, image_id: str, ref: str
) -> str:
    """Push with the docker SDK directly (not our code); the digest the engine reported."""
    repository, tag = ref.rsplit(":", 1)
    docker_client.api.tag(image_id, f"{reg.host}/{repository}", tag)
    auth = {"username": reg.username, "password": reg.password}
    lines = list(
        docker_client.api.push(
            f"{reg.host}/{repository}", tag=tag, stream=True, decode=True, auth_config=auth
        )
    )
    docker_client.api.remove_image(f"{reg.host}/{repository}:{tag}", noprune=True)
    assert not [line for line in lines if "error" in line], lines
    return next(line["aux"]["Digest"] for line in lines if "aux" in line)


# --- where a registry is ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "name", "url"),
    [
        ("", "docker.io", "https://registry-1.docker.io"),
        ("docker.io", "docker.io", "https://registry-1.docker.io"),
        ("index.docker.io", "docker.io", "https://registry-1.docker.io"),
        ("ghcr.io", "ghcr.io", "https://ghcr.io"),
        (
            "Registry.Example.org:5000",
            "registry.example.org:5000",
            "https://registry.example.org:5000",
        ),
        ("127.0.0.1:5000", "127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("localhost:5000", "localhost:5000", "http://localhost:5000"),
        ("http://build-cache:5000/", "build-cache:5000", "http://build-cache:5000"),
        ("https://127.0.0.1:5443", "127.0.0.1:5443", "https://127.0.0.1:5443"),
    ],
)
def test_registry_entries(entry: str, name: str, url: str) -> None:
    registry = parse_registry(entry)
    assert (registry.name, registry.url) == (name, url)


def test_docker_hub_names() -> None:
    hub = parse_registry("")
    assert hub.push_name("lara/app") == "lara/app"
    assert hub.api_name("lara/app") == "lara/app"
    assert hub.api_name("nginx") == "library/nginx"
    other = parse_registry("ghcr.io")
    assert other.push_name("lara/app") == "ghcr.io/lara/app"
    assert other.api_name("nginx") == "nginx"


@pytest.mark.parametrize("entry", ["ghcr.io/concord", "user:pw@ghcr.io", "a b"])
def test_registry_entries_that_are_not_hosts_are_refused(entry: str) -> None:
    with pytest.raises(BuildToolsError, match="is not a host"):
        parse_registry(entry)


# --- retries ---------------------------------------------------------------------------------


@given(
    retry=st.integers(0, 40),
    base=st.floats(0.001, 10),
    cap=st.floats(0.001, 120),
    draw=st.floats(0, 1),
    retry_after=st.none() | st.floats(0, 1000),
)
def test_backoff_grows_is_jittered_and_bounded(
    retry: int, base: float, cap: float, draw: float, retry_after: float | None
) -> None:
    policy = RetryPolicy(5, base, cap, random=lambda: draw)
    wait = policy.delay(retry, retry_after)
    ceiling = min(cap, base * 2**retry)
    assert wait <= max(ceiling, min(retry_after or 0, cap)) + 1e-9
    assert wait >= ceiling / 2 - 1e-9
    assert wait <= cap + 1e-9


def test_backoff_doubles_until_the_cap() -> None:
    policy = RetryPolicy(10, 1.0, 30.0, random=lambda: 1.0)
    assert [policy.delay(n) for n in range(7)] == [1, 2, 4, 8, 16, 30, 30]


# --- a real registry -------------------------------------------------------------------------


def test_htpasswd_registry_needs_a_login_and_accepts_the_right_one(
    fast_registry: testbed.LocalRegistry,
) -> None:
    reg = fast_registry
    with pytest.raises(CredentialsMissing):
        client_for(reg.host).tags("lara/app")
    client = client_for(reg.host, reg.username, reg.password)
    client.check_access(["lara/app"])
    assert client.tags("lara/app") == []


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


def test_missing_credentials_name_the_variables_to_set(
    fast_registry: testbed.LocalRegistry,
) -> None:
    port = fast_registry.port
    with pytest.raises(CredentialsMissing) as failure:
        client_for(fast_registry.host).check_access(["lara/app"])
    assert f"DOCKER_USERNAME_127_0_0_1_{port}" in str(failure.value)
    assert f"DOCKER_PASSWORD_127_0_0_1_{port}" in str(failure.value)


def test_tags_and_digests_of_a_pushed_image(
    docker_client: docker.DockerClient,
    fast_registry: testbed.LocalRegistry,
    make_image: Callable[..., str],
) -> None:
    reg = fast_registry
    image_id = make_image("registry client")
    pushed = push(docker_client, reg, image_id, "lbt/api:1.0.0")
    client = client_for(reg.host, reg.username, reg.password)

    assert client.tags("lbt/api") == ["1.0.0"]
    assert client.digest("lbt/api", "1.0.0") == pushed
    manifest = client.manifest("lbt/api", "1.0.0")
    assert manifest is not None
    assert manifest.digest == pushed
    assert manifest.media_type == DOCKER_MANIFEST
    assert manifest.config_digest == image_id
    assert client.digest("lbt/api", pushed) == pushed  # by digest, too
    assert client.digest("lbt/api", "2.0.0") is None
    assert client.manifest("lbt/api", "2.0.0") is None
    assert client.tags("lbt/never-pushed") == []


def test_transient_errors_are_retried_with_backoff(fast_registry: testbed.LocalRegistry) -> None:
    reg = fast_registry
    proxy = FlakyProxy(reg.host, failures=2, status=503).start()
    sleeps: list[float] = []
    try:
        client = client_for(proxy.host, reg.username, reg.password, retries=3, sleeps=sleeps)
        assert client.tags("lbt/none") == []
    finally:
        proxy.stop()
    assert len(proxy.failed) == 2 and len(sleeps) == 2
    assert 0.005 <= sleeps[0] <= 0.01 and 0.01 <= sleeps[1] <= 0.02  # base 0.01, doubling


def test_rate_limits_wait_as_long_as_the_registry_asks_within_the_bound(
    fast_registry: testbed.LocalRegistry,
) -> None:
    reg = fast_registry
    proxy = FlakyProxy(reg.host, failures=1, status=429, retry_after="7").start()
    sleeps: list[float] = []
    try:
        client = client_for(proxy.host, reg.username, reg.password, sleeps=sleeps, max_delay=5)
        assert client.tags("lbt/none") == []
    finally:
        proxy.stop()
    assert sleeps == [5]  # Retry-After: 7, capped by max_delay


def test_a_registry_that_keeps_failing_is_unreachable_after_the_retries(
    fast_registry: testbed.LocalRegistry,
) -> None:
    proxy = FlakyProxy(fast_registry.host, failures=100, status=502).start()
    sleeps: list[float] = []
    try:
        with pytest.raises(Unreachable) as failure:
            client_for(proxy.host, retries=2, sleeps=sleeps).check_access(["lara/app"])
    finally:
        proxy.stop()
    assert "failed 3 times, last: HTTP 502" in str(failure.value)
    assert len(proxy.failed) == 3 and len(sleeps) == 2


def test_closed_port_is_unreachable_after_the_retries() -> None:
    closed = f"127.0.0.1:{testbed.free_port()}"
    sleeps: list[float] = []
    with pytest.raises(Unreachable) as failure:
        client_for(closed, "u", "p", retries=2, sleeps=sleeps).check_access(["lara/app"])
    assert f"registry {closed} is unreachable" in str(failure.value)
    assert "connection refused" in str(failure.value)
    assert len(sleeps) == 2


def test_registry_versions_are_the_semver_tags_of_every_registry(
    docker_client: docker.DockerClient,
    fast_registry: testbed.LocalRegistry,
    second: testbed.LocalRegistry,
    make_image: Callable[..., str],
) -> None:
    image_id = make_image("versions")
    for ref in ("lbt/app:2.0.0", "lbt/app:latest", "lbt/app:2.0", "lbt/app:sha-abc1234"):
        push(docker_client, fast_registry, image_id, ref)
    for ref in ("lbt/nginx:1.4.9", "lbt/app:3.0.0-rc.1"):
        push(docker_client, second, image_id, ref)
    clients = [
        client_for(fast_registry.host, fast_registry.username, fast_registry.password),
        client_for(second.host, second.username, second.password),
    ]
    assert registry_versions(clients, ["lbt/app", "lbt/nginx"]) == [
        "1.4.9",
        "2.0.0",
        "3.0.0-rc.1",
    ]


def test_semver_tags_keep_only_release_versions() -> None:
    names = ["1.2.3", "1.2", "1", "latest", "sha-abc1234", "1.2.4-rc.1", "1.2.3_build.5", "edge"]
    assert semver_tags(names) == ["1.2.3", "1.2.4-rc.1", "1.2.3+build.5"]


# --- bearer tokens (a stand-in token registry: Docker Hub is not reachable from CI) ----------


class TokenRegistry:
    """Just enough of a token-auth registry: a /v2/ challenge, a /token realm, tags lists.

    ``grants`` maps ``user -> {repository: actions}``; the token is a JWT-shaped string whose
    ``access`` claim lists what was granted, as Docker Hub's tokens do.
    """

    def __init__(self, user: str, password: str, grants: dict[str, str]) -> None:
        self.user, self.password, self.grants = user, password, grants
        self.tags = ["1.0.0", "latest"]
        self.page_size = 100
        self.pages_served = 0
        self.token_requests: list[dict[str, list[str]]] = []
        self.issued: dict[str, list[dict]] = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def _token(self, access: list[dict]) -> str:
        def part(data: dict) -> str:
            return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

        token = f"{part({'alg': 'none'})}.{part({'access': access})}.{secrets.token_hex(8)}"
        self.issued[token] = access
        return token

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def reply(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def challenge(self, scope: str = "") -> None:
                realm = f"http://{registry.host}/token"
                value = f'Bearer realm="{realm}",service="stand-in"'
                value += f',scope="{scope}"' if scope else ""
                self.reply(401, {"errors": [{"code": "UNAUTHORIZED"}]}, {"WWW-Authenticate": value})

            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                auth = self.headers.get("Authorization", "")
                if url.path == "/token":
                    query = urllib.parse.parse_qs(url.query)
                    registry.token_requests.append(query)
                    user = None
                    if auth.startswith("Basic "):
                        given = base64.b64decode(auth[6:]).decode()
                        if given != f"{registry.user}:{registry.password}":
                            return self.reply(401, {"details": "incorrect username or password"})
                        user = registry.user
                    access = []
                    for scope in " ".join(query.get("scope", [])).split():
                        _, name, wanted = scope.split(":")
                        allowed = set(registry.grants.get(name, "").split(",")) if user else set()
                        allowed |= {"pull"}
                        actions = [a for a in wanted.split(",") if a in allowed]
                        access.append({"type": "repository", "name": name, "actions": actions})
                    return self.reply(200, {"token": registry._token(access)})
                token = auth[7:] if auth.startswith("Bearer ") else None
                if token not in registry.issued:
                    return self.challenge()
                if url.path == "/v2/":
                    return self.reply(200, {})
                name = url.path[len("/v2/") : -len("/tags/list")]
                granted = [a for a in registry.issued[token] if a["name"] == name]
                if not granted or "pull" not in granted[0]["actions"]:
                    return self.challenge(f"repository:{name}:pull")
                # Paginated like Docker Hub and GHCR (n, last, a Link header to the next page).
                query = urllib.parse.parse_qs(url.query)
                size = min(int(query.get("n", ["1000"])[0]), registry.page_size)
                last = query.get("last", [""])[0]
                rest = registry.tags[registry.tags.index(last) + 1 :] if last else registry.tags
                page, more = rest[:size], len(rest) > size
                registry.pages_served += 1
                link = (
                    {"Link": f'<{url.path}?n={size}&last={page[-1]}>; rel="next"'} if more else {}
                )
                return self.reply(200, {"name": name, "tags": page}, link)

        return Handler

    def __enter__(self) -> TokenRegistry:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def token_registry() -> Iterator[TokenRegistry]:
    with TokenRegistry("robot", "s3cret-" + secrets.token_hex(4), {"org/app": "pull,push"}) as reg:
        yield reg


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


def test_tags_are_read_across_pages(token_registry: TokenRegistry) -> None:
    # Debian's docker-registry (2.8) ignores ?n= and answers in one page, so paging is
    # checked against the stand-in, which pages the way Docker Hub and GHCR do.
    token_registry.tags = [f"0.1.{n}" for n in range(250)] + ["latest"]
    token_registry.page_size = 40

    found = client_for(token_registry.host).tags("org/app")

    assert found == token_registry.tags
    assert token_registry.pages_served == 7


def test_bearer_anonymous_reads_use_an_anonymous_token(token_registry: TokenRegistry) -> None:
    assert client_for(token_registry.host).tags("org/app") == ["1.0.0", "latest"]


def test_registry_is_not_confused_with_another_service(
    fast_registry: testbed.LocalRegistry,
) -> None:
    # A web server that is not a registry: its /v2/ is a 404.
    proxy = FlakyProxy(fast_registry.host, failures=1, status=404, body=b"not found").start()
    try:
        with pytest.raises(BuildToolsError, match="not a Docker registry"):
            client_for(proxy.host).check_access(["lara/app"])
    finally:
        proxy.stop()
