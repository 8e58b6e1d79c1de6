"""`invoke rollback` against two real registries holding an artificial history: the floating
tag of both images moves to exactly the release's manifest everywhere (read back with skopeo),
a failing registry part-way leaves every tag on its old digest, refusals are one line, and the
marker holds the tag against the next release until cleared."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

import testbed
from buildtools.config import schema
from buildtools.config.schema import Settings
from buildtools.errors import BuildToolsError
from buildtools.registry.targets import tag_lists
from buildtools.release import rollback
from tests.fixtures import history
from tests.fixtures.flaky_proxy import FlakyProxy
from tests.fixtures.registry import login_env, repos
from tests.fixtures.registry_images import skopeo_inspect

pytestmark = pytest.mark.registry


def settings_for(hosts: list[str], app: str, nginx: str, root: Path) -> Settings:
    section = schema.merged(
        {
            "app": {"repository": app},
            "nginx": {"repository": nginx},
            "release": {
                "registries": ",".join(hosts),
                "retries": 1,
                "retry_base_delay": 0.01,
                "retry_max_delay": 0.02,
            },
        }
    )
    return schema.load(section, root)


class World:
    """Two registries with the same history in both repositories."""

    def __init__(self, one: testbed.LocalRegistry, two: testbed.LocalRegistry, root: Path):
        self.regs = [one, two]
        self.app, self.nginx = repos()
        self.history = history.make(branches={"master": 12, "feature-x": 4}, prs=range(1, 3))
        self.digests = {
            (reg.host, repo): history.push(reg, repo, self.history)
            for reg in self.regs
            for repo in (self.app, self.nginx)
        }
        self.env = {
            k: v
            for reg in self.regs
            for k, v in login_env(reg.host, reg.username, reg.password).items()
        }
        self.root = root

    def settings(self, hosts: list[str] | None = None) -> Settings:
        hosts = hosts or [reg.host for reg in self.regs]
        return settings_for(hosts, self.app, self.nginx, self.root)


@pytest.fixture
def world(
    fast_registry: testbed.LocalRegistry, second: testbed.LocalRegistry, tmp_path: Path
) -> Iterator[World]:
    yield World(fast_registry, second, tmp_path)


def skopeo_digest(reg: testbed.LocalRegistry, ref: str, tmp: Path) -> str:
    auth_dir = tmp / f"skopeo-{reg.port}"  # one auth file per registry
    auth_dir.mkdir(exist_ok=True)
    return skopeo_inspect(reg, ref, auth_dir)["Digest"]


def test_latest_goes_back_to_the_release_in_every_registry(world: World, tmp_path: Path):
    before = {k: d["latest"] for k, d in world.digests.items()}
    done = rollback.run(world.settings(), world.env, "latest", "1.2.0")
    assert len(done.moves) == 4 and not done.dry_run
    for reg in world.regs:
        for repo in (world.app, world.nginx):
            target = world.digests[(reg.host, repo)]["1.2.0"]
            # Another client than ours reads it back: byte-identical to the release.
            assert skopeo_digest(reg, f"{repo}:latest", tmp_path) == target
            assert target != before[(reg.host, repo)]
            assert "rollback-latest" in reg.tags(repo)
    text = done.text()
    assert "(labelled 2.0.0) ->" in text and "(1.2.0)" in text


def test_dry_run_changes_nothing_and_shows_the_move(world: World):
    done = rollback.run(world.settings(), world.env, "latest", "1.1.0", dry_run=True)
    assert all(
        m.new_digest == world.digests[(m.registry, m.repository)]["1.1.0"] for m in done.moves
    )
    assert "would move" in done.text()
    for reg in world.regs:
        assert "rollback-latest" not in reg.tags(world.app)
        assert history.sha


@pytest.mark.parametrize(
    ("tag", "version", "says"),
    [
        ("latest", "9.9.9", "release 9.9.9 is not in every registry"),
        ("1.2", "2.0.0", "2.0.0 is not a 1.2.x release"),
        ("1", "2.0.0", "2.0.0 is not a 1.x release"),
        ("latest", "2.0.0-rc.1", "is a pre-release"),
        ("latest", "sha-0123abc", "is not a release version"),
        ("edge", "1.2.0", "is not a floating release tag"),
        ("1.2.0", "1.1.0", "is not a floating release tag"),
    ],
)
def test_refusals_are_one_line_and_move_nothing(world: World, tag: str, version: str, says: str):
    with pytest.raises(BuildToolsError) as caught:
        rollback.run(world.settings(), world.env, tag, version)
    assert says in caught.value.problem and "\n" not in str(caught.value)
    reg = world.regs[0]
    assert "rollback-latest" not in reg.tags(world.app)


def test_a_registry_that_is_down_is_one_line_before_anything_moves(world: World):
    hosts = [world.regs[0].host, "127.0.0.1:9"]
    with pytest.raises(BuildToolsError) as caught:
        rollback.run(world.settings(hosts), world.env, "latest", "1.2.0")
    assert "unreachable" in caught.value.problem
    assert history.NOW


def test_a_wrong_password_is_refused_before_anything_moves(world: World):
    env = dict(world.env)
    env.update(login_env(world.regs[1].host, world.regs[1].username, "wrong"))
    with pytest.raises(BuildToolsError):
        rollback.run(world.settings(), env, "latest", "1.2.0")
    for reg in world.regs:
        assert "rollback-latest" not in reg.tags(world.app)


def test_a_registry_failing_mid_rollback_leaves_both_images_on_the_old_digest(world: World):
    # The second registry refuses the PUT of the sidecar's latest (after the app's moved in
    # both): what moved must be put back.
    second = world.regs[1]
    proxy = FlakyProxy(
        second.host,
        failures=99,
        status=500,
        match=lambda method, path, agent: (
            method == "PUT" and path.endswith(f"{world.nginx}/manifests/latest")
        ),
    ).start()
    try:
        with pytest.raises(BuildToolsError) as caught:
            rollback.run(
                world.settings([world.regs[0].host, proxy.host]),
                {**world.env, **login_env(proxy.host, second.username, second.password)},
                "latest",
                "1.2.0",
            )
    finally:
        proxy.stop()
    assert "put back on its old digest" in caught.value.problem
    for reg in world.regs:
        for repo in (world.app, world.nginx):
            assert history_digest(reg, repo) == world.digests[(reg.host, repo)]["latest"]
            assert "rollback-latest" not in reg.tags(repo)


def history_digest(reg: testbed.LocalRegistry, repo: str) -> str | None:
    from tests.fixtures.registry import served_digest

    return served_digest(reg, repo, "latest")


def test_the_marker_is_read_from_the_tag_lists_and_cleared(world: World):
    settings = world.settings()
    rollback.run(settings, world.env, "1", "1.1.0")
    from buildtools.plan.rollback import held
    from buildtools.registry.targets import configured

    found = configured(settings.release, world.env)
    lists = tag_lists(found, [world.app, world.nginx])
    assert sorted(held(lists)) == ["1"] and len(held(lists)["1"]) == 4
    cleared = rollback.clear(settings, world.env, "1")
    assert len(cleared.markers) == 4
    for reg in world.regs:
        tags = reg.tags(world.app)
        assert "rollback-1" not in tags and "1.1.0" in tags and "1" in tags


def test_clear_removes_a_hand_made_marker_without_deleting_the_release_it_names(
    world: World, tmp_path: Path
):
    # Someone tagged a release rollback-latest by hand: a release leaves latest alone for it
    # and says `invoke rollback --clear latest`. A delete of its digest would take 1.2.0 too.
    reg = world.regs[0]
    url = f"{reg.url}/v2/{world.app}/manifests"
    kind = "application/vnd.docker.distribution.manifest.v2+json"
    auth = (reg.username, reg.password)
    body = requests.get(f"{url}/1.2.0", auth=auth, headers={"Accept": kind}, timeout=10)
    put = requests.put(f"{url}/rollback-latest", auth=auth, data=body.content,
                       headers={"Content-Type": kind}, timeout=10)  # fmt: skip
    assert put.status_code == 201
    release = skopeo_digest(reg, f"{world.app}:1.2.0", tmp_path)

    cleared = rollback.clear(world.settings(), world.env, "latest")

    assert cleared.markers == (
        f"{reg.host}/{world.app}:rollback-latest (not this tool's marker: it named {release}, "
        "which stays)",
    )
    assert "rollback-latest" not in reg.tags(world.app)
    assert skopeo_digest(reg, f"{world.app}:1.2.0", tmp_path) == release
    assert {"1.2.0", "1.2"} <= set(reg.tags(world.app))
