"""Issue 26, case 8: two releases at once never move ``latest``, ``1``, ``1.2`` backwards.

The floating tags are planned from a registry read made before the builds. Here a higher
release really finishes in the real registry between this release's immutable pushes and its
floating ones (the seam: the push reporter's ``finish`` of the last immutable push, not a mock
of the registry); the floating tags of the lower release that it would move backwards stay.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

import testbed
from buildtools.config import schema
from buildtools.plan.push_order import HELD, Push
from buildtools.release import pipeline, progress
from buildtools.release.prepare import Options
from buildtools.release.steps import Session
from tests.fixtures.git import GitRepo
from tests.fixtures.promotion import push_master_images
from tests.fixtures.publish import AppRelease, do_release
from tests.fixtures.registry import login_env, repos
from tests.fixtures.registry_images import RegistryWriter

ROOT = Path(__file__).resolve().parents[2]

SHA = "sha-0c0ffee"


def release_tags(version: str, sha: str) -> list[tuple[str, bool]]:
    """The tags the plan gives ``version`` when the registry held nothing higher."""
    major, minor, _ = version.split(".")
    return [
        (version, False),
        (sha, False),
        (f"{major}.{minor}", True),
        (major, True),
        ("latest", True),
    ]


class MeanwhileReporter(progress.QuietReporter):
    """Runs ``meanwhile`` once, when this release's last immutable tag is pushed: another
    release that finishes before this one's floating tags move."""

    def __init__(self, immutable: int, meanwhile: Callable[[], None]) -> None:
        self.left = immutable
        self.meanwhile = meanwhile
        self.happened = False

    def finish(self, push: Push) -> None:
        if not push.floating:
            self.left -= 1
            if self.left == 0:
                self.meanwhile()
                self.happened = True


@pytest.fixture
def app(fast_registry: testbed.LocalRegistry, make_image: Callable[..., str]) -> AppRelease:
    return AppRelease(repos()[0], fast_registry, make_image)


@pytest.mark.docker
@pytest.mark.registry
def test_a_higher_release_finished_meanwhile_keeps_latest_and_its_major(
    docker_client: docker.DockerClient, fast_registry: testbed.LocalRegistry, app: AppRelease
) -> None:
    env, host = app.login(), fast_registry.host
    do_release(docker_client, app.images("1.2.3"), release_tags("1.2.3", "sha-1111111"), env, host)
    higher = app.images("1.3.0")

    def release_130() -> None:
        do_release(docker_client, higher, release_tags("1.3.0", "sha-3333333"), env, host)

    backport = app.images("1.2.4")
    reporter = MeanwhileReporter(2, release_130)
    result = do_release(
        docker_client, backport, release_tags("1.2.4", SHA), env, host, reporter=reporter
    )

    assert reporter.happened  # the other release did happen in between
    assert app.served("latest") == app.served("1") == app.served("1.3.0")
    assert app.served("1.2") == app.served("1.2.4") != app.served("1.3.0")
    held = {p.tag: p.kept for p in result.pushes if p.action == HELD}
    assert held == {"1": "1.3.0", "latest": "1.3.0"}
    notes = [w for w in result.warnings if "not moved to 1.2.4" in w]
    assert len(notes) == 2 and all("holds 1.3.0 now" in w for w in notes), result.warnings
    assert all("\n" not in w for w in notes)
    assert "kept" in result.text()


@pytest.mark.registry
def test_a_promotion_never_moves_latest_below_a_release_finished_meanwhile(
    registry: testbed.LocalRegistry, repo: GitRepo, tagged: dict[str, Any]
) -> None:
    """The same through a promotion of v1.2.3 (no engine): 1.3.0 arrives, with its latest
    and 1, after the plan and the exact tags, before the floating tags move."""
    push_master_images(tagged)
    writer: RegistryWriter = tagged["writer"]
    section = schema.merged(yaml.safe_load((ROOT / "invoke.yaml").read_text())["buildtools"])
    section["repo"] = str(repo.path)
    section["app"]["context"] = tagged["env"]["INVOKE_BUILDTOOLS_APP_CONTEXT"]  # committed
    section["app"]["repository"], section["nginx"]["repository"] = tagged["app"], tagged["nginx"]
    section["release"]["registries"] = registry.host
    settings = schema.load(section, ROOT)
    env = login_env(registry.host, registry.username, registry.password)
    higher: dict[str, str] = {}

    def release_130() -> None:
        for name in ("app", "nginx"):
            for tag in ("1.3.0", "1", "latest"):
                higher[name] = writer.image(tagged[name], {}, [], tag=tag)[1]

    reporter = MeanwhileReporter(1, release_130)
    session = Session(lambda line: None, reporter, build_display=False)
    done = pipeline.release(settings, env, None, Options(), session, warn=False).result

    assert done.promoted and reporter.happened
    for name in ("app", "nginx"):
        read = {tag: writer.read(tagged[name], tag)[1] for tag in ("1.2.3", "1.2", "1", "latest")}
        assert read["latest"] == read["1"] == higher[name]
        assert read["1.2"] == read["1.2.3"] != higher[name]
    assert len([w for w in done.warnings if "not moved to 1.2.3" in w]) == 4, done.warnings
