"""A branch's images go by one name: the tag its release pushes is the tag the cache looks up
and the tag its stage images carry, whatever ``tags.sha_prefix`` and ``tags.extra`` say."""

from __future__ import annotations

from pathlib import Path

import pytest

from buildtools.config import schema
from buildtools.engine import cache
from buildtools.facts.buildinfo import BuildInfo
from buildtools.plan.metadata import of_info
from buildtools.release import build

ROOT = Path(__file__).resolve().parents[2]
SHA = "0123abc4567890def0123abc4567890def012345"


def settings(tags: dict[str, str]) -> schema.Settings:
    section = schema.merged({"tags": tags, "cache": {"registries": "registry.example:5000"}})
    return schema.load(section, ROOT)


def floating_branch_tag(cfg: schema.Settings, branch: str) -> str:
    """The tag a release of ``branch`` pushes for the branch (not its commit or extra tags)."""
    meta = of_info(cfg, BuildInfo(version="0", commit=SHA, branch=branch))
    (tag,) = [t.name for t in meta.tags if t.reason == f"branch {branch}"]
    return tag


CASES = [
    ({}, "feature/x", "feature-x"),
    ({}, "edge", "branch-edge"),  # master's extra tag: the branch may not take it
    ({"sha_prefix": "git-"}, "feature/x", "feature-x"),
    ({"sha_prefix": "git-"}, "edge", "branch-edge"),
    ({"sha_prefix": "git-"}, "git-0123abc", "branch-git-0123abc"),  # would pose as a commit
    ({"sha_prefix": "git-"}, "sha-notes", "sha-notes"),  # sha- is no commit's prefix here
    ({"extra": "main=stable"}, "stable", "branch-stable"),
    ({"extra": "main=stable"}, "edge", "branch-edge"),
]


@pytest.mark.parametrize(("tags", "branch", "expected"), CASES)
def test_release_cache_and_stage_images_agree_on_a_branch_tag(
    tags: dict[str, str], branch: str, expected: str
) -> None:
    cfg = settings(tags)
    pushed = floating_branch_tag(cfg, branch)
    meta = of_info(cfg, BuildInfo(version="0", commit=SHA, branch=branch))

    looked_up = [c.tag for c in cache.candidates(cfg, meta) if c.reason == f"branch {branch}"]
    stage = build.stage_ref(cfg.app.repository, meta, "assets")
    staged = cache.candidates(cfg, meta, cache.stage_prefix("assets"))

    assert pushed == expected
    assert looked_up == [pushed]
    assert stage == f"{cfg.app.repository}:cache-assets-{pushed}"
    assert staged[0].tag == stage.rpartition(":")[2]


@pytest.mark.parametrize("prefix", ["sha-", "git-"])
def test_a_pull_request_looks_up_what_its_target_branch_pushes(prefix: str) -> None:
    cfg = settings({"sha_prefix": prefix, "extra": "master=edge"})
    pull = BuildInfo(version="0", commit=SHA, pull_request=7, base_branch="edge")
    meta = of_info(cfg, pull)

    looked_up = [c.tag for c in cache.candidates(cfg, meta) if c.reason == "branch edge"]

    assert looked_up == [floating_branch_tag(cfg, "edge")] == ["branch-edge"]
    assert build.stage_ref(cfg.app.repository, meta, "assets").endswith(":cache-assets-branch-edge")


def test_release_branches_are_looked_up_under_the_tags_their_releases_push() -> None:
    section = schema.merged({"tags": {"sha_prefix": "git-"}})
    section["release"]["branches"] = "master,git-0123abc,edge"
    section["release"]["registries"] = "registry.example:5000"
    cfg = schema.load(section, ROOT)
    meta = of_info(cfg, BuildInfo(version="0", commit=SHA, branch="feature/x"))

    found = {c.reason: c.tag for c in cache.candidates(cfg, meta)}

    for branch in ("master", "git-0123abc", "edge"):
        assert found[f"release branch {branch}"] == floating_branch_tag(cfg, branch)
