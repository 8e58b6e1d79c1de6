"""Docker tag policy: which tags a build gets, and that every one is a valid Docker tag."""

from __future__ import annotations

import json
import re
import unicodedata

import pytest
import semver
from hypothesis import example, given
from hypothesis import strategies as st

from buildtools.config import schema
from buildtools.errors import BuildToolsError
from buildtools.facts.buildinfo import BuildInfo
from buildtools.facts.read import gather
from buildtools.plan import metadata, validate
from buildtools.plan.tags import (
    VALID_TAG,
    ImageTag,
    TagPolicy,
    choose,
    is_release_lookalike,
    parse_version,
    prefixed,
    sanitize,
)
from tests.fixtures.bad_input import (
    NO_ENGINE,
    App,
    app_yaml,
    changes_nothing_and_fails_in_one_line,
    row_id,
    whole_rows,
)
from tests.fixtures.git import GitRepo

DOCKER_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
SHA = "0123abcdef0123abcdef0123abcdef0123abcdef"


def info(**fields) -> BuildInfo:
    return BuildInfo(**{"version": "0.0.0", "commit": SHA, **fields})


def compute(*args, **kwargs) -> list[ImageTag]:
    """The tags alone (the warnings are tested on their own)."""
    return list(choose(*args, **kwargs).tags)


def collect(path, env):  # type: ignore[no-untyped-def]
    return gather(path, env)[0]


def names(tags: list[ImageTag]) -> list[str]:
    return [t.name for t in tags]


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
    assert "uncommitted" in choose(info(branch="x", dirty=True)).warnings[-1]
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


@pytest.mark.parametrize(
    "name, expected",
    [
        ("master", "master"),
        ("feature/foo", "feature-foo"),
        ("a//b\\\\c", "a-b-c"),
        ("-leading", "leading"),
        (".hidden", "hidden"),
        ("_ok", "_ok"),
        ("trailing/", "trailing"),
        ("UPPER.case_1", "UPPER.case_1"),
        ("x" * 128, "x" * 128),
    ],
)
def test_sanitize(name: str, expected: str) -> None:
    assert sanitize(name) == expected


def test_sanitize_is_deterministic_for_long_names() -> None:
    name = "x" * 129
    assert sanitize(name) == sanitize(name)
    assert len(sanitize(name)) == 128
    assert sanitize(name) != "x" * 128


@pytest.mark.parametrize("name", ["", "///", "..", "-.-", "…", "🚀"])
def test_sanitize_refuses_names_without_any_valid_character(name: str) -> None:
    with pytest.raises(BuildToolsError, match="cannot be made into a Docker tag"):
        sanitize(name)


# Property tests

versions = st.builds(
    semver.Version,
    major=st.integers(0, 20),
    minor=st.integers(0, 20),
    patch=st.integers(0, 20),
)
prerelease = st.from_regex(r"\A(alpha|beta|rc)(\.[1-9][0-9]{0,2})?\Z")
any_text = st.text(min_size=0, max_size=300)


@given(st.text(max_size=400))
@example("⼀")  # a radical: no letter itself, 一 after NFKD (once a flaky failure here)
def test_sanitize_property(name: str) -> None:
    """Any name with a letter or digit (in any script, also one that is so only after
    compatibility decomposition, as the radical ⼀ is 一) gets a valid tag; others one line."""
    if not any(c.isalnum() or c == "_" for c in unicodedata.normalize("NFKD", name)):
        with pytest.raises(BuildToolsError):
            sanitize(name)
    else:
        assert DOCKER_TAG.match(sanitize(name))


@given(
    branch=st.one_of(st.none(), any_text),
    tag=st.one_of(st.none(), any_text, versions.map(lambda v: f"v{v}")),
    pull_request=st.one_of(st.none(), st.integers(0, 10**9)),
    known=st.lists(versions.map(str), max_size=5),
    extra=st.lists(any_text, max_size=3),
    pull_requests=st.booleans(),
)
def test_every_tag_is_a_valid_docker_tag(branch, tag, pull_request, known, extra, pull_requests):
    build = info(branch=branch, tag=tag, pull_request=pull_request)
    try:
        tags = compute(build, known, {branch or "": extra}, pull_requests)
    except BuildToolsError as exc:  # names with no usable character, git tags too long
        assert "cannot be made into a Docker tag" in str(exc) or (
            tag is not None and "Docker allows at most 128" in str(exc)
        )
        return
    assert all(DOCKER_TAG.match(name) for name in names(tags))
    assert len(set(names(tags))) == len(tags)


@given(version=versions, pre=prerelease, known=st.lists(versions.map(str), max_size=6))
def test_a_prerelease_never_gets_floating_tags(version, pre, known) -> None:
    release = version.replace(prerelease=pre)
    tags = compute(info(tag=f"v{release}"), known)
    assert [(t.name, t.floating, t.protected) for t in tags] == [
        (str(release), False, True),
        ("sha-0123abc", False, False),
    ]


@given(st.sets(versions, min_size=1, max_size=8), st.lists(prerelease, max_size=3))
def test_latest_exactly_for_the_highest_stable_version(stable, pres) -> None:
    highest = max(stable)
    known = [str(v) for v in stable] + [
        str(highest.bump_major().replace(prerelease=p)) for p in pres
    ]
    for version in stable:
        tags = names(compute(info(tag=f"v{version}"), known))
        assert ("latest" in tags) == (version == highest)
        assert tags[0] == str(version)


@given(st.sets(versions, min_size=1, max_size=8))
def test_floating_series_tags_only_for_the_highest_in_series(stable) -> None:
    for version in stable:
        tags = names(compute(info(tag=f"v{version}"), [str(v) for v in stable]))
        same_minor = [v for v in stable if (v.major, v.minor) == (version.major, version.minor)]
        same_major = [v for v in stable if v.major == version.major]
        assert (f"{version.major}.{version.minor}" in tags) == (version == max(same_minor))
        assert (str(version.major) in tags) == (version == max(same_major))


def test_parse_version() -> None:
    assert parse_version("v1.2.3") == semver.Version(1, 2, 3)
    assert parse_version("1.2.3-rc.1") == semver.Version(1, 2, 3, "rc.1")
    assert parse_version("v1.2") is None
    assert parse_version("version") is None


def test_a_branch_named_like_another_branchs_extra_tag_is_prefixed() -> None:
    extra = {"master": ["edge", "nightly"]}
    assert names(compute(info(branch="nightly"), extra=extra)) == ["sha-0123abc", "branch-nightly"]
    assert names(compute(info(branch="master"), extra={"master": ["master", "edge"]})) == [
        "sha-0123abc",
        "master",
        "edge",
    ]


def test_a_custom_sha_prefix_is_a_kind_prefix_too() -> None:
    got = compute(info(branch="git-hooks"), sha_prefix="git-")
    assert names(got) == ["git-0123abc", "branch-git-hooks"]


def test_non_ascii_names_get_distinct_tags() -> None:
    first, second = sanitize("фича"), sanitize("ошибка")
    assert first != second and DOCKER_TAG.match(first) and DOCKER_TAG.match(second)
    assert sanitize("фича") == first  # the same branch always gets the same tag
    assert sanitize("ünïcode") == "unicode"


def test_a_git_tag_too_long_for_docker_is_refused_before_anything() -> None:
    long_release = "v2.0.0-" + "a" * 130
    with pytest.raises(BuildToolsError, match="would be the Docker tag of 136 characters"):
        choose(info(tag=long_release))
    with pytest.raises(BuildToolsError, match="Docker allows at most 128"):
        choose(info(tag="deploy-" + "b" * 125))


def test_a_long_branch_cache_tag_is_shortened_with_a_hash() -> None:
    branch_a = TagPolicy().branch_tag("x" * 120 + "a")
    branch_b = TagPolicy().branch_tag("x" * 120 + "b")
    a, b = prefixed("cache-app-", branch_a), prefixed("cache-app-", branch_b)
    assert len(a) == len(b) == 128 and a != b
    assert DOCKER_TAG.match(a) and a.startswith("cache-app-xxx")


# --- bad input (tests/fixtures/bad_input.py): names that cannot be tags as they are ---


def _long_release_tag(app: App) -> dict[str, str]:
    app.repo.tag("v2.0.0-" + "a" * 130)
    return {}


def _long_plain_tag(app: App) -> dict[str, str]:
    app.repo.tag("deploy-" + "b" * 125)
    return {}


# Issue 18: git tags too long for Docker. Each row changes nothing (tests/fixtures/bad_input.py):
# (case, set-up (returns extra env; CWD runs the task elsewhere, {OLD} is put into the args),
#  task args, environment, invoke.yaml extra lines, the error line holds, it must not hold)
INTEGRITY_FAILURES = [
    (
        "7: a release tag too long for Docker",
        _long_release_tag,
        ["build", "--dry-run"],
        {},
        "",
        "would be the Docker tag of 136 characters; Docker allows at most 128",
        None,
    ),
    (
        "7: a plain git tag too long for Docker",
        _long_plain_tag,
        ["version"],
        {},
        "",
        "Docker allows at most 128",
        None,
    ),
]


@pytest.mark.parametrize("row", whole_rows(INTEGRITY_FAILURES))
def test_integrity_failures_are_one_line_and_change_nothing(app: App, row: tuple) -> None:
    changes_nothing_and_fails_in_one_line(app, *row)


# A name that would pose as another kind of tag gets a prefix saying its kind, before anything
# is built: (case, set-up git commands, environment, invoke.yaml extra, expected image tags
# with {sha}, a tag that must not be among them).
POSING_NAMES = [
    (
        "2: a git tag named latest on a feature branch",
        [["checkout", "-q", "-b", "feature/x"], ["tag", "latest"]],
        {},
        "",
        ["tag-latest", "sha-{sha}"],
        "latest",
    ),
    (
        "2: a git tag named 1.2",
        [["tag", "1.2"]],
        {},
        "",
        ["tag-1.2", "sha-{sha}"],
        "1.2",
    ),
    (
        "2: a git tag named like the release branch",
        [["tag", "main"]],
        {},
        "",
        ["tag-main", "sha-{sha}"],
        "main",
    ),
    (
        "2: a branch named edge, every branch released",
        [["checkout", "-q", "-b", "edge"]],
        {"INVOKE_BUILDTOOLS_RELEASE_BRANCHES": "*"},
        "",
        ["sha-{sha}", "branch-edge"],
        "edge",
    ),
    (
        "2: a branch named like a PR tag",
        [["checkout", "-q", "-b", "pr-5"]],
        {"INVOKE_BUILDTOOLS_RELEASE_BRANCHES": "*"},
        "",
        ["sha-{sha}", "branch-pr-5"],
        "pr-5",
    ),
    (
        "2: a branch named like a stage cache",
        [["checkout", "-q", "-b", "cache-app-master"]],
        {"INVOKE_BUILDTOOLS_RELEASE_BRANCHES": "*"},
        "",
        ["sha-{sha}", "branch-cache-app-master"],
        "cache-app-master",
    ),
    (
        "7: a 120-character branch",
        [["checkout", "-q", "-b", "feature/" + "c" * 120]],
        {},
        "",
        None,
        None,
    ),
    (
        "18: a non-ASCII branch",
        [["checkout", "-q", "-b", "\u0444\u0438\u0447\u0430"]],
        {},
        "",
        None,
        None,
    ),
    (
        "18: a Docker Hub branch named like a version, git has other tags",
        [["tag", "v1.0.0", "HEAD"], ["commit", "-q", "--allow-empty", "-m", "next"]],
        {"SOURCE_BRANCH": "1.2.0", "SOURCE_COMMIT": "{head}"},
        "",
        ["sha-{sha}", "branch-1.2.0"],
        "1.2.0",
    ),
]


@pytest.mark.parametrize(
    ("case", "commands", "env", "extra", "expected", "never"),
    POSING_NAMES,
    ids=[row_id(row) for row in POSING_NAMES],
)
def test_names_posing_as_another_kind_get_a_prefix_before_anything_is_built(
    app: App,
    case: str,
    commands: list[list[str]],
    env: dict[str, str],
    extra: str,
    expected: list[str] | None,
    never: str | None,
) -> None:
    for command in commands:
        app.repo.git(*command)
    head = app.repo.head()
    env = {key: value.replace("{head}", head) for key, value in env.items()}
    done = app.invoke(
        "build", "--dry-run", "--json", env={**NO_ENGINE, **env}, yaml=app_yaml(app.name, extra)
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    plans = json.loads(done.stdout)
    app_plan = next(plan for plan in plans if plan["name"] == "app")
    app_tags = [ref.rpartition(":")[2] for ref in app_plan["tags"]]
    assert all(VALID_TAG.match(tag) and len(tag) <= 128 for tag in app_tags), app_tags
    if expected is not None:
        assert app_tags == [tag.format(sha=head[:7]) for tag in expected]
    if never is not None:
        assert never not in app_tags
