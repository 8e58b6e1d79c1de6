"""gather(): git + CI environment + overrides into one BuildInfo, on real repositories.

The overrides (--commit, --tag, SOURCE_DATE_EPOCH) and their bad values are in
test_buildinfo_overrides.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import semver
import yaml

from buildtools.config import schema
from buildtools.facts.buildinfo import BuildInfo, Overrides, make_version
from buildtools.facts.read import Run, gather
from buildtools.plan import metadata, tags
from tests.fixtures.build_facts import collect
from tests.fixtures.git import GitRepo


@dataclass
class Build:
    """A checkout to build and the environment the build runs in."""

    path: Path
    env: dict[str, str]
    head: str
    overrides: Overrides = field(default_factory=Overrides)


def travis(sha: str, **extra: str) -> dict[str, str]:
    return {
        "CI": "true",
        "TRAVIS": "true",
        "TRAVIS_COMMIT": sha,
        "TRAVIS_TAG": "",
        "TRAVIS_PULL_REQUEST": "false",
        "TRAVIS_PULL_REQUEST_BRANCH": "",
        "TRAVIS_BUILD_NUMBER": "101",
        "TRAVIS_BUILD_WEB_URL": "https://app.travis-ci.com/github/org/lara/builds/1",
        **extra,
    }


def github(sha: str, ref: str, **extra: str) -> dict[str, str]:
    return {
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_SHA": sha,
        "GITHUB_REF": ref,
        "GITHUB_RUN_NUMBER": "7",
        "GITHUB_RUN_ID": "99",
        "GITHUB_REPOSITORY": "org/lara",
        "GITHUB_SERVER_URL": "https://github.com",
        **extra,
    }


def gitlab(sha: str, **extra: str) -> dict[str, str]:
    return {
        "CI": "true",
        "GITLAB_CI": "true",
        "CI_COMMIT_SHA": sha,
        "CI_PIPELINE_IID": "3",
        **extra,
    }


# Each scenario makes history in `repo` and returns the build to run.
def plain_branch(repo: GitRepo, tmp: Path) -> Build:
    return Build(repo.path, {}, repo.head())


def nested_branch_after_release(repo: GitRepo, tmp: Path) -> Build:
    repo.tag("v1.0.0")
    repo.branch("feature/foo")
    repo.commit()
    repo.commit()
    return Build(repo.path, {}, repo.head())


def detached_head(repo: GitRepo, tmp: Path) -> Build:
    repo.commit()
    repo.detach("HEAD~1")
    return Build(repo.path, {}, repo.head())


def shallow_clone_no_tag(repo: GitRepo, tmp: Path) -> Build:
    repo.tag("v1.0.0")
    repo.commit()
    repo.commit()
    clone = repo.clone(tmp / "shallow", depth=1)
    return Build(clone.path, {}, clone.head())


def dirty_tree(repo: GitRepo, tmp: Path) -> Build:
    repo.write("history.txt", "uncommitted\n")
    return Build(repo.path, {}, repo.head())


def several_tags_on_head(repo: GitRepo, tmp: Path) -> Build:
    for name in ("v1.9.0", "v1.10.0", "v1.10.0-rc.2", "deploy"):
        repo.tag(name)
    return Build(repo.path, {}, repo.head())


def _release(repo: GitRepo, tmp: Path, tag: str = "v1.2.3") -> GitRepo:
    for _ in range(3):
        repo.commit()
    repo.tag(tag, annotated=True)
    repo.commit("after the release")
    return repo.travis_clone(tmp / "ci", tag, depth=2)


def travis_tag(repo: GitRepo, tmp: Path) -> Build:
    clone = _release(repo, tmp)
    env = travis(clone.head(), TRAVIS_BRANCH="v1.2.3", TRAVIS_TAG="v1.2.3")
    return Build(clone.path, env, clone.head())


def github_tag(repo: GitRepo, tmp: Path) -> Build:
    clone = _release(repo, tmp)
    return Build(clone.path, github(clone.head(), "refs/tags/v1.2.3"), clone.head())


def gitlab_tag(repo: GitRepo, tmp: Path) -> Build:
    clone = _release(repo, tmp)
    env = gitlab(clone.head(), CI_COMMIT_TAG="v1.2.3", CI_COMMIT_REF_NAME="v1.2.3")
    return Build(clone.path, env, clone.head())


def _merge_commit(repo: GitRepo) -> str:
    """A detached merge commit of fix/login into master, as CIs check out for PRs."""
    repo.branch("fix/login")
    repo.commit("fix", file="login.txt")
    repo.checkout("master")
    repo.commit("meanwhile on master")
    repo.detach()
    repo.git("merge", "-q", "--no-ff", "-m", "merge", "fix/login")
    return repo.head()


def travis_pr(repo: GitRepo, tmp: Path) -> Build:
    sha = _merge_commit(repo)
    env = travis(
        sha,
        TRAVIS_BRANCH="master",
        TRAVIS_PULL_REQUEST="17",
        TRAVIS_PULL_REQUEST_BRANCH="fix/login",
        TRAVIS_EVENT_TYPE="pull_request",
    )
    return Build(repo.path, env, sha)


def github_pr(repo: GitRepo, tmp: Path) -> Build:
    sha = _merge_commit(repo)
    env = github(sha, "refs/pull/17/merge", GITHUB_HEAD_REF="fix/login", GITHUB_BASE_REF="master")
    return Build(repo.path, env, sha)


def travis_branch_build_of_tagged_commit(repo: GitRepo, tmp: Path) -> Build:
    repo.tag("v1.2.3")
    return Build(repo.path, travis(repo.head(), TRAVIS_BRANCH="master"), repo.head())


def override_beats_ci(repo: GitRepo, tmp: Path) -> Build:
    repo.tag("v9.9.9")
    env = travis(repo.head(), TRAVIS_BRANCH="master")
    return Build(repo.path, env, repo.head(), Overrides(tag="v9.9.9"))


def docker_hub_tag_known_to_git(repo: GitRepo, tmp: Path) -> Build:
    repo.tag("prod-2024")
    env = {"SOURCE_BRANCH": "prod-2024", "SOURCE_COMMIT": repo.head()}
    return Build(repo.path, env, repo.head())


BRANCH_TAGS = ["sha-{sha}", "master", "edge"]
RELEASE_TAGS = ["1.2.3", "sha-{sha}", "1.2", "1", "latest"]

# scenario -> (branch, tag, pull_request, base_branch, ci, version, image tags); {sha} = 7 hex
SCENARIOS: dict[str, tuple[Callable[[GitRepo, Path], Build], tuple]] = {
    "plain branch": (
        plain_branch,
        ("master", None, None, None, None, "0.0.0-master.g{sha}", BRANCH_TAGS),
    ),
    "nested branch": (
        nested_branch_after_release,
        ("feature/foo", None, None, None, None, "1.0.0-2-g{sha}", ["sha-{sha}", "feature-foo"]),
    ),
    "detached HEAD without CI": (
        detached_head,
        (None, None, None, None, None, "0.0.0-g{sha}", ["sha-{sha}"]),
    ),
    "shallow clone, no reachable tag": (
        shallow_clone_no_tag,
        ("master", None, None, None, None, "0.0.0-master.g{sha}", BRANCH_TAGS),
    ),
    "dirty tree": (
        dirty_tree,
        # A working tree's build: one local tag no release asks for (never the commit's).
        ("master", None, None, None, None, "0.0.0-master.g{sha}+dirty", ["sha-{sha}-dirty"]),
    ),
    "several tags on HEAD": (
        several_tags_on_head,
        (
            "master",
            "v1.10.0",
            None,
            None,
            None,
            "1.10.0",
            ["1.10.0", "sha-{sha}", "1.10", "1", "latest"],
        ),
    ),
    "travis tag": (travis_tag, (None, "v1.2.3", None, None, "travis", "1.2.3", RELEASE_TAGS)),
    "github tag": (github_tag, (None, "v1.2.3", None, None, "github", "1.2.3", RELEASE_TAGS)),
    "gitlab tag": (gitlab_tag, (None, "v1.2.3", None, None, "gitlab", "1.2.3", RELEASE_TAGS)),
    "travis PR": (
        travis_pr,
        ("fix/login", None, 17, "master", "travis", "0.0.0-fix-login.g{sha}", []),
    ),
    "github PR": (
        github_pr,
        ("fix/login", None, 17, "master", "github", "0.0.0-fix-login.g{sha}", []),
    ),
    "travis branch build of a tagged commit": (
        travis_branch_build_of_tagged_commit,
        ("master", None, None, None, "travis", "1.2.3", BRANCH_TAGS),
    ),
    "override beats CI": (
        override_beats_ci,
        (
            None,
            "v9.9.9",
            None,
            None,
            "travis",
            "9.9.9",
            ["9.9.9", "sha-{sha}", "9.9", "9", "latest"],
        ),
    ),
    "docker hub tag known to git": (
        docker_hub_tag_known_to_git,
        (None, "prod-2024", None, None, "dockerhub", "prod-2024", ["tag-prod-2024", "sha-{sha}"]),
    ),
}


@pytest.mark.parametrize("scenario, expected", list(SCENARIOS.values()), ids=list(SCENARIOS))
def test_collect(scenario, expected, repo: GitRepo, tmp_path: Path) -> None:
    build = scenario(repo, tmp_path)
    info = collect(build.path, build.env, build.overrides)
    branch, tag, pull_request, base_branch, ci, version, image_tags = expected
    assert (info.branch, info.tag, info.pull_request, info.base_branch, info.ci) == (
        branch,
        tag,
        pull_request,
        base_branch,
        ci,
    )
    assert info.commit == build.head
    assert info.short_commit == build.head[:7]
    assert info.version == version.format(sha=build.head[:7])
    assert info.dirty == version.endswith("+dirty")
    if tag != "prod-2024":  # a non-semver tag is its own version
        semver.Version.parse(info.version)  # every other version is valid semver
    names = [t.name for t in tags.choose(info, extra={"master": ("edge",)}).tags]
    assert names == [name.format(sha=build.head[:7]) for name in image_tags]


def test_ci_build_number_and_url(repo: GitRepo, tmp_path: Path) -> None:
    build = travis_tag(repo, tmp_path)
    info = collect(build.path, build.env)
    assert info.build_number == "101"
    assert info.build_url == "https://app.travis-ci.com/github/org/lara/builds/1"
    assert info.shallow is True


def test_tag_build_in_shallow_clone_knows_only_fetched_tags(repo: GitRepo, tmp_path: Path) -> None:
    repo.tag("v0.9.0")
    build = travis_tag(repo, tmp_path)
    assert collect(build.path, build.env).known_versions == ("1.2.3",)
    assert collect(repo.path, {}).known_versions == ("0.9.0", "1.2.3")


def test_build_date_is_commit_time_so_rebuilds_match(repo: GitRepo) -> None:
    first = collect(repo.path, {}).build_date
    assert first == "2023-11-14T22:14:20Z"  # BASE_TIME + 1 minute
    repo.write("untracked.txt", "x")
    assert collect(repo.path, {}).build_date == first


def test_gather_returns_warnings(repo: GitRepo) -> None:
    repo.tag("v1.0.0")
    repo.tag("v1.0.1")
    _, warnings = gather(repo.path, {})
    assert len(warnings) == 1 and "carries the release tags" in warnings[0]


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"tag": "v1.2.3+build.7"}, "1.2.3+build.7"),
        ({"tag": "v1.2.3+build.7", "dirty": True}, "1.2.3+build.7.dirty"),
        ({"tag": "release-7"}, "release-7"),
        ({"last_tag": "v2.0.0-rc.1", "commits_since_tag": 4}, "2.0.0-rc.1-4-gabcdef0"),
        ({"branch": "0123"}, "0.0.0-b0123.gabcdef0"),
        ({"branch": "ünïcode/ß"}, "0.0.0-n-code.gabcdef0"),
        ({"branch": "///"}, "0.0.0-unknown.gabcdef0"),
    ],
)
def test_make_version(kwargs: dict, expected: str) -> None:
    version = make_version(kwargs.pop("tag", None), "abcdef0123", **kwargs)
    assert version == expected
    if not expected.startswith("release"):
        semver.Version.parse(version)


def test_run_metadata(repo: GitRepo) -> None:
    """The one call build and release make, with the project's own invoke.yaml."""
    root = Path(__file__).resolve().parents[2]
    section = yaml.safe_load((root / "invoke.yaml").read_text())["buildtools"]
    settings = schema.load(schema.merged({**section, "repo": str(repo.path)}), root)
    repo.tag("v1.0.0")
    meta = metadata.of_run(Run.read(settings, {}), ["2.0.0"])
    assert meta.info.tag == "v1.0.0"
    sha = f"sha-{repo.head()[:7]}"
    assert meta.tag_names == ["1.0.0", sha, "1.0", "1"]  # 2.0.0 is in the registry: no latest
    assert meta.labels["org.opencontainers.image.version"] == "1.0.0"
    assert list(meta.version_data())[-1] == "image_tags"
    assert isinstance(meta.tags[0], tags.ImageTag)


def test_buildinfo_is_immutable() -> None:
    info = BuildInfo(version="1.0.0", commit="abcdef0123")
    assert info.short_commit == "abcdef0"
    with pytest.raises(AttributeError):
        info.version = "2"  # type: ignore[misc]
