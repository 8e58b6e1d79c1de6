"""The build context of a commit-tree build, as the tar the engine is sent.

The files come from git's tree at the commit (:mod:`buildtools.facts.source_tree`), never from
the working tree: an untracked, ignored, skip-worktree or assume-unchanged file cannot reach
the image. The commit's own ``.dockerignore`` is applied with docker-py's pattern matcher (the
engine's own rules); symlinks and the executable bit are kept; every entry gets one fixed time
and uid/gid 0, so the same tree always makes the same tar: the classic builder's cache key of a
``COPY`` includes each file's time, and the commit's would rebuild every step after it on
each new commit (a metadata-only commit must rebuild only the metadata steps).
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import IO

from docker.utils.build import PatternMatcher

from buildtools.errors import BuildToolsError
from buildtools.facts import source_tree
from buildtools.facts.source_tree import EXECUTABLE, GITLINK, SYMLINK, CommitTree

# 2000-01-01T00:00:00Z: not the commit's time (see above); after 1980, which zip-based tools
# need of a file's time.
FIXED_TIME = 946_684_800


def ignore_patterns(text: str) -> list[str]:
    """A ``.dockerignore``'s patterns: blank lines and comments left out."""
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def kept(paths: Sequence[str], patterns: Sequence[str]) -> list[str]:
    """``paths`` (relative to the context) that ``patterns`` do not exclude, as the engine
    would decide (docker-py's :class:`PatternMatcher`, modelled on moby's)."""
    matcher = PatternMatcher(list(patterns))
    return [path for path in paths if not matcher.matches(path)]


def dockerignore_of(tree: CommitTree) -> list[str]:
    """The commit's own ``.dockerignore`` patterns (none when it has none)."""
    text = source_tree.read_file(tree, tree.root, tree.root / tree.subdir / ".dockerignore")
    return ignore_patterns(text or "")


def commit_archive(
    tree: CommitTree,
    dockerfile_name: str,
    dockerfile_text: str,
    excludes: Sequence[str] = (),
) -> IO[bytes]:
    """The tar of ``tree`` with its ``.dockerignore`` applied, plus ``excludes`` (names the
    engine must drop, e.g. the Dockerfile's), a ``.dockerignore`` listing them all and the
    Dockerfile under ``dockerfile_name``."""
    patterns = [*dockerignore_of(tree), ".dockerignore", *excludes]
    wanted = set(kept([f.path for f in tree.files], patterns))
    wanted -= {".dockerignore", dockerfile_name}  # given below, as the engine must see them
    missing = sorted((f.path, f.blob) for f in tree.files if f.mode == GITLINK and f.path in wanted)
    if missing:
        path, commit = missing[0]
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise BuildToolsError(
            f"submodule {path}{more} of the build context is not here at the commit "
            f"{commit[:7]} that commit {tree.commit[:7]} records (not checked out, or not "
            "fetched): the image would lack its files",
            "git submodule update --init --recursive (or list it in .dockerignore)",
        )
    buffer = tempfile.TemporaryFile()  # noqa: SIM115 (the caller closes it after the build)
    mtime = FIXED_TIME
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        folders: set[str] = set()
        for item, data in source_tree.blobs(_only(tree, wanted)):
            for parent in reversed(PurePosixPath(item.path).parents[:-1]):
                if str(parent) not in folders:
                    folders.add(str(parent))
                    tar.addfile(_info(str(parent), tarfile.DIRTYPE, 0o755, mtime))
            if item.mode == SYMLINK:
                link = _info(item.path, tarfile.SYMTYPE, 0o777, mtime)
                link.linkname = data.decode("utf-8", "surrogateescape")
                tar.addfile(link)
                continue
            mode = 0o755 if item.mode == EXECUTABLE else 0o644
            info = _info(item.path, tarfile.REGTYPE, mode, mtime)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        extra = {
            ".dockerignore": "\n".join(patterns) + "\n",
            dockerfile_name: dockerfile_text,
        }
        for name, text in extra.items():
            data = text.encode("utf-8")
            info = _info(name, tarfile.REGTYPE, 0o644, mtime)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


def _only(tree: CommitTree, wanted: set[str]) -> CommitTree:
    files = tuple(f for f in tree.files if f.path in wanted)
    return CommitTree(tree.root, tree.commit, tree.subdir, tree.tree_id, files, tree.commit_time)


def _info(name: str, kind: bytes, mode: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = kind, mode, mtime
    return info


def folder_digest(folder: Path) -> str:
    """``sha256:<hex>`` of a generated context folder's files (path, mode, content), in path
    order: the same files give the same digest whatever their times (the sidecar's record)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() or p.is_symlink()):
        name = path.relative_to(folder).as_posix()
        if path.is_symlink():
            body = str(path.readlink()).encode()
            mode = "link"
        else:
            body = path.read_bytes()
            mode = oct((path.stat().st_mode & 0o111 and 0o755) or 0o644)
        digest.update(f"{name}\0{mode}\0{hashlib.sha256(body).hexdigest()}\n".encode())
    return f"sha256:{digest.hexdigest()}"
