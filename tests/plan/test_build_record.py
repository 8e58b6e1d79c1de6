"""The build record round-trips through JSON and refuses what is not one."""

from __future__ import annotations

import json

import pytest

from buildtools.plan.build_record import COMMIT, WORKTREE, BuildRecord


def record(**changes) -> BuildRecord:
    values = {
        "image": "app",
        "repository": "concordconsortium/lara",
        "image_id": "sha256:" + "a" * 64,
        "commit": "b" * 40,
        "source": COMMIT,
        "context_tree": "c" * 40,
        "dockerfile_digest": "sha256:" + "d" * 64,
        "build_args": {"LARA_VERSION": "1.2.3"},
        "base_image": "sha256:" + "e" * 64,
        "created": "2026-12-06T08:00:00Z",
    }
    values.update(changes)
    return BuildRecord(**values)


def test_a_record_reads_back_as_written() -> None:
    written = record(smoke_test={"path": "/", "passed": True})
    assert BuildRecord.from_json(written.to_json()) == written


def test_only_a_commit_tree_build_is_releasable() -> None:
    assert record().releasable
    assert not record(source=WORKTREE, context_tree="").releasable
    assert not record(context_tree="").releasable


@pytest.mark.parametrize(
    "change",
    [
        {"extra": "x"},
        {"image_id": 5},
        {"build_args": {"A": 1}},
        {"build_args": ["A"]},
        {"smoke_test": "passed"},
    ],
)
def test_anything_else_is_refused(change: dict) -> None:
    data = {**record().as_dict(), **change}
    with pytest.raises(ValueError, match="not a build record"):
        BuildRecord.from_json(json.dumps(data))


def test_a_missing_field_is_refused() -> None:
    data = record().as_dict()
    del data["commit"]
    with pytest.raises(ValueError, match="not a build record"):
        BuildRecord.from_dict(data)
