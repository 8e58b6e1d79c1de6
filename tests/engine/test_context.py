"""The commit-tree build context, read from real git repositories (no engine: a tar only)."""

from __future__ import annotations

import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from buildtools.engine import context
from buildtools.errors import BuildToolsError
from buildtools.facts import source_tree
from tests.fixtures.git import GitRepo


def members(repo: GitRepo, subdir: str = "app") -> tuple[dict[str, tarfile.TarInfo], bytes]:
    """The tar's entries by name, and the Dockerfile it carries."""
    tree = source_tree.read(repo.path, repo.head(), repo.path / subdir)
    archive = context.commit_archive(tree, "X.Dockerfile", "FROM scratch\n", ["X.Dockerfile"])
    with archive, tarfile.open(fileobj=archive) as tar:
        dockerfile = tar.extractfile("X.Dockerfile")
        assert dockerfile is not None
        return {m.name: m for m in tar.getmembers()}, dockerfile.read()


def test_the_context_is_the_commit_with_its_own_dockerignore(repo: GitRepo) -> None:
    repo.write("app/.dockerignore", "logs\n*.tmp\n!keep.tmp\n")
    repo.write("app/src/main.rb", "puts 1\n")
    repo.write("app/logs/today.log", "x\n")
    repo.write("app/a.tmp", "x\n")
    repo.write("app/keep.tmp", "kept\n")
    repo.write("app/run.sh", "#!/bin/sh\n").chmod(0o755)
    (repo.path / "app" / "link").symlink_to("src/main.rb")
    repo.write("other/outside.txt", "not in the context\n")
    repo.commit("app")
    repo.write("app/untracked.txt", "never\n")  # untracked
    repo.write("app/src/main.rb", "puts 2\n")  # an edit, not committed
    repo.git("update-index", "--skip-worktree", "app/src/main.rb")

    found, dockerfile = members(repo)

    files = {name for name, m in found.items() if not m.isdir()}
    assert files == {
        "src/main.rb", "keep.tmp", "run.sh", "link", ".dockerignore", "X.Dockerfile",
    }  # fmt: skip
    assert found["run.sh"].mode == 0o755 and found["keep.tmp"].mode == 0o644
    assert found["link"].issym() and found["link"].linkname == "src/main.rb"
    assert found["src"].isdir() and found["src/main.rb"].size == len("puts 1\n")
    assert {m.mtime for m in found.values()} == {context.FIXED_TIME}
    assert {(m.uid, m.gid) for m in found.values()} == {(0, 0)}
    assert dockerfile == b"FROM scratch\n"


def test_untracked_files_are_listed_relative_to_the_context(repo: GitRepo) -> None:
    repo.write("app/committed.txt", "x\n")
    repo.write(".gitignore", "*.log\n")
    repo.commit("app")
    repo.write("app/new.txt", "x\n")
    repo.write("app/debug.log", "ignored\n")
    repo.write("elsewhere.txt", "x\n")

    tree = source_tree.read(repo.path, repo.head(), repo.path / "app")

    assert source_tree.untracked(tree) == ("new.txt",)
    assert tree.tree_id == repo.git("rev-parse", "HEAD:app")


def test_the_same_files_of_two_commits_make_the_same_tar(repo: GitRepo) -> None:
    repo.write("app/file.txt", "same\n")
    repo.commit("one")
    first = source_tree.read(repo.path, repo.head(), repo.path / "app")
    repo.commit("two")  # another file, outside the context
    second = source_tree.read(repo.path, repo.head(), repo.path / "app")

    tars = []
    for tree in (first, second):
        with context.commit_archive(tree, "D", "FROM scratch\n") as f:
            tars.append(f.read())

    assert first.commit != second.commit and tars[0] == tars[1]


def test_a_generated_folders_digest_is_its_files_not_their_times(tmp_path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "nginx.conf").write_text("events {}\n")
    before = context.folder_digest(tmp_path)
    (tmp_path / "a" / "nginx.conf").touch()
    assert context.folder_digest(tmp_path) == before
    (tmp_path / "a" / "nginx.conf").write_text("events { }\n")
    assert context.folder_digest(tmp_path) != before


def with_submodule(make_repo: Callable[..., GitRepo]) -> tuple[GitRepo, str]:
    """A repository whose context ``app`` holds a submodule ``vendor/lib`` (its commit
    recorded with ``lib.rb`` saying 1), and the recorded commit."""
    lib = make_repo("lib")
    lib.write("lib.rb", "version 1\n")
    recorded = lib.commit("lib 1")
    lib.write("lib.rb", "version 2\n")
    lib.commit("lib 2")  # later than what the app records
    repo = make_repo("app-repo")
    repo.write("app/main.rb", "require 'lib'\n")
    allow = ("-c", "protocol.file.allow=always")
    repo.git(*allow, "submodule", "add", "-q", f"file://{lib.path}", "app/vendor/lib")
    GitRepo(repo.path / "app" / "vendor" / "lib", repo.env).checkout(recorded)
    repo.commit("app with its library")
    return repo, recorded


def test_a_submodules_files_are_built_at_the_commit_the_tree_records(
    make_repo: Callable[..., GitRepo],
) -> None:
    repo, recorded = with_submodule(make_repo)
    checkout = GitRepo(repo.path / "app" / "vendor" / "lib", repo.env)
    checkout.checkout("master")  # the submodule's working tree moves on: not the commit's
    checkout.write("lib.rb", "an edit in the submodule\n")

    tree = source_tree.read(repo.path, repo.head(), repo.path / "app")
    archive = context.commit_archive(tree, "D", "FROM scratch\n", ["D"])
    with archive, tarfile.open(fileobj=archive) as tar:
        lib = tar.extractfile("vendor/lib/lib.rb")
        assert lib is not None and lib.read() == b"version 1\n"
        assert "main.rb" in tar.getnames()
    assert tree.tree_id == repo.git("rev-parse", "HEAD:app")  # the gitlink binds the commit
    assert repo.git("rev-parse", "HEAD:app/vendor/lib") == recorded


def test_a_submodule_not_checked_out_is_one_line_unless_ignored(
    make_repo: Callable[..., GitRepo], tmp_path: Path
) -> None:
    repo, recorded = with_submodule(make_repo)
    clone = repo.clone(tmp_path / "fresh-ci-clone")  # no --recurse-submodules, as CI clones
    tree = source_tree.read(clone.path, clone.head(), clone.path / "app")

    with pytest.raises(BuildToolsError) as caught:
        context.commit_archive(tree, "D", "FROM scratch\n", ["D"])
    assert "submodule vendor/lib" in str(caught.value) and recorded[:7] in str(caught.value)
    assert "git submodule update --init" in (caught.value.fix or "")

    clone.write("app/.dockerignore", "vendor/lib\n")
    clone.commit("the image does not need the library")
    tree = source_tree.read(clone.path, clone.head(), clone.path / "app")
    archive = context.commit_archive(tree, "D", "FROM scratch\n", ["D"])
    with archive, tarfile.open(fileobj=archive) as tar:
        names = tar.getnames()
    assert "main.rb" in names and not any(n.startswith("vendor/lib") for n in names)
