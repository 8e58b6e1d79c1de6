"""The registry HTTP API client against a real docker-registry (htpasswd, Basic auth): tags,
manifests and digests of images the docker SDK pushed, and the release versions it finds.

Tag paging is checked against the in-process stand-in of :mod:`tests.fixtures.token_registry`,
which pages the way Docker Hub and GHCR do; what a hostile registry serves (JSON of the wrong
shape, bytes that are not their digest) against :mod:`tests.fixtures.hostile_registry`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import docker
import pytest

import testbed
from buildtools.errors import BuildToolsError
from buildtools.plan import manifest_rewrite
from buildtools.plan.manifests import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from buildtools.registry.client import registry_versions
from buildtools.release.promote import read_source
from tests.fixtures.flaky_proxy import FlakyProxy
from tests.fixtures.hostile_registry import HostileRegistry, Reply
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


def test_a_long_tag_list_takes_a_request_per_thousand_tags(token_registry: TokenRegistry) -> None:
    # 1,000 per page is what ECR and docker-registry 3.1 (its default maxtags) serve at most:
    # a year of CI tags in a few requests, not one per hundred.
    token_registry.tags = [f"sha-{n:07x}" for n in range(2_500)]
    token_registry.page_size = 1_000

    found = client_for(token_registry.host).tags("org/app")

    assert found == token_registry.tags
    assert token_registry.pages_served == 3


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


# -- what a registry serves is checked before it is used (#27 items 3 and 4) --

CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
DEEP = b"[" * 10_000 + b"]" * 10_000


def _manifest(config_bytes: bytes, **changes: object) -> bytes:
    descriptor = {
        "mediaType": CONFIG_TYPE,
        "size": len(config_bytes),
        "digest": "sha256:" + hashlib.sha256(config_bytes).hexdigest(),
    }
    body = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": descriptor, "layers": []}
    return json.dumps({**body, **changes}).encode()


GOOD_CONFIG = b'{"config": {"Labels": {"org.opencontainers.image.revision": "abc"}}}'
HOSTILE = {
    "wrong types": (
        _manifest(GOOD_CONFIG, config="sha256:abc", layers=5),
        GOOD_CONFIG,
        "manifest org/app:sha-abc is unusable: config is a string, not an object",
    ),
    "deep nesting": (DEEP, GOOD_CONFIG, "manifest org/app:sha-abc is unusable: its manifest is"),
    "a path for a digest": (
        json.dumps(
            {
                "mediaType": OCI_INDEX,
                "manifests": [{"mediaType": OCI_MANIFEST, "digest": "../../_catalog", "size": 2}],
            }
        ).encode(),
        GOOD_CONFIG,
        "manifests[0].digest is a string, not a sha256 or sha512 digest",
    ),
    "a config of wrong types": (
        _manifest(b'{"config": {"Labels": ["a"]}}'),
        b'{"config": {"Labels": ["a"]}}',
        "is unusable: config.Labels is a list, not an object",
    ),
    "a deeply nested config": (
        _manifest(DEEP),
        DEEP,
        "is unusable: its config is nested too deeply",
    ),
}


@pytest.mark.parametrize("case", HOSTILE, ids=list(HOSTILE))
def test_hostile_json_is_one_line_naming_the_registry_and_the_reference(
    hostile: HostileRegistry, case: str
) -> None:
    """What promotion reads, served with the wrong types or 10,000 levels deep: one line
    naming the registry and what it served, never AttributeError or RecursionError."""
    manifest, config, expected = HOSTILE[case]
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    hostile.routes["/v2/org/app/manifests/sha-abc"] = lambda method, path: Reply(
        200, {"Content-Type": DOCKER_MANIFEST}, manifest
    )
    hostile.routes[f"/v2/org/app/blobs/{config_digest}"] = lambda method, path: Reply(
        200, body=config
    )
    client = client_for(f"https://{hostile.host}")

    with pytest.raises(BuildToolsError) as failure:
        source = read_source(client, "org/app", "sha-abc")
        assert source is not None
        manifest_rewrite.promote(source, manifest_rewrite.Changes({}))

    message = str(failure.value)
    assert message.startswith(f"registry {hostile.host}: "), message
    assert expected in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "tags", [b'{"tags": {"1.0.0": 1}}', b'{"tags": [1, 2]}', b"[]", DEEP], ids=str
)
def test_a_hostile_tag_list_is_one_line(hostile: HostileRegistry, tags: bytes) -> None:
    hostile.routes["/v2/org/app/tags/list"] = lambda method, path: Reply(200, body=tags)
    with pytest.raises(BuildToolsError, match=f"^registry {hostile.host}: tags of org/app: "):
        registry_versions([client_for(f"https://{hostile.host}")], ["org/app"])


def test_a_tag_whose_bytes_are_not_the_digest_the_registry_names_is_refused(
    hostile: HostileRegistry,
) -> None:
    manifest = _manifest(GOOD_CONFIG)
    named = "sha256:" + hashlib.sha256(b"the manifest it claims").hexdigest()
    hostile.routes["/v2/org/app/manifests/1.0.0"] = lambda method, path: Reply(
        200, {"Content-Type": DOCKER_MANIFEST, "Docker-Content-Digest": named}, manifest
    )
    with pytest.raises(BuildToolsError) as failure:
        client_for(f"https://{hostile.host}").manifest_bytes("org/app", "1.0.0")
    assert str(failure.value).startswith(
        f"registry {hostile.host} served manifest org/app:1.0.0 with bytes of digest "
        f"sha256:{hashlib.sha256(manifest).hexdigest()}, not {named}"
    )
