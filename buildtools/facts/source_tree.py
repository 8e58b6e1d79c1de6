"""The files git has at a commit under a build context: what a releasable image is built from.

A working tree holds more than the commit (untracked and ignored files) and may hide edits from
``git status`` (``update-index --skip-worktree`` / ``--assume-unchanged``); the commit's own
tree holds exactly what was committed. This module lists that tree (paths, modes, blob IDs)
and reads its blobs; :mod:`buildtools.engine.context` streams them to the engine.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")  # as gitinfo: one line when git is missing
import git

from buildtools.errors import BuildToolsError

# git's modes for what a tree may hold; a submodule (gitlink) has no files of its own here.
FILE, EXECUTABLE, SYMLINK, GITLINK = 0o100644, 0o100755, 0o120000, 0o160000
# A git-lfs pointer file (https://github.com/git-lfs/git-lfs/blob/main/docs/spec.md): the
# committed blob of an LFS-tracked file, which git-lfs's filter replaces in the working tree.
LFS_POINTER = re.compile(
    rb"version https://git-lfs\.github\.com/spec/v1\n(?:[a-z0-9.-]+ [^\n]*\n)*?"
    rb"oid sha256:(?P<oid>[0-9a-f]{64})\nsize (?P<size>[0-9]+)\n(?:[a-z0-9.-]+ [^\n]*\n)*"
)
LFS_POINTER_MAX = 1024


@dataclass(frozen=True)
class TreeFile:
    """One file of the commit under the context: its path relative to the context (POSIX),
    its git mode and its blob ID. ``module``: the submodule checkout (relative to the
    checkout's root) whose objects hold the blob, ``""`` for the checkout's own. A
    :data:`GITLINK` entry is a submodule whose commit is not here to read (not checked out,
    or not fetched): its ``blob`` is that commit."""

    path: str
    mode: int
    blob: str
    module: str = ""


@dataclass(frozen=True)
class CommitTree:
    """The context directory as the commit has it. ``tree_id``: git's tree ID of that
    directory (equal trees, equal content); ``subdir``: the context relative to the checkout's
    root (``""`` for the root); ``commit_time``: when the commit was made."""

    root: Path
    commit: str
    subdir: str
    tree_id: str
    files: tuple[TreeFile, ...]
    commit_time: int

    def path_of(self, path: Path) -> str | None:
        """``path`` (on disk) relative to the context, when it is inside it; else None."""
        try:
            inner = path.resolve().relative_to((self.root / self.subdir).resolve())
        except ValueError:
            return None
        return inner.as_posix()


def _open(path: Path) -> git.Repo:
    try:
        return git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, git.GitCommandNotFound):
        raise BuildToolsError(
            f"{path} is not in a git checkout: a releasable image is built from a commit",
            "build inside the app's git checkout (or use invoke build --worktree for a local "
            "image that is never released)",
        ) from None


def inside(root: Path, path: Path) -> str | None:
    """``path`` relative to the checkout ``root`` (POSIX, ``""`` for the root itself), or None
    when it lies outside it."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix().strip(".")
    except ValueError:
        return None


def checkout_root(path: Path) -> Path | None:
    """The working tree root of the checkout holding ``path``; None outside any checkout."""
    try:
        repo = git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, git.GitCommandNotFound):
        return None
    try:
        return Path(repo.working_tree_dir) if repo.working_tree_dir else None
    finally:
        repo.close()


def git_dir(path: Path) -> Path | None:
    """This checkout's own git directory (a linked worktree has its own); None outside git."""
    try:
        repo = git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, git.GitCommandNotFound):
        return None
    try:
        return Path(repo.git_dir).resolve()
    finally:
        repo.close()


def read(repo_path: Path, commit: str, context: Path) -> CommitTree:
    """The commit's tree under ``context`` (a folder of the checkout at ``repo_path``), or one
    line saying why there is none: outside the checkout, or not in that commit."""
    repo = _open(repo_path)
    try:
        root = Path(repo.working_tree_dir or repo_path)
        subdir = inside(root, context)
        if subdir is None:
            raise BuildToolsError(
                f"the build context {context} is outside the git checkout {root}: it is not "
                f"commit {commit[:7]}",
                "set buildtools.app.context to a folder of the checkout (or use invoke build "
                "--worktree for a local image that is never released)",
            )
        found = repo.commit(commit)
        tree = found.tree
        if subdir:
            try:
                tree = tree / subdir
            except KeyError:
                raise BuildToolsError(
                    f"commit {commit[:7]} has no folder {subdir}: the build context is not "
                    "committed",
                    f"commit {subdir} (git add {subdir} && git commit)",
                ) from None
        if tree.type != "tree":
            raise BuildToolsError(
                f"{subdir} is not a folder in commit {commit[:7]}", "point the context at a folder"
            )
        prefix = f"{subdir}/" if subdir else ""
        files = tuple(_files(tree, root, "", prefix, ""))
        return CommitTree(root, found.hexsha, subdir, tree.hexsha, files, found.committed_date)
    except (git.GitCommandError, ValueError) as exc:
        raise BuildToolsError(
            f"git cannot read commit {commit[:7]} in {repo_path}: {exc}",
            "check that the checkout is not corrupt (git fsck)",
        ) from None
    finally:
        repo.close()


def _files(tree: git.Tree, root: Path, module: str, strip: str, into: str) -> Iterator[TreeFile]:
    """The blobs of ``tree`` (the checkout's, or the submodule's at ``module``) with ``strip``
    taken off their paths and ``into`` put before them, and the files of each submodule in it
    at the commit the tree records: a working-tree build has them, so a commit build must."""
    for item in tree.traverse():
        path = into + item.path[len(strip) :]
        if item.type == "blob":
            yield TreeFile(path, item.mode, item.hexsha, module)
        elif item.type == "submodule":
            where = f"{module}/{item.path}" if module else item.path
            found = list(_submodule_files(root, where, item.hexsha, f"{path}/"))
            yield from found or [TreeFile(path, GITLINK, item.hexsha, module)]


def _submodule_files(root: Path, where: str, commit: str, into: str) -> Iterator[TreeFile]:
    """The files of ``commit`` in the submodule checked out at ``where``; none when it is not
    checked out there or does not hold that commit (an empty submodule commit is too rare
    to tell apart)."""
    try:
        repo = git.Repo(root / where)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return
    try:
        tree = repo.commit(commit).tree
        yield from list(_files(tree, root, where, "", into))
    except (ValueError, git.GitCommandError):
        return
    finally:
        repo.close()


def blobs(tree: CommitTree) -> Iterator[tuple[TreeFile, bytes]]:
    """Each file of ``tree`` with its bytes, through one ``git cat-file`` process per
    repository (the checkout's, and each submodule's). A git-lfs pointer gives the file it
    points at (what the working tree, and so a working-tree build, holds)."""
    repos: dict[str, git.Repo] = {}
    try:
        for item in tree.files:
            if item.module not in repos:
                repos[item.module] = _open(tree.root / item.module)
            repo = repos[item.module]
            data = repo.odb.stream(bytes.fromhex(item.blob)).read()
            pointer = LFS_POINTER.fullmatch(data) if len(data) < LFS_POINTER_MAX else None
            if pointer is not None and item.mode != SYMLINK:
                data = _lfs_object(repo, tree, item, pointer)
            yield item, data
    finally:
        for repo in repos.values():
            repo.close()


def _lfs_object(
    repo: git.Repo, tree: CommitTree, item: TreeFile, pointer: re.Match[bytes]
) -> bytes:
    """The file a git-lfs pointer names, from the checkout's LFS store, checked against the
    pointer's SHA-256 and size (so the commit still binds the content); one line when it is
    not fetched: an image must not hold the pointer in its place."""
    oid, size = pointer["oid"].decode(), int(pointer["size"])
    stored = Path(repo.common_dir) / "lfs" / "objects" / oid[:2] / oid[2:4] / oid
    try:
        data = stored.read_bytes() if stored.stat().st_size == size else b""
    except OSError:
        data = b""
    if len(data) != size or hashlib.sha256(data).hexdigest() != oid:
        raise BuildToolsError(
            f"{item.path} in commit {tree.commit[:7]} is a git-lfs pointer whose file is not "
            "here: the image would hold the pointer instead",
            "git lfs pull (git lfs fetch, then build again), or list it in .dockerignore",
        )
    return data


def read_file(tree: CommitTree, repo_path: Path, path: Path) -> str | None:
    """A file of the commit (``path`` on disk, anywhere in the checkout) as UTF-8 text; None
    when the checkout does not hold it at that commit (e.g. a Dockerfile outside the repository
    or never committed)."""
    inner = inside(tree.root, path)
    if not inner:
        return None
    repo = _open(repo_path)
    try:
        blob = repo.commit(tree.commit).tree / inner
        if blob.type != "blob":
            return None
        data = blob.data_stream.read()
    except KeyError:
        return None
    finally:
        repo.close()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BuildToolsError(
            f"{path} (at commit {tree.commit[:7]}) is not UTF-8 text (byte {exc.start} cannot "
            "be decoded)",
            "save the Dockerfile as UTF-8",
        ) from None


def untracked(tree: CommitTree) -> tuple[str, ...]:
    """Files under the context that git does not track and does not ignore (relative to the
    context): what a commit-tree build leaves out that the user may have meant to add."""
    repo = _open(tree.root)
    try:
        where = tree.subdir or "."
        out = repo.git.ls_files("--others", "--exclude-standard", "-z", "--", where)
    except git.GitCommandError:
        return ()
    finally:
        repo.close()
    prefix = f"{tree.subdir}/" if tree.subdir else ""
    return tuple(p[len(prefix) :] for p in out.split("\0") if p)
