"""The tag policy for any input (hypothesis): every tag is a valid Docker tag, a prerelease never
floats, latest and the series tags go only to the highest version.
"""

from __future__ import annotations

import unicodedata

import pytest
import semver
from hypothesis import example, given
from hypothesis import strategies as st

from buildtools.errors import BuildToolsError
from buildtools.plan.tags import sanitize
from tests.fixtures.tag_policy import DOCKER_TAG, compute, info, names

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
