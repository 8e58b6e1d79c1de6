"""With a key configured, `invoke rollback` goes back only to a release that is signed and
smoke-tested under it, and `invoke releases` says which are: real registries, real signatures
made with our signing library over the releases of an artificial history."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import testbed
from buildtools.attest import cosign
from buildtools.errors import BuildToolsError
from buildtools.release import inventory, rollback
from tests.fixtures.registry_client import client_for
from tests.fixtures.signing import signing_key, smoke
from tests.release.test_rollback import World, skopeo_digest

pytestmark = pytest.mark.registry


def sign_release(world: World, version: str, key, *, smoke_tested: bool = True) -> None:
    """Sign ``version`` of both images in every registry, as `invoke ci` would have."""
    for reg in world.regs:
        client = client_for(reg.host, reg.username, reg.password)
        for repo in (world.app, world.nginx):
            digest = world.digests[(reg.host, repo)][version]
            cosign.sign(client, repo, digest, f"{reg.host}/{repo}", key)
            if smoke_tested:
                cosign.attest(client, repo, digest, [smoke(f"{reg.host}/{repo}", digest)], key)


def keyed(world: World, private: Path):
    settings = world.settings()
    release = dataclasses.replace(settings.release, signing_key=private)
    return dataclasses.replace(settings, release=release)


@pytest.fixture
def world(
    fast_registry: testbed.LocalRegistry, second: testbed.LocalRegistry, tmp_path: Path
) -> World:
    return World(fast_registry, second, tmp_path)


@pytest.fixture
def key(tmp_path: Path):
    made, public = signing_key(tmp_path)
    return made, public.with_suffix(".pem")


def test_a_rollback_to_an_unsigned_release_is_refused_before_anything_moves(
    world: World, key, tmp_path: Path
):
    made, private = key
    sign_release(world, "1.2.0", made)
    before = skopeo_digest(world.regs[0], f"{world.app}:latest", tmp_path)
    with pytest.raises(BuildToolsError) as caught:
        rollback.run(keyed(world, private), world.env, "latest", "1.1.0")
    assert ":1.1.0 cannot be rolled back to:" in caught.value.problem
    assert "is unsigned" in caught.value.problem
    assert "\n" not in str(caught.value)
    for reg in world.regs:
        assert "rollback-latest" not in reg.tags(world.app)
    assert skopeo_digest(world.regs[0], f"{world.app}:latest", tmp_path) == before


def test_a_signed_release_without_a_smoke_test_is_refused(world: World, key):
    made, private = key
    sign_release(world, "1.1.0", made, smoke_tested=False)
    with pytest.raises(BuildToolsError) as caught:
        rollback.run(keyed(world, private), world.env, "latest", "1.1.0")
    assert "smoke-test" in caught.value.problem


def test_a_signed_smoke_tested_release_is_rolled_back_to(world: World, key, tmp_path: Path):
    made, private = key
    sign_release(world, "1.2.0", made)
    done = rollback.run(keyed(world, private), world.env, "latest", "1.2.0")
    assert len(done.moves) == 4
    for reg in world.regs:
        target = world.digests[(reg.host, world.nginx)]["1.2.0"]
        assert skopeo_digest(reg, f"{world.nginx}:latest", tmp_path) == target


def test_releases_says_which_releases_verify_under_the_key(world: World, key):
    made, private = key
    sign_release(world, "1.2.0", made)
    (private.parent / "other").mkdir()
    other, _ = signing_key(private.parent / "other")  # a key that is not ours
    sign_release(world, "1.1.0", other)
    found = inventory.releases(keyed(world, private), world.env)
    by_version = {(r.image, r.version): r.verified for r in found.releases}
    assert by_version[("app", "1.2.0")] == "verified"
    assert by_version[("nginx", "1.2.0")] == "verified"
    assert by_version[("app", "1.1.0")] not in (None, "verified")
    assert by_version[("app", "1.0.0")] not in (None, "verified")
    assert "verified" in found.text()


def test_without_a_key_nothing_is_verified(world: World):
    found = inventory.releases(world.settings(), world.env)
    assert found.releases and all(r.verified is None for r in found.releases)
