"""A commit's files as a build reads them, from real git repositories: a git-lfs pointer gives
the file it points at, or one line when that file is not here.

git-lfs itself is not installed on the test machines: the tests commit the pointer file and
put the object in the checkout's LFS store where git-lfs keeps it
(``<git dir>/lfs/objects/<oid[0:2]>/<oid[2:4]>/<oid>``), as ``git lfs pull`` leaves them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from buildtools.errors import BuildToolsError
from buildtools.facts import source_tree
from tests.fixtures.git import GitRepo

LOGO = bytes(range(256)) * 40  # a binary asset, as LFS tracks them


def pointer(data: bytes) -> str:
    oid = hashlib.sha256(data).hexdigest()
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {len(data)}\n"


def store(repo: GitRepo, data: bytes) -> Path:
    oid = hashlib.sha256(data).hexdigest()
    path = repo.path / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4] / oid
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def files(repo: GitRepo) -> dict[str, bytes]:
    tree = source_tree.read(repo.path, repo.head(), repo.path / "app")
    return {item.path: data for item, data in source_tree.blobs(tree)}


def lfs_repo(repo: GitRepo) -> GitRepo:
    repo.write("app/.gitattributes", "*.png filter=lfs diff=lfs merge=lfs -text\n")
    repo.write("app/public/logo.png", pointer(LOGO))  # what git-lfs's clean filter commits
    repo.write("app/docs/about-lfs.txt", "not a pointer\n")
    repo.commit("assets in LFS")
    return repo


def test_an_lfs_pointer_gives_the_file_it_points_at(repo: GitRepo) -> None:
    lfs_repo(repo)
    store(repo, LOGO)

    found = files(repo)

    assert found["public/logo.png"] == LOGO
    assert found["docs/about-lfs.txt"] == b"not a pointer\n"


def test_an_lfs_file_not_fetched_or_damaged_is_one_line(repo: GitRepo) -> None:
    lfs_repo(repo)
    with pytest.raises(BuildToolsError) as caught:
        files(repo)
    assert "public/logo.png" in str(caught.value) and "git-lfs pointer" in str(caught.value)
    assert "git lfs pull" in (caught.value.fix or "")

    store(repo, LOGO).write_bytes(LOGO[:-1] + b"x")  # same size, other bytes: not the commit's
    with pytest.raises(BuildToolsError, match="git-lfs pointer whose file is not here"):
        files(repo)
