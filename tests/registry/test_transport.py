"""One exchange with a registry on our terms (#27 items 1, 4, 20): where credentials go, how
much of an answer is read, and what a TLS failure means.

The hostile registry of :mod:`tests.fixtures.hostile_registry` is a real HTTPS and HTTP
server on one loopback port: it tells the lies a real registry would not. The plain-HTTP
case runs against the real docker-registry named with ``https://``. No mocks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

import testbed
from buildtools.errors import BuildToolsError
from buildtools.plan.manifests import DOCKER_MANIFEST
from tests.fixtures.hostile_registry import HostileRegistry, Reply, basic, zeros
from tests.fixtures.registry_client import client_for

USER, PASSWORD = "robot", "pa55-in-clear?"


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def logged_in(hostile: HostileRegistry) -> None:
    hostile.challenge = 'Basic realm="hostile"'


# -- 1: credentials only to the scheme, host and port configured --


def _link_to_http(hostile: HostileRegistry) -> Callable[[], object]:
    page = f'<{hostile.plain_url}/v2/org/app/tags/list?last=1.0.0>; rel="next"'
    hostile.routes["/v2/org/app/tags/list"] = lambda method, path: Reply(
        200, {"Link": page}, b'{"tags": ["1.0.0"]}'
    )
    client = client_for(f"https://{hostile.host}", USER, PASSWORD)
    return lambda: client.tags("org/app")


def _location_to_http(hostile: HostileRegistry) -> Callable[[], object]:
    hostile.routes["/v2/org/app/blobs/uploads/"] = lambda method, path: Reply(
        202, {"Location": f"{hostile.plain_url}/upload/1"}
    )
    hostile.routes["/upload/1"] = lambda method, path: Reply(201)
    client = client_for(f"https://{hostile.host}", USER, PASSWORD)
    return lambda: client.put_blob("org/app", digest(b"{}"), b"{}", ask_first=False)


def _redirect_to_http(hostile: HostileRegistry) -> Callable[[], object]:
    config = b"{}"
    hostile.routes[f"/v2/org/app/blobs/{digest(config)}"] = lambda method, path: Reply(
        307, {"Location": f"{hostile.plain_url}/storage/blob"}
    )
    hostile.routes["/storage/blob"] = lambda method, path: Reply(200, body=config)
    client = client_for(f"https://{hostile.host}", USER, PASSWORD)
    return lambda: client.blob("org/app", digest(config))


@pytest.mark.parametrize("lure", [_link_to_http, _location_to_http, _redirect_to_http])
def test_nothing_is_sent_to_plain_http_on_the_registry_s_say_so(
    hostile: HostileRegistry, lure: Callable[[HostileRegistry], Callable[[], object]]
) -> None:
    """A tag list's Link, an upload's Location or a redirect to http://same-host:same-port:
    the password never crosses in clear, and the request is not made at all."""
    logged_in(hostile)
    call = lure(hostile)

    with pytest.raises(BuildToolsError) as failure:
        call()

    assert [s for s in hostile.in_clear() if s.authorization] == []
    assert hostile.in_clear() == []
    assert f"registry {hostile.host} pointed" in str(failure.value)
    assert "it leaves https" in str(failure.value)
    assert PASSWORD not in str(failure.value)
    # Over https the login did go to the registry itself.
    assert basic(USER, PASSWORD) in {s.authorization for s in hostile.seen}


# -- 4: answers within their limits --


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_400_mib_manifest_is_refused_without_being_downloaded(
    hostile: HostileRegistry, declared: bool
) -> None:
    """Registries refuse manifests over 4 MiB: one served anyway stops the read at the limit
    (at once when its length is declared), and the client says which and where."""
    size = 400 * 1024 * 1024
    path = "/v2/org/app/manifests/1.0.0"
    hostile.routes[path] = lambda method, _: Reply(
        200,
        {"Content-Type": DOCKER_MANIFEST},
        zeros(size),
        length=size if declared else None,
    )
    with pytest.raises(BuildToolsError) as failure:
        client_for(f"https://{hostile.host}").manifest_bytes("org/app", "1.0.0")

    assert str(failure.value).startswith(f"registry {hostile.host}: manifest org/app:1.0.0 is ")
    assert "over the 4 MiB limit; not read" in str(failure.value)
    # What left the server before the client hung up: the limit and a socket buffer or two.
    assert hostile.sent.get(path, 0) < 64 * 1024 * 1024


def test_a_layer_blob_is_streamed_to_a_file_and_checked(
    hostile: HostileRegistry, tmp_path: Path
) -> None:
    """Layer blobs have no limit: 40 MiB stream into a file as they come; one whose bytes are
    not its digest's is removed and named."""
    size = 40 * 1024 * 1024
    good = "sha256:" + hashlib.sha256(bytes(size)).hexdigest()
    wrong = digest(b"something else")
    for name in (good, wrong):
        hostile.routes[f"/v2/org/app/blobs/{name}"] = lambda method, _: Reply(200, body=zeros(size))
    client = client_for(f"https://{hostile.host}")

    assert client.copy_blob("org/app", good, tmp_path / "layer") == size
    assert (tmp_path / "layer").stat().st_size == size
    with pytest.raises(BuildToolsError) as failure:
        client.copy_blob("org/app", wrong, tmp_path / "bad")
    assert f"registry {hostile.host} served blob org/app@{wrong} with bytes of digest" in str(
        failure.value
    )
    assert not (tmp_path / "bad").exists()


# -- 20: a TLS failure is named, and not retried --


@pytest.mark.registry
def test_a_plain_http_registry_named_as_https_says_so_after_one_try(
    fast_registry: testbed.LocalRegistry,
) -> None:
    """A GitLab runner's registry on the dind network speaks plain HTTP: configured without
    http:// (here: with https:// on loopback, where http is otherwise assumed), the first
    handshake error says what it is and how to write it; no retries."""
    sleeps: list[float] = []
    host = fast_registry.host
    client = client_for(f"https://{host}", fast_registry.username, "x", sleeps=sleeps)

    with pytest.raises(BuildToolsError) as failure:
        client.check_access(["org/app"])

    assert str(failure.value) == (
        f"registry {host}: {host} answers plain HTTP, not HTTPS (fix: if that is intended "
        f"(e.g. a CI runner's own registry), write it as http://{host} in "
        f"buildtools.release.registries and list {host} in the engine's insecure-registries)"
    )
    assert sleeps == []


def test_an_untrusted_certificate_is_named_once(
    hostile: HostileRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    sleeps: list[float] = []

    with pytest.raises(BuildToolsError) as failure:
        client_for(f"https://{hostile.host}", sleeps=sleeps).tags("org/app")

    assert f"the TLS certificate of {hostile.host} is not trusted here" in str(failure.value)
    assert sleeps == []
    assert hostile.seen == []  # the handshake failed: no request was ever made
