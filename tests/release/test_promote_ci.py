"""`invoke ci` of a tag promotes only images pushed after a smoke test (the smoke-test label a
master build's `invoke ci` gives them), against the real htpasswd registry, with no engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import testbed
from tests.fixtures.git import GitRepo
from tests.fixtures.promotion import invoke, push_master_images
from tests.fixtures.registry_images import skopeo_inspect

SMOKE_LABEL = "org.concord.lara.build.smoke-test"


def travis_tag(tagged: dict[str, Any]) -> dict[str, str]:
    """A Travis tag build of v1.2.3 at the tagged commit."""
    return {
        **tagged["env"],
        "CI": "true",
        "TRAVIS": "true",
        "TRAVIS_PULL_REQUEST": "false",
        "TRAVIS_EVENT_TYPE": "push",
        "TRAVIS_BRANCH": "v1.2.3",
        "TRAVIS_TAG": "v1.2.3",
        "TRAVIS_COMMIT": tagged["commit"],
    }


def test_ci_promotes_only_images_pushed_after_a_smoke_test(
    registry: testbed.LocalRegistry, repo: GitRepo, tagged: dict[str, Any]
) -> None:
    """`invoke release` (or `invoke ci --no-smoke`) pushed the sha- images without a smoke
    test: `invoke ci` of the tag does not promote them as tested; it says so and builds."""
    push_master_images(tagged, {**tagged["master"]["labels"], SMOKE_LABEL: "none"})

    done = invoke(repo, travis_tag(tagged), "ci")

    line = (
        f"ci: not promoting: {registry.host}/{tagged['app']}:{tagged['sha']} was pushed "
        "without a smoke test; building"
    )
    assert line in done.stdout, done.stdout + done.stderr
    assert ": build, smoke test, release (" in done.stdout.splitlines()[0]
    assert "ci: promoted" not in done.stdout
    # Building needs the engine this machine does not have here.
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert sorted(registry.tags(tagged["app"])) == [tagged["sha"]]


def test_ci_promotes_images_pushed_after_a_smoke_test_and_they_keep_saying_so(
    registry: testbed.LocalRegistry, repo: GitRepo, tagged: dict[str, Any], tmp_path: Path
) -> None:
    tested = {**tagged["master"]["labels"], SMOKE_LABEL: "passed-before-push"}
    push_master_images(tagged, tested)

    done = invoke(repo, travis_tag(tagged), "ci")

    assert done.returncode == 0, done.stdout + done.stderr
    # 14: the first line says what the run does: it announced a build before it promoted.
    first = done.stdout.splitlines()[0]
    assert first.startswith("ci: travis build of tag v1.2.3 at "), done.stdout
    assert ": promote this commit's tested images (nothing to build), release (" in first
    assert "build, smoke test" not in done.stdout
    assert "no smoke test here (invoke ci smoke-tested them before it pushed" in done.stdout
    for name in ("app", "nginx"):
        seen = skopeo_inspect(registry, f"{tagged[name]}:1.2.3", tmp_path)
        assert seen["Labels"][SMOKE_LABEL] == "passed-before-push"
        assert seen["Labels"]["org.opencontainers.image.version"] == "1.2.3"
