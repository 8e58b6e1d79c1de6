"""registry.tag_digests and the client's deletes, against a real docker-registry: every tag's
digest in about one request per tag, deletes by digest, a registry with deletes off named."""

from __future__ import annotations

import datetime as dt

import pytest

import testbed
from buildtools.registry import tag_digests
from buildtools.registry.client import NO_MANIFEST, DeletesRefused
from tests.fixtures import history
from tests.fixtures.flaky_proxy import FlakyProxy
from tests.fixtures.registry import repos
from tests.fixtures.registry_client import client_for

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def test_every_tag_and_its_digest_in_one_request_per_tag_and_dates_only_where_asked(
    fast_registry: testbed.LocalRegistry,
) -> None:
    app, _ = repos()
    made = history.make(branches={"master": 120}, prs=(3, 40), now=NOW)
    pushed = history.push(fast_registry, app, made)
    proxy = FlakyProxy(fast_registry.host).start()
    try:
        client = client_for(proxy.host, fast_registry.username, fast_registry.password)
        found = tag_digests.read(client, app, lambda tags: [t for t in tags if t.startswith("pr-")])
    finally:
        proxy.stop()
    assert dict(found.digests) == pushed and len(pushed) > 130
    assert found.dates == {"pr-3": NOW - dt.timedelta(days=3), "pr-40": NOW - dt.timedelta(days=40)}
    # Tag pages (of 1,000), one HEAD per tag (a GET for each dated one), a config per dated image,
    # and the login's two: nothing more.
    pages = -(-len(pushed) // 1000)
    assert len(proxy.seen) <= pages + len(pushed) + 2 + 2, len(proxy.seen)


def test_a_delete_by_digest_removes_every_tag_on_it_and_a_second_finds_it_gone(
    fast_registry: testbed.LocalRegistry,
) -> None:
    app, _ = repos()
    made = history.make(releases=("1.0.0",), branches={"old": 1}, now=NOW)
    pushed = history.push(fast_registry, app, made)
    client = client_for(fast_registry.host, fast_registry.username, fast_registry.password)
    client.check_deletes(app)  # deletes are on: nothing is deleted by asking
    assert set(fast_registry.tags(app)) == set(pushed)

    assert client.delete_manifest(app, pushed["old"]) is True
    assert client.delete_manifest(app, pushed["old"]) is False
    # The branch tag and its commit's sha- tag were one image: both went.
    assert set(fast_registry.tags(app)) == {"1", "1.0", "1.0.0", "latest"}


def test_a_registry_with_deletes_off_is_named_with_what_to_do(
    no_delete_registry: testbed.LocalRegistry,
) -> None:
    app, _ = repos()
    pushed = history.push(no_delete_registry, app, history.make(releases=("1.0.0",), now=NOW))
    client = client_for(
        no_delete_registry.host, no_delete_registry.username, no_delete_registry.password
    )
    for digest in (NO_MANIFEST, pushed["1.0.0"]):
        with pytest.raises(DeletesRefused) as caught:
            client.delete_manifest(app, digest)
        assert caught.value.problem == (
            f"registry {no_delete_registry.host} refuses deletes (HTTP 405): nothing was deleted"
        )
        assert "storage.delete.enabled: true" in caught.value.fix
    assert "1.0.0" in no_delete_registry.tags(app)


def test_docker_hub_is_refused_before_any_request() -> None:
    client = client_for("docker.io")
    with pytest.raises(DeletesRefused) as caught:
        client.check_deletes("concordconsortium/lara")
    assert "hub.docker.com" in caught.value.fix
