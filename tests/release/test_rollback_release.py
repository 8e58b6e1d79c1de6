"""After a rollback, the next release of a higher version plans without the held floating tag
and says why (its images claim exactly the tags it pushes); ``--force`` moves it and clears the
marker. And `invoke releases` shows all of it, in few requests per tag. Real git, two real
registries holding an artificial history."""

from __future__ import annotations

from pathlib import Path

import pytest

import testbed
from buildtools.facts.read import Run
from buildtools.release import inventory, prepare, rollback
from buildtools.release.prepare import Options
from tests.fixtures import history
from tests.fixtures.flaky_proxy import FlakyProxy
from tests.fixtures.git import GitRepo
from tests.fixtures.registry import login_env
from tests.fixtures.registry_images import RegistryWriter
from tests.release.test_pipeline_plan_first import quiet_session, travis_tag
from tests.release.test_rollback import World, settings_for

pytestmark = pytest.mark.registry


@pytest.fixture
def world(
    fast_registry: testbed.LocalRegistry, second: testbed.LocalRegistry, tmp_path: Path
) -> World:
    return World(fast_registry, second, tmp_path)


def release_plan(world: World, repo: GitRepo, force: bool = False) -> prepare.Plan:
    settings = settings_for([r.host for r in world.regs], world.app, world.nginx, repo.path)
    env = {**world.env, **travis_tag(repo, "v3.0.0")}
    run = Run.read(settings, env, None)
    return prepare.for_release(
        run, Options(dry_run=True, force=force, promote=False), quiet_session()
    )


def test_the_next_release_leaves_a_rolled_back_latest_alone_and_says_so(
    world: World, repo: GitRepo
):
    rollback.run(world.settings(), world.env, "latest", "1.2.1")
    repo.write("Dockerfile", "FROM scratch\nARG LARA_VERSION\n")  # a release builds the commit
    repo.commit("the app's Dockerfile")
    repo.tag("v3.0.0")
    plan = release_plan(world, repo)
    assert set(plan.meta.tag_names) == {"3.0.0", f"sha-{repo.head()[:7]}", "3.0", "3"}
    said = [w for w in plan.warnings if "latest was rolled back" in w]
    assert said and "invoke rollback --clear latest" in said[0]
    # What the images would claim (version.yml's image_tags, the tags label) is what is pushed.
    assert "latest" not in plan.meta.version_data()["image_tags"]

    forced = release_plan(world, repo, force=True)
    assert "latest" in forced.meta.tag_names
    assert any("--force moves it anyway" in w for w in forced.warnings)


def test_invoke_releases_shows_releases_floating_tags_rollbacks_and_disagreements(
    world: World, tmp_path: Path
):
    rollback.run(world.settings(), world.env, "1.2", "1.2.0")
    one, two = world.regs
    # The second registry's app 1.1 points at 1.0.0: a disagreement to flag.
    writer = RegistryWriter(two)
    body, _ = writer.read(world.app, "1.0.0")
    writer.manifest(world.app, "1.1", body, history.DOCKER_MANIFEST)
    proxy = FlakyProxy(one.host).start()
    try:
        settings = settings_for([proxy.host, two.host], world.app, world.nginx, tmp_path)
        env = {**world.env, **login_env(proxy.host, one.username, one.password)}
        found = inventory.releases(settings, env)
    finally:
        proxy.stop()
    rows = {(r.image, r.version): r for r in found.releases}
    assert set(rows) == {(i, v) for i in ("app", "nginx") for v in world.history.releases}
    top = rows[("app", "2.0.0")]
    assert top.floating == ("latest", "2", "2.0")
    assert top.labels["org.opencontainers.image.revision"] == history.commit_of("v2.0.0")
    assert rows[("app", "1.2.0")].floating == ("1.2",)  # rolled back from 1.2.1
    assert rows[("app", "1.2.1")].floating == ("1",)
    assert any("1.2 held at 1.2.0" in line for line in found.markers)
    assert len(found.disagreements) == 1 and "app:1.1 differs" in found.disagreements[0]
    text = found.text()
    assert "16 commit tags" in text and "2 pr- tags" in text
    # Requests: the tag list, a GET per release tag, a HEAD per floating tag, one config per
    # release image and a GET per marker; nothing per sha-, branch or pr- tag.
    ours = [s for s in proxy.seen if s.user_agent.startswith("lara-buildtools")]
    tags = len(one.tags(world.app)) + len(one.tags(world.nginx))
    assert len(ours) / tags < 1.2, (len(ours), tags)
