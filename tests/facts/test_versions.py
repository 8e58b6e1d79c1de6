"""Release versions among Docker tags."""

from __future__ import annotations

from buildtools.facts.versions import semver_tags


def test_semver_tags_keep_only_release_versions() -> None:
    names = ["1.2.3", "1.2", "1", "latest", "sha-abc1234", "1.2.4-rc.1", "1.2.3_build.5", "edge"]
    assert semver_tags(names) == ["1.2.3", "1.2.4-rc.1", "1.2.3+build.5"]
