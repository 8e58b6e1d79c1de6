"""The release plan and what a release accepts as this build's image (pure: no engine, no
registry; what a registry holds is given as values)."""

from __future__ import annotations

import dataclasses
import re

import pytest

from buildtools.config.registry_address import parse_registry
from buildtools.errors import BuildToolsError
from buildtools.plan import tags
from buildtools.plan.manifests import Manifest
from buildtools.plan.push_order import (
    OVERWRITE,
    PUSH,
    UNCHANGED,
    Push,
    ReleaseImage,
    held_by,
    pushes,
    tag_pairs,
)
from buildtools.release import identity

REGISTRY = parse_registry("127.0.0.1:5000")
IMAGE = ReleaseImage("app", "lara/app", "sha256:" + "1" * 64)


def held(tag: str, config_digest: str) -> dict:
    """What the registry holds: ``tag`` of lara/app with the given image (config digest)."""
    manifest = Manifest("sha256:" + "9" * 64, "application/json", config_digest, 0)
    return {(REGISTRY.name, "lara/app", tag): manifest}


def test_tags_are_ordered_immutable_first_whatever_the_input_order() -> None:
    given = [("latest", True), ("1.2.3", False), ("1", True), ("sha-abc1234", False)]
    assert tag_pairs(given) == [
        ("1.2.3", False),
        ("sha-abc1234", False),
        ("latest", True),
        ("1", True),
    ]
    image_tags = [tags.ImageTag("edge", True, "extra"), tags.ImageTag("sha-1", False, "commit")]
    assert tag_pairs(image_tags) == [("sha-1", False), ("edge", True)]


def test_a_tag_holding_this_image_is_unchanged_and_one_holding_another_is_refused() -> None:
    exact = [tags.ImageTag("1.0.0", False, "release", protected=True)]
    same = pushes([IMAGE], exact, [REGISTRY], held("1.0.0", IMAGE.image_id or ""))
    assert [(p.action, p.verified) for p in same] == [(UNCHANGED, True)]
    other = held("1.0.0", "sha256:" + "2" * 64)
    with pytest.raises(BuildToolsError, match=re.escape("127.0.0.1:5000/lara/app:1.0.0")):
        pushes([IMAGE], exact, [REGISTRY], other)
    assert [p.action for p in pushes([IMAGE], exact, [REGISTRY], other, force=True)] == [OVERWRITE]
    # A (name, False) pair counts as protected too.
    with pytest.raises(BuildToolsError, match="refusing to overwrite"):
        pushes([IMAGE], [("sha-0123abc", False)], [REGISTRY], held("sha-0123abc", "sha256:x"))


def test_nothing_to_push_is_one_line_naming_the_fix() -> None:
    with pytest.raises(BuildToolsError, match="nothing to release") as failure:
        pushes([IMAGE], [], [REGISTRY], {})
    assert "invoke version" in str(failure.value)


def test_a_planned_push_is_a_value_its_record_a_new_one() -> None:
    (push,) = pushes([IMAGE], [("1.0.0", False)], [REGISTRY], {})
    assert (push.action, push.digest, push.verified, push.attempts) == (PUSH, None, False, 0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        push.digest = "sha256:" + "3" * 64  # type: ignore[misc]
    record = dataclasses.replace(push, digest="sha256:" + "3" * 64, verified=True, attempts=2)
    assert isinstance(record, Push) and push.digest is None
    assert record.as_dict()["attempts"] == 2 and "bytes_pushed" not in record.as_dict()


COMMIT = "0123abc4567890def0123abc4567890def012345"


@pytest.mark.parametrize(
    ("labels", "why"),
    [
        ({"dirty": "false", "version": "1.0.0"}, None),
        ({"dirty": "true", "version": "1.0.0+dirty"}, "uncommitted changes"),
        ({"version": "1.0.0"}, "uncommitted changes"),  # no dirty label: not known clean
        ({"dirty": "false", "version": "1.0.1"}, "of version 1.0.1, not 1.0.0"),
        ({"dirty": "false", "version": "1.0.0", "revision": "f" * 40}, "from commit fffffff"),
    ],
    ids=["this build", "dirty", "unknown dirtiness", "other version", "other commit"],
)
def test_only_an_image_of_this_commit_clean_and_this_version_is_this_builds(
    labels: dict[str, str], why: str | None
) -> None:
    given = {
        identity.REVISION_LABEL: labels.get("revision", COMMIT),
        identity.VERSION_LABEL: labels["version"],
    }
    if "dirty" in labels:
        given[identity.DIRTY_LABEL] = labels["dirty"]
    mismatch = identity.Expected(COMMIT, "1.0.0").mismatch(given)
    assert mismatch is None if why is None else why in (mismatch or "")


def test_an_image_built_for_other_tags_is_not_this_builds() -> None:
    """A backport built by `invoke build` before the registries were asked lists `latest` in
    its version.yml; the release, which does not move `latest`, must not push that image."""
    clean = {
        identity.REVISION_LABEL: COMMIT,
        identity.VERSION_LABEL: "1.4.9",
        identity.DIRTY_LABEL: "false",
        identity.TAGS_LABEL: "1.4.9,sha-abc1234,1.4,1,latest",
    }
    expected = identity.Expected(COMMIT, "1.4.9", "1.4.9,sha-abc1234,1.4,1")
    assert "built for the tags 1.4.9,sha-abc1234,1.4,1,latest" in (expected.mismatch(clean) or "")
    assert expected.mismatch({**clean, identity.TAGS_LABEL: "1.4.9,sha-abc1234,1.4,1"}) is None


def test_a_local_image_carries_exactly_this_builds_smoke_test_label() -> None:
    """`invoke build` labels its images `none`; `invoke ci` (with its smoke test) labels its
    own `passed-before-push` and pushes them only after the test: it must not take the local
    image `invoke build` made, nor `invoke release` one a failed `invoke ci` left behind."""
    clean = {
        identity.REVISION_LABEL: COMMIT,
        identity.VERSION_LABEL: "1.0.0",
        identity.DIRTY_LABEL: "false",
        identity.TAGS_LABEL: "1.0.0",
    }
    built = {**clean, identity.SMOKE_LABEL: "none"}
    gated = {**clean, identity.SMOKE_LABEL: "passed-before-push"}
    ci = identity.Expected(COMMIT, "1.0.0", "1.0.0", "passed-before-push")
    plain = identity.Expected(COMMIT, "1.0.0", "1.0.0", "none")
    assert "smoke test 'none', not 'passed-before-push'" in (ci.mismatch(built) or "")
    assert ci.mismatch(gated) is None
    assert "smoke test 'passed-before-push', not 'none'" in (plain.mismatch(gated) or "")
    assert plain.mismatch(built) is None
    # An image from before the label existed is taken as one that promises no smoke test.
    assert plain.mismatch(clean) is None and ci.mismatch(clean) is not None


def test_a_registry_image_stands_in_unless_this_build_promises_a_smoke_test_it_skipped() -> None:
    """Registry copies: one pushed after a passing smoke test is good for any release; one
    pushed without is good for `invoke release`, never for `invoke ci` with its smoke test."""
    clean = {
        identity.REVISION_LABEL: COMMIT,
        identity.VERSION_LABEL: "1.0.0",
        identity.DIRTY_LABEL: "false",
    }
    built = {**clean, identity.SMOKE_LABEL: "none"}
    gated = {**clean, identity.SMOKE_LABEL: "passed-before-push"}
    ci = identity.Expected(COMMIT, "1.0.0", smoke_test="passed-before-push")
    plain = identity.Expected(COMMIT, "1.0.0", smoke_test="none")
    assert ci.unsmoked(built) == "pushed without a smoke test"
    assert ci.unsmoked(clean) == "pushed without a smoke test"  # no label: no claim
    assert ci.unsmoked(gated) is None
    assert plain.unsmoked(built) is None and plain.unsmoked(gated) is None
    assert ci.mismatch(built, in_registry=True) == "pushed without a smoke test"
    assert plain.mismatch(gated, in_registry=True) is None


# --- issue 26, case 8: a release's floating tags are re-checked before they move ---

RELEASE_PAIRS = [
    ("1.2.3", False),
    ("sha-0123abc", False),
    ("1.2", True),
    ("1", True),
    ("latest", True),
]


def test_only_a_stable_releases_floating_tags_carry_the_version_they_move_for() -> None:
    planned = pushes([IMAGE], RELEASE_PAIRS, [REGISTRY], {})
    assert {p.tag: p.release for p in planned} == {
        "1.2.3": None,
        "sha-0123abc": None,
        "1.2": "1.2.3",
        "1": "1.2.3",
        "latest": "1.2.3",
    }
    branch = pushes(
        [IMAGE], [("sha-0123abc", False), ("master", True), ("edge", True)], [REGISTRY], {}
    )
    rc = pushes([IMAGE], [("2.0.0-rc.1", False), ("sha-0123abc", False)], [REGISTRY], {})
    assert all(p.release is None for p in [*branch, *rc])


@pytest.mark.parametrize(
    ("tag", "now", "kept"),
    [
        ("latest", ["1.2.3", "1.3.0"], "1.3.0"),
        ("1", ["1.2.3", "1.3.0", "2.0.0"], "1.3.0"),
        ("1.2", ["1.2.3", "1.3.0"], None),  # 1.3.0 is no 1.2.x
        ("1.2", ["1.2.3", "1.2.10"], "1.2.10"),
        ("latest", ["1.2.3", "1.2.2", "2.0.0-rc.1"], None),  # lower, or a pre-release
        ("latest", ["1.2.3", "1.2.3_b.1", "sha-1", "edge"], None),
        ("latest", [], None),
    ],
)
def test_a_floating_tag_is_held_by_a_higher_release_of_its_series(
    tag: str, now: list[str], kept: str | None
) -> None:
    planned = {p.tag: p for p in pushes([IMAGE], RELEASE_PAIRS, [REGISTRY], {})}
    assert held_by(planned[tag], now) == kept
