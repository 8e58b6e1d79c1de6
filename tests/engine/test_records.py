"""Build records beside a real checkout: written whole, found by image ID, never trusted when
damaged, and two writers at once never leave half a record."""

from __future__ import annotations

import threading

import pytest

from buildtools.engine.records import Store
from buildtools.errors import BuildToolsError
from buildtools.plan.build_record import COMMIT, BuildRecord
from tests.fixtures.git import GitRepo

IMAGE = "sha256:" + "ab" * 32


def record(**fields) -> BuildRecord:
    values = {
        "image": "app", "repository": "lara/app", "image_id": IMAGE, "commit": "c" * 40,
        "source": COMMIT, "context_tree": "t" * 40, "dockerfile_digest": "sha256:" + "d" * 64,
        "build_args": {"LARA_VERSION": "1.0.0"}, "base_image": "debian", "created": "2026",
    }  # fmt: skip
    return BuildRecord(**{**values, **fields})


def test_a_record_is_kept_in_the_checkouts_git_dir_by_image_id(repo: GitRepo) -> None:
    (repo.path / "sub").mkdir()
    store = Store.of(repo.path / "sub")  # any folder of the checkout
    assert store is not None
    path = store.save(record())

    assert path == repo.path / ".git" / "lara-buildtools" / "records" / f"{'ab' * 32}.json"
    assert store.load(IMAGE) == record()
    assert store.load("sha256:" + "cd" * 32) is None and store.load(None) is None
    assert repo.git("status", "--porcelain") == ""  # nothing in the working tree


def test_a_damaged_or_misplaced_record_is_never_trusted(repo: GitRepo) -> None:
    store = Store.of(repo.path)
    assert store is not None
    store.save(record())
    store.path(IMAGE).write_text('{"image": "app"')
    assert store.load(IMAGE) is None
    other = "sha256:" + "ef" * 32  # a record copied under another image's name
    store.path(other).write_text(record().to_json())
    assert store.load(other) is None


def test_the_smoke_test_is_added_to_the_record(repo: GitRepo) -> None:
    store = Store.of(repo.path)
    assert store is not None
    assert store.with_smoke_test(IMAGE, {"path": "/"}) is None  # no record: nothing to add to
    store.save(record())
    updated = store.with_smoke_test(IMAGE, {"path": "/", "expected": "1.0.0"})
    assert updated is not None and store.load(IMAGE) == updated
    assert updated.smoke_test == {"path": "/", "expected": "1.0.0"}


def test_two_writers_at_once_leave_one_whole_record(repo: GitRepo) -> None:
    store = Store.of(repo.path)
    assert store is not None
    versions = [record(build_args={"LARA_VERSION": f"1.0.{n}"}) for n in range(8)]
    errors: list[BaseException] = []

    def write(r: BuildRecord) -> None:
        try:
            for _ in range(25):
                store.save(r)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(r,)) for r in versions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert store.load(IMAGE) in versions
    assert [p.name for p in store.folder.iterdir()] == [f"{'ab' * 32}.json"]  # no leftovers


def test_outside_git_there_is_no_store(tmp_path) -> None:
    assert Store.of(tmp_path) is None


def test_a_records_folder_that_cannot_be_written_is_one_line(repo: GitRepo) -> None:
    # A real fault (the tests run as root, so a read-only mode would not stop a write): a
    # file where the records folder should be.
    store = Store.of(repo.path)
    assert store is not None
    store.folder.parent.mkdir(parents=True)
    store.folder.write_text("not a folder\n")

    with pytest.raises(BuildToolsError) as caught:
        store.save(record())
    assert "cannot write the build record of the app image" in str(caught.value)
    assert str(store.folder) in (caught.value.fix or "") and "\n" not in str(caught.value)
    assert store.load(IMAGE) is None
