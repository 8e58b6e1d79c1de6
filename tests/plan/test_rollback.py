"""Which floating tag may go back to which release, the marker's shape, and the hold a marker
puts on the next release's tags: plain values."""

from __future__ import annotations

import json

import pytest

from buildtools.errors import BuildToolsError
from buildtools.plan import rollback
from buildtools.plan.tags import ImageTag

RELEASES = ["1.1.0", "1.2.0", "1.2.1", "2.0.0", "2.0.0-rc.1"]


@pytest.mark.parametrize(
    ("tag", "version"), [("latest", "1.1.0"), ("1", "1.2.0"), ("1.2", "1.2.0"), ("2", "2.0.0")]
)
def test_a_release_of_the_tags_kind_is_accepted(tag: str, version: str) -> None:
    rollback.check_target(tag, version, RELEASES)


@pytest.mark.parametrize(
    ("tag", "version", "says"),
    [
        ("1.2", "2.0.0", "not a 1.2.x release"),
        ("1", "2.0.0", "not a 1.x release"),
        ("1.2", "1.1.0", "not a 1.2.x release"),
        ("latest", "2.0.0-rc.1", "pre-release"),
        ("latest", "v1.2.0", "not a release version"),
        ("latest", "3.0.0", "not in every registry"),
        ("edge", "1.2.0", "not a floating release tag"),
        ("master", "1.2.0", "not a floating release tag"),
    ],
)
def test_anything_else_is_refused_in_one_line(tag: str, version: str, says: str) -> None:
    with pytest.raises(BuildToolsError) as caught:
        rollback.check_target(tag, version, RELEASES)
    assert says in caught.value.problem and "\n" not in str(caught.value)


def test_the_marker_says_what_was_rolled_back_and_reads_back() -> None:
    body = rollback.marker_manifest("latest", "1.2.0", "sha256:" + "a" * 64, "2026-12-06T09:00:00Z")
    assert json.loads(body)["config"]["digest"] == rollback.EMPTY_DIGEST
    marker = rollback.parse_marker("latest", body)
    assert (marker.version, marker.digest) == ("1.2.0", "sha256:" + "a" * 64)
    assert rollback.parse_marker("latest", b"not json").version == "?"


def test_a_held_floating_tag_is_left_out_and_said_forced_it_stays() -> None:
    tags = (
        ImageTag("3.0.0", False, "release", protected=True),
        ImageTag("3", True, "x"),
        ImageTag("latest", True, "x"),
    )
    held = rollback.held({("reg", "lara/app"): ["rollback-latest", "3.0.0", "latest"]})
    assert held == {"latest": ["reg/lara/app"]}
    kept, notes = rollback.hold(tags, held)
    assert [t.name for t in kept] == ["3.0.0", "3"] and "leaves it alone" in notes[0]
    kept, notes = rollback.hold(tags, held, force=True)
    assert [t.name for t in kept] == ["3.0.0", "3", "latest"] and "--force" in notes[0]
