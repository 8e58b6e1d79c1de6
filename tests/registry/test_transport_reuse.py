"""What a request costs beyond the registry's answer: a HEAD (one per tag in `invoke prune`)
gives its connection back for the next request, and the environment's proxy and CA settings
are read once per origin, yet are the ones requests itself would use for each URL.

Against the hostile registry of :mod:`tests.fixtures.hostile_registry` (a real HTTPS server
that counts the connections it accepts); no mocks.
"""

from __future__ import annotations

import hashlib

import pytest
import requests

from buildtools.plan.manifests import DOCKER_MANIFEST
from buildtools.registry.transport import Session
from tests.fixtures.hostile_registry import HostileRegistry, Reply
from tests.fixtures.registry_client import client_for

MANIFEST = b'{"schemaVersion": 2}'
DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()


def test_heads_of_many_tags_share_one_connection(hostile: HostileRegistry) -> None:
    hostile.challenge = 'Basic realm="hostile"'
    tags = [f"sha-{n:07x}" for n in range(30)]
    for tag in tags:
        hostile.routes[f"/v2/org/app/manifests/{tag}"] = lambda method, path: Reply(
            200, {"Docker-Content-Digest": DIGEST, "Content-Type": DOCKER_MANIFEST}, MANIFEST
        )
    client = client_for(f"https://{hostile.host}", "robot", "secret")

    found = [client.digest("org/app", tag) for tag in tags]

    assert found == [DIGEST] * len(tags)
    assert [s.method for s in hostile.seen].count("HEAD") == len(tags) + 1  # + the 401's
    assert hostile.connections == 1


@pytest.mark.parametrize(
    "url",
    [
        "https://registry.example.org/v2/org/app/manifests/1.0.0",
        "https://registry.example.org:5000/v2/",
        "http://10.0.0.2:5000/v2/org/app/tags/list?n=1000",
        "https://inside.example.net/v2/",
        "https://storage.example.com/blobs/sha256:00?sig=x",
    ],
)
def test_environment_settings_are_those_requests_uses_for_each_url(
    url: str, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example.org:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://plain-proxy.example.org:3128")
    monkeypatch.setenv("NO_PROXY", "inside.example.net,10.0.0.2")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    ours, theirs = Session(), requests.Session()
    others = ["https://registry.example.org/v2/", "https://inside.example.net/v2/x"]

    for other in [*others, url, *others, url]:  # whatever was asked before, per origin
        got = ours.merge_environment_settings(other, {}, True, None, None)
        assert got == theirs.merge_environment_settings(other, {}, True, None, None)
