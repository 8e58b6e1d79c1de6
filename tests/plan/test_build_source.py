"""Which files a build is made from, and when a build record proves an image: pure rules."""

from __future__ import annotations

import dataclasses

import pytest

from buildtools.errors import BuildToolsError
from buildtools.plan import build_source
from buildtools.plan.build_record import COMMIT, WORKTREE, BuildRecord
from buildtools.plan.build_source import Wanted

COMMIT_ID = "c" * 40
RECORD = BuildRecord(
    image="app",
    repository="lara/app",
    image_id="sha256:" + "1" * 64,
    commit=COMMIT_ID,
    source=COMMIT,
    context_tree="t" * 40,
    dockerfile_digest="sha256:" + "d" * 64,
    build_args={"LARA_VERSION": "1.2.3", "BASE_IMAGE": "sha256:" + "b" * 64},
    base_image="sha256:" + "b" * 64,
    created="2026-01-01T00:00:00Z",
)
WANTED = Wanted(
    "app", COMMIT_ID, "t" * 40, "sha256:" + "d" * 64, build_args={"LARA_VERSION": "1.2.3"}
)


@pytest.mark.parametrize(
    ("fields", "kind", "why"),
    [
        ({}, COMMIT, ""),
        ({"worktree": True}, WORKTREE, "--worktree"),
        ({"dirty": True}, WORKTREE, "uncommitted changes"),
        ({"in_checkout": False}, WORKTREE, "outside the git checkout"),
        ({"releasing": True}, COMMIT, ""),
    ],
)
def test_a_build_is_the_commit_unless_it_cannot_or_is_asked_not_to_be(
    fields: dict, kind: str, why: str
) -> None:
    given = {"releasing": False, "worktree": False, "dirty": False, "in_checkout": True, **fields}
    chosen = build_source.choose(**given, context="/src/app")
    assert chosen.kind == kind and why in chosen.why


def test_a_release_of_a_context_outside_the_checkout_is_refused() -> None:
    with pytest.raises(BuildToolsError) as error:
        build_source.choose(
            releasing=True, worktree=False, dirty=False, in_checkout=False, context="/elsewhere"
        )
    assert "/elsewhere is not in the git checkout" in error.value.problem
    assert "buildtools.app.context" in error.value.fix


def test_left_out_files_are_one_line_naming_how_many_and_the_fix() -> None:
    assert build_source.left_out_note(0) is None
    one, three = build_source.left_out_note(1), build_source.left_out_note(3)
    assert one is not None and one.startswith("1 untracked file in the build context left out")
    assert three is not None and three.startswith("3 untracked files")
    assert "--worktree" in three and "commit them" in three


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"commit": "f" * 40}, "commit fffffff"),
        ({"source": WORKTREE, "context_tree": ""}, "working tree"),
        ({"image": "nginx"}, "of the nginx image"),
        ({"context_tree": "o" * 40}, "another build context"),
        ({"dockerfile_digest": "sha256:" + "e" * 64}, "another Dockerfile"),
        ({"build_args": {"LARA_VERSION": "1.2.4"}}, "another LARA_VERSION"),
    ],
)
def test_a_record_of_other_inputs_does_not_prove_the_image(change: dict, why: str) -> None:
    assert build_source.mismatch(RECORD, WANTED) is None
    found = build_source.mismatch(dataclasses.replace(RECORD, **change), WANTED)
    assert found is not None and why in found


def test_no_record_never_proves_an_image() -> None:
    found = build_source.mismatch(None, WANTED)
    assert found is not None and "no build record" in found


def test_promotion_without_keys_needs_a_record_of_exactly_that_config() -> None:
    smoked = dataclasses.replace(RECORD, smoke_test={"path": "/", "expected": "1.2.3"})
    digest = RECORD.image_id
    assert build_source.keyless_promotable(smoked, digest, COMMIT_ID, True) is None
    assert build_source.keyless_promotable(RECORD, digest, COMMIT_ID, False) is None
    refusals = [
        build_source.keyless_promotable(None, digest, COMMIT_ID, False),
        build_source.keyless_promotable(RECORD, "sha256:" + "2" * 64, COMMIT_ID, False),
        build_source.keyless_promotable(RECORD, digest, "f" * 40, False),
        build_source.keyless_promotable(RECORD, digest, COMMIT_ID, True),
    ]
    assert "labels are no proof" in str(refusals[0]) and "labels are no proof" in str(refusals[1])
    assert "not a commit-tree build of this commit" in str(refusals[2])
    assert "no passed smoke test" in str(refusals[3])
