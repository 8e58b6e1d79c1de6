"""Issue 26, case 8: two releases at once never move ``latest``, ``1``, ``1.2`` backwards.

The floating tags are planned from a registry read made before the builds. Here a higher
release really finishes in the real registry between this release's immutable pushes and its
floating ones (the seam: the push reporter's ``finish`` of the last immutable push, not a mock
of the registry); the floating tags of the lower release that it would move backwards stay.
"""

from __future__ import annotations

from collections.abc import Callable

import docker
import pytest

import testbed
from buildtools.plan.push_order import HELD, Push
from buildtools.release import progress
from tests.fixtures.publish import AppRelease, do_release
from tests.fixtures.registry import repos

pytestmark = [pytest.mark.docker, pytest.mark.registry]

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

    def finish(self, push: Push) -> None:
        if not push.floating:
            self.left -= 1
            if self.left == 0:
                self.meanwhile()


@pytest.fixture
def app(fast_registry: testbed.LocalRegistry, make_image: Callable[..., str]) -> AppRelease:
    return AppRelease(repos()[0], fast_registry, make_image)


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

    assert reporter.left == 0  # the other release did happen in between
    assert app.served("latest") == app.served("1") == app.served("1.3.0")
    assert app.served("1.2") == app.served("1.2.4") != app.served("1.3.0")
    held = {p.tag: p.kept for p in result.pushes if p.action == HELD}
    assert held == {"1": "1.3.0", "latest": "1.3.0"}
    notes = [w for w in result.warnings if "not moved to 1.2.4" in w]
    assert len(notes) == 2 and all("holds 1.3.0 now" in w for w in notes), result.warnings
    assert all("\n" not in w for w in notes)
    assert "kept" in result.text()
