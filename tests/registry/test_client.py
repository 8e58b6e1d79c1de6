"""The registry HTTP API client against a real docker-registry (htpasswd, Basic auth): tags,
manifests and digests of images the docker SDK pushed, and the release versions it finds.

Tag paging is checked against the in-process stand-in of :mod:`tests.fixtures.token_registry`,
which pages the way Docker Hub and GHCR do.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import docker
import pytest

import testbed
from buildtools.errors import BuildToolsError
from buildtools.plan.manifests import DOCKER_MANIFEST
from buildtools.registry.client import registry_versions
from tests.fixtures.flaky_proxy import FlakyProxy
from tests.fixtures.registry_client import client_for, sdk_push
from tests.fixtures.token_registry import TokenRegistry


@pytest.mark.docker
@pytest.mark.registry
def test_tags_and_digests_of_a_pushed_image(
    docker_client: docker.DockerClient,
    fast_registry: testbed.LocalRegistry,
    make_image: Callable[..., str],
) -> None:
    reg = fast_registry
    image_id = make_image("registry client", labels={"org.example.role": "api"})
    pushed = sdk_push(docker_client, reg, image_id, "lbt/api:1.0.0")
    client = client_for(reg.host, reg.username, reg.password)

    assert client.tags("lbt/api") == ["1.0.0"]
    assert client.digest("lbt/api", "1.0.0") == pushed
    manifest = client.manifest("lbt/api", "1.0.0")
    assert manifest is not None
    assert manifest.digest == pushed
    assert manifest.media_type == DOCKER_MANIFEST
    assert manifest.config_digest == image_id
    assert client.image_labels("lbt/api", manifest) == {"org.example.role": "api"}
    assert client.digest("lbt/api", pushed) == pushed  # by digest, too
    assert client.digest("lbt/api", "2.0.0") is None
    assert client.manifest("lbt/api", "2.0.0") is None
    assert client.tags("lbt/never-pushed") == []


@pytest.mark.docker
@pytest.mark.registry
def test_registry_versions_are_the_semver_tags_of_every_registry(
    docker_client: docker.DockerClient,
    fast_registry: testbed.LocalRegistry,
    second: testbed.LocalRegistry,
    make_image: Callable[..., str],
) -> None:
    image_id = make_image("versions")
    for ref in ("lbt/app:2.0.0", "lbt/app:latest", "lbt/app:2.0", "lbt/app:sha-abc1234"):
        sdk_push(docker_client, fast_registry, image_id, ref)
    for ref in ("lbt/nginx:1.4.9", "lbt/app:3.0.0-rc.1"):
        sdk_push(docker_client, second, image_id, ref)
    clients = [
        client_for(fast_registry.host, fast_registry.username, fast_registry.password),
        client_for(second.host, second.username, second.password),
    ]
    assert registry_versions(clients, ["lbt/app", "lbt/nginx"]) == [
        "1.4.9",
        "2.0.0",
        "3.0.0-rc.1",
    ]


def test_tags_are_read_across_pages(token_registry: TokenRegistry) -> None:
    # Debian's docker-registry (2.8) ignores ?n= and answers in one page, so paging is
    # checked against the stand-in, which pages the way Docker Hub and GHCR do.
    token_registry.tags = [f"0.1.{n}" for n in range(250)] + ["latest"]
    token_registry.page_size = 40

    found = client_for(token_registry.host).tags("org/app")

    assert found == token_registry.tags
    assert token_registry.pages_served == 7


@pytest.mark.registry
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


def test_blobs_and_manifests_are_put_and_read_back_through_a_flaky_registry(
    fast_registry: testbed.LocalRegistry, flaky_proxy: Callable[..., FlakyProxy]
) -> None:
    """Promotion's writes: a blob upload (POST, then PUT with the digest) and a manifest PUT,
    each answered 503 once and sent again whole; a blob the repository has is not sent."""
    proxy = flaky_proxy(
        fast_registry.host, failures=2, match=lambda method, path, agent: method == "PUT"
    )
    client = client_for(proxy.host, fast_registry.username, fast_registry.password)
    config = b'{"config":{"Labels":{"org.example.role":"api"}},"rootfs":{"diff_ids":[]}}'
    digest = "sha256:" + hashlib.sha256(config).hexdigest()

    assert client.put_blob("lbt/put", digest, config) == len(config)
    assert client.put_blob("lbt/put", digest, config) == 0  # there already: nothing sent
    assert client.blob("lbt/put", digest) == config
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": len(config),
                "digest": digest,
            },
            "layers": [],
        }
    ).encode()
    put = client.put_manifest("lbt/put", "1.0.0", manifest, DOCKER_MANIFEST)

    assert put == "sha256:" + hashlib.sha256(manifest).hexdigest()
    assert client.manifest_bytes("lbt/put", "1.0.0") == (manifest, DOCKER_MANIFEST)
    assert client.image_labels("lbt/put", client.manifest("lbt/put", "1.0.0")) == {
        "org.example.role": "api"
    }
    assert len(proxy.failed) == 2  # both PUTs failed once and were sent again
    assert client.manifest_bytes("lbt/put", "2.0.0") is None
