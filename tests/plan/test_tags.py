"""Docker tag policy: which tags a build gets, in which order, which are protected.

Every tag being a valid Docker tag, for any input, is in test_tags_properties.py; names that are
no tag as they are (sanitized, prefixed, refused) in test_tags_names.py.
"""

from __future__ import annotations

import pytest
import semver
from hypothesis import given
from hypothesis import strategies as st

from buildtools.config import schema
from buildtools.errors import BuildToolsError
from buildtools.plan import metadata, validate
from buildtools.plan.tags import ImageTag, choose, is_release_lookalike, parse_version
from tests.fixtures.build_facts import collect
from tests.fixtures.git import GitRepo
from tests.fixtures.tag_policy import DOCKER_TAG, SHA, compute, info, names

# Tag builds also get sha-<commit>: pushed with the exact version, before the floating tags.
CASES = {
    "release, nothing else known": (
        {"tag": "v1.2.3"},
        (),
        ["1.2.3", "sha-0123abc", "1.2", "1", "latest"],
    ),
    "release without v": ({"tag": "1.2.3"}, (), ["1.2.3", "sha-0123abc", "1.2", "1", "latest"]),
    "newest release": (
        {"tag": "v1.4.0"},
        ("1.3.5", "1.4.0"),
        ["1.4.0", "sha-0123abc", "1.4", "1", "latest"],
    ),
    "1.3.5 after 1.4.0 does not move 1 or latest": (
        {"tag": "v1.3.5"},
        ("1.3.4", "1.4.0"),
        ["1.3.5", "sha-0123abc", "1.3"],
    ),
    "1.2.3 after 1.2.4 moves nothing": ({"tag": "v1.2.3"}, ("1.2.4",), ["1.2.3", "sha-0123abc"]),
    "backport 1.4.9 after 2.0.0 does not move latest": (
        {"tag": "v1.4.9"},
        ("1.4.0", "2.0.0"),
        ["1.4.9", "sha-0123abc", "1.4", "1"],
    ),
    "pre-releases do not hold back a release": (
        {"tag": "v1.5.0"},
        ("1.4.0", "2.0.0-rc.1", "1.6.0-beta"),
        ["1.5.0", "sha-0123abc", "1.5", "1", "latest"],
    ),
    "pre-release gets only its full version": (
        {"tag": "v2.0.0-rc.1"},
        ("1.0.0",),
        ["2.0.0-rc.1", "sha-0123abc"],
    ),
    "build metadata is not allowed in Docker tags": (
        {"tag": "v1.2.3+build.5"},
        (),
        ["1.2.3_build.5", "sha-0123abc", "1.2", "1", "latest"],
    ),
    "non-semver tag": (
        {"tag": "deploy/2024 jan"},
        ("9.0.0",),
        ["tag-deploy-2024-jan", "sha-0123abc"],
    ),
    "tag wins over the branch it is on": (
        {"tag": "v1.0.0", "branch": "master"},
        (),
        ["1.0.0", "sha-0123abc", "1.0", "1", "latest"],
    ),
    "plain branch": ({"branch": "develop"}, (), ["sha-0123abc", "develop"]),
    "branch with extra tag": ({"branch": "master"}, (), ["sha-0123abc", "master", "edge"]),
    "nested branch": ({"branch": "feature/foo"}, (), ["sha-0123abc", "feature-foo"]),
    "invalid characters": (
        {"branch": "fix/ünïcode & spaces!!"},
        (),
        ["sha-0123abc", "fix-unicode-spaces"],
    ),
    "branch posing as a release": ({"branch": "1.2"}, (), ["sha-0123abc", "branch-1.2"]),
    "branch posing as latest": ({"branch": "latest"}, (), ["sha-0123abc", "branch-latest"]),
    "branch named like a floating tag": ({"branch": "edge"}, (), ["sha-0123abc", "branch-edge"]),
    "branch named like a PR tag": ({"branch": "pr-5"}, (), ["sha-0123abc", "branch-pr-5"]),
    "branch named like a stage cache": (
        {"branch": "cache-app-master"},
        (),
        ["sha-0123abc", "branch-cache-app-master"],
    ),
    "branch named like a commit tag": (
        {"branch": "sha-0123abc"},
        (),
        ["sha-0123abc", "branch-sha-0123abc"],
    ),
    "branch named like a git tag's tag": (
        {"branch": "tag-latest"},
        (),
        ["sha-0123abc", "branch-tag-latest"],
    ),
    "git tag named latest": ({"tag": "latest"}, (), ["tag-latest", "sha-0123abc"]),
    "git tag named like a minor series": ({"tag": "1.2"}, (), ["tag-1.2", "sha-0123abc"]),
    "git tag named like a branch": ({"tag": "main"}, (), ["tag-main", "sha-0123abc"]),
    "non-ASCII branch": ({"branch": "ü"}, (), ["sha-0123abc", "u"]),
    "detached HEAD": ({}, (), ["sha-0123abc"]),
    "pull request, not enabled": ({"branch": "fix/x", "pull_request": 5}, (), []),
}


@pytest.mark.parametrize("fields, known, expected", list(CASES.values()), ids=list(CASES))
def test_compute(fields: dict, known: tuple[str, ...], expected: list[str]) -> None:
    tags = compute(info(**fields), known_versions=known, extra={"master": ["edge"]})
    assert names(tags) == expected
    assert all(DOCKER_TAG.match(name) for name in names(tags))


def test_known_versions_come_from_info_and_argument() -> None:
    backport = info(tag="v1.4.9", known_versions=("1.4.0",))
    assert "latest" in names(compute(backport))
    assert "latest" not in names(compute(backport, known_versions=["2.0.0"]))
    assert "latest" not in names(compute(info(tag="v1.4.9", known_versions=("2.0.0",))))


def test_pull_request_tag_when_enabled() -> None:
    tags = compute(info(branch="master", pull_request=5), pull_requests=True)
    assert tags == [ImageTag("pr-5", True, "pull request")]


def test_exact_versions_are_protected_and_sha_is_not() -> None:
    expected = {
        "release": (
            {"tag": "v1.2.3"},
            [
                ("1.2.3", False, True),
                ("sha-0123abc", False, False),
                ("1.2", True, False),
                ("1", True, False),
                ("latest", True, False),
            ],
        ),
        "pre-release": (
            {"tag": "v2.0.0-rc.1"},
            [("2.0.0-rc.1", False, True), ("sha-0123abc", False, False)],
        ),
        "build metadata": (
            {"tag": "v1.2.3+build.5"},
            [
                ("1.2.3_build.5", False, True),
                ("sha-0123abc", False, False),
                ("1.2", True, False),
                ("1", True, False),
                ("latest", True, False),
            ],
        ),
        "non-semver tag": (
            {"tag": "deploy/2024 jan"},
            [("tag-deploy-2024-jan", False, True), ("sha-0123abc", False, False)],
        ),
        "branch": (
            {"branch": "master"},
            [("sha-0123abc", False, False), ("master", True, False), ("edge", True, False)],
        ),
        "detached HEAD": ({}, [("sha-0123abc", False, False)]),
    }
    for what, (fields, tags) in expected.items():
        got = compute(info(**fields), extra={"master": ["edge"]})
        assert [(t.name, t.floating, t.protected) for t in got] == tags, what


def test_sha_tag_is_the_same_for_the_tag_and_the_branch_build_of_a_commit() -> None:
    on_tag = [t for t in compute(info(tag="v1.2.3", branch="master")) if t.name.startswith("sha-")]
    on_branch = [t for t in compute(info(branch="master")) if t.name.startswith("sha-")]
    assert on_tag == on_branch == [ImageTag("sha-0123abc", False, "commit 0123abc")]
    assert on_tag[0].protected is False


# (case, build, tags.sha_prefix, tags): the prefix changes the commit tag and nothing else.
SHA_PREFIXES = [
    ("LARA's git- on a branch", {"branch": "master"}, "git-", ["git-0123abc", "master", "edge"]),
    (
        "git- on a release",
        {"tag": "v1.2.3"},
        "git-",
        ["1.2.3", "git-0123abc", "1.2", "1", "latest"],
    ),
    ("git- on a detached HEAD", {}, "git-", ["git-0123abc"]),
    ("no dash", {}, "commit", ["commit0123abc"]),
    ("underscore and dot", {}, "_c.", ["_c.0123abc"]),
    ("a pull request still gets no tag", {"pull_request": 5}, "git-", []),
    ("the default", {"branch": "develop"}, "sha-", ["sha-0123abc", "develop"]),
]


@pytest.mark.parametrize(
    ("fields", "prefix", "expected"),
    [case[1:] for case in SHA_PREFIXES],
    ids=[case[0] for case in SHA_PREFIXES],
)
def test_sha_prefix(fields: dict, prefix: str, expected: list[str]) -> None:
    tags = choose(info(**fields), extra={"master": ["edge"]}, sha_prefix=prefix).tags
    assert names(list(tags)) == expected
    sha = [t for t in tags if t.name.startswith(prefix) and t.name.endswith("0123abc")]
    assert all(t.floating is False and t.protected is False for t in sha)


@pytest.mark.parametrize(
    ("fields", "ref"),
    [({"pull_request": 5}, "lara/app:git-0123abc"), ({"branch": "x"}, "lara/app:git-0123abc")],
    ids=["no tags: the local image is named by the commit", "the first tag"],
)
def test_local_refs_use_the_configured_prefix(tmp_path, fields: dict, ref: str) -> None:
    settings = schema.load(schema.merged({"tags": {"sha_prefix": "git-"}}), tmp_path)
    assert metadata.of_info(settings, info(**fields)).local_refs("lara/app")[0] == ref


@given(prefix=st.text(alphabet="abvV019_.-", max_size=8))
def test_every_accepted_sha_prefix_makes_valid_commit_tags(prefix: str) -> None:
    try:
        validate.check_sha_prefix(prefix)
    except BuildToolsError:
        return
    for commit in (SHA, "1234567" + SHA[7:], "0000000" + SHA[7:]):
        tags = choose(info(commit=commit, branch="main"), sha_prefix=prefix).tags
        assert DOCKER_TAG.match(tags[0].name) and tags[0].name.startswith(prefix)
        assert not is_release_lookalike(tags[0].name)
        assert tags[0].name != tags[1].name


def test_immutable_first_then_floating() -> None:
    for fields in ({"tag": "v3.1.4"}, {"branch": "master"}):
        tags = compute(info(**fields), extra={"master": ["edge", "nightly"]})
        floating = [t.floating for t in tags]
        assert floating == sorted(floating)
        assert floating[0] is False


def test_extra_tags_are_sanitized_and_deduplicated() -> None:
    tags = compute(info(branch="main"), extra={"main": ["edge", "main", "my edge"]})
    assert names(tags) == ["sha-0123abc", "main", "edge", "my-edge"]


def test_warnings() -> None:
    assert choose(info(tag="v1.0.0")).warnings == ()
    assert "not a semantic version" in choose(info(tag="release-7")).warnings[0]
    assert "pull request #5" in choose(info(pull_request=5)).warnings[0]
    # A working tree's build (said once by the build) gets only its own local tag.
    dirty = choose(info(branch="x", dirty=True))
    assert dirty.warnings == ()
    assert [(t.name, t.floating) for t in dirty.tags] == [(f"sha-{SHA[:7]}-dirty", False)]
    assert "not releasable" in dirty.tags[0].reason
    assert "shallow" in choose(info(tag="v1.0.0", shallow=True)).warnings[0]
    assert choose(info(tag="v1.0.0", shallow=True), known_versions=["1.0.0"]).warnings == ()


def test_backport_in_a_real_repository(repo: GitRepo) -> None:
    repo.tag("v1.4.0")
    repo.branch("release-1.4")
    repo.checkout("master")
    repo.commit("2.0 work")
    repo.tag("v2.0.0", annotated=True)
    repo.checkout("release-1.4")
    repo.commit("backported fix", file="fix.txt")
    repo.tag("v1.4.9")
    built = collect(repo.path, {})
    assert (built.tag, built.version) == ("v1.4.9", "1.4.9")
    assert names(compute(built)) == ["1.4.9", f"sha-{built.commit[:7]}", "1.4", "1"]


def test_two_hundred_character_branch(repo: GitRepo) -> None:
    long_a = "feature/" + "a" * 192
    long_b = "feature/" + "a" * 191 + "b"
    repo.branch(long_a)
    tag_a = names(compute(collect(repo.path, {})))[1]
    repo.branch(long_b)
    tag_b = names(compute(collect(repo.path, {})))[1]
    assert len(tag_a) == len(tag_b) == 128
    assert tag_a != tag_b
    assert tag_a.startswith("feature-aaaa")
    assert DOCKER_TAG.match(tag_a) and DOCKER_TAG.match(tag_b)


def test_parse_version() -> None:
    assert parse_version("v1.2.3") == semver.Version(1, 2, 3)
    assert parse_version("1.2.3-rc.1") == semver.Version(1, 2, 3, "rc.1")
    assert parse_version("v1.2") is None
    assert parse_version("version") is None
