"""Issue 26, case 9: the release registry's login never goes to a registry named only for
cache lookups (``cache.registries``), which may be someone else's mirror.

A real second registry (htpasswd, a login of its own) stands behind a loopback proxy that
records the ``Authorization`` header of every request, from this process and from the engine's
pulls alike: what the registry's owner would see.
"""

from __future__ import annotations

import base64
import secrets

import docker
import pytest

import testbed
from buildtools.config import schema
from buildtools.engine import cache
from buildtools.facts.buildinfo import BuildInfo
from buildtools.plan.metadata import of_info
from tests.fixtures.flaky_proxy import FlakyProxy
from tests.fixtures.held_images import discard
from tests.fixtures.project import ROOT
from tests.fixtures.registry import login_env

SHA = "0123abc4567890def0123abc4567890def012345"


def basic_logins(proxy: FlakyProxy) -> set[str]:
    """The ``user:password`` of every Basic login the proxy saw (bearer tokens say nothing)."""
    found = set()
    for seen in proxy.seen:
        kind, _, value = seen.authorization.partition(" ")
        if kind.lower() == "basic":
            found.add(base64.b64decode(value).decode())
    return found


def lookup(
    release: testbed.LocalRegistry,
    proxy: FlakyProxy,
    env: dict[str, str],
    client: docker.DockerClient | None = None,
    repository: str = "lbt/app",
) -> tuple[cache.Resolved, list[str]]:
    """A cache lookup of a master build, releasing to ``release``, looking in ``proxy``."""
    section = schema.merged(
        {"release": {"registries": release.host}, "cache": {"registries": proxy.host}}
    )
    cfg = schema.load(section, ROOT)
    meta = of_info(cfg, BuildInfo(version="0", commit=SHA, branch="master"))
    said: list[str] = []
    found = cache.resolve(client, cfg, meta, env, repository, "app", say=said.append)  # type: ignore[arg-type]
    return found, said


def release_login(registry: testbed.LocalRegistry) -> dict[str, str]:
    return {"DOCKER_USERNAME": registry.username, "DOCKER_PASSWORD": registry.password}


@pytest.mark.registry
def test_a_cache_only_registry_never_sees_the_release_password(
    fast_registry: testbed.LocalRegistry, second: testbed.LocalRegistry
) -> None:
    proxy = FlakyProxy(second.host).start()
    try:
        found, said = lookup(fast_registry, proxy, release_login(fast_registry))
    finally:
        proxy.stop()
    assert proxy.seen, "the cache registry was not asked at all"
    assert basic_logins(proxy) == set()
    assert all(fast_registry.password not in s.authorization for s in proxy.seen)
    # It asks for a login it was not given: one warning and a cold build, not the release's.
    assert found.refs == [] and len(said) == 1 and said[0].startswith("warning: cache for app")
    assert fast_registry.password not in said[0]


@pytest.mark.docker
@pytest.mark.registry
def test_a_cache_only_registry_gets_its_own_login_for_the_lookup_and_the_pull(
    docker_client: docker.DockerClient,
    make_image,
    fast_registry: testbed.LocalRegistry,
    second: testbed.LocalRegistry,
) -> None:
    repository = f"lbtcred{secrets.token_hex(3)}/app"
    ref = f"{second.host}/{repository}"
    image_id = make_image("cached")
    docker_client.api.tag(image_id, ref, "master")
    docker_client.images.push(
        ref, tag="master", auth_config={"username": second.username, "password": second.password}
    )
    discard(docker_client, f"{ref}:master")
    proxy = FlakyProxy(second.host).start()
    env = {
        **release_login(fast_registry),
        **login_env(proxy.host, second.username, second.password),
    }
    try:
        found, said = lookup(fast_registry, proxy, env, docker_client, repository)
    finally:
        proxy.stop()
        discard(docker_client, f"{proxy.host}/{repository}:master")
    assert found.refs == [f"{proxy.host}/{repository}:master"], said
    engine_pulls = [s for s in proxy.seen if "lara-buildtools" not in s.user_agent]
    assert engine_pulls, "the engine did not pull through the proxy"
    assert basic_logins(proxy) == {f"{second.username}:{second.password}"}
