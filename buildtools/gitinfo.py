"""What git knows about the checkout being built, read once into a plain object.

A handful of single git commands (``rev-parse``, ``log -1``, ``for-each-ref``, ``describe``,
``status``) do all the work, so reading stays fast on repositories with thousands of commits
and tags. They run through the git command line directly: a library wrapper cost more to
import (and ran ``git version`` twice) than the commands themselves, on every task.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from buildtools.errors import BuildToolsError
from buildtools.versions import parse_version

_NOT_A_REPO_FIX = (
    "run inside a git checkout, point buildtools.repo at one, "
    "or pass --commit (with --branch or --tag) to build without git"
)


class NotACheckout(BuildToolsError):
    """There is no git checkout of this project: ``--commit`` may then name the commit.
    Any other git failure stays an error (``--commit`` is no way around a broken checkout)."""


@dataclass(frozen=True)
class GitFacts:
    """Facts about HEAD of one checkout.

    ``last_tag``/``commits_since_tag`` describe the nearest reachable version tag and are None
    when there is none, e.g. in a shallow clone cut above the last release; in a shallow clone
    the count only covers the commits present. ``versions`` are the semantic versions (without
    ``v``) of all tags, ascending.
    """

    root: Path
    commit: str
    commit_time: int
    branch: str | None
    head_tags: tuple[str, ...]
    tag_names: frozenset[str]
    dirty: bool
    last_tag: str | None
    commits_since_tag: int | None
    shallow: bool
    versions: tuple[str, ...]
    # Every tag and the commit it points at (annotated tags peeled).
    tag_commits: Mapping[str, str] = field(default_factory=dict)


class GitFailed(Exception):
    """A git command that exited non-zero: the command and what it printed on stderr."""

    def __init__(self, command: list[str], stderr: str) -> None:
        super().__init__(f"{' '.join(command)}: {stderr.strip()}")
        self.command = command
        self.stderr = stderr


# git's messages in English whatever the locale: the refusals below are recognised by them.
_GIT_ENV = {"LANGUAGE": "C", "LC_ALL": "C"}


def _git(cwd: Path, *args: str) -> str:
    """One git command's output; GitFailed when it fails, NotACheckout when git is missing."""
    command = ["git", *args]
    try:
        done = subprocess.run(
            command,
            cwd=cwd,
            env={**os.environ, **_GIT_ENV},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="surrogateescape",
        )
    except FileNotFoundError:
        raise NotACheckout("git is not installed", "install git or pass --commit") from None
    if done.returncode != 0:
        raise GitFailed(command, done.stderr)
    return done.stdout.removesuffix("\n")


@dataclass(frozen=True)
class _Checkout:
    """Where the checkout is, as ``git rev-parse`` found it from the path given."""

    root: Path
    git_dir: Path
    bare: bool
    shallow: bool

    def branch(self) -> str | None:
        """The checked-out branch, None on a detached HEAD (read from HEAD, as git does)."""
        try:
            head = (self.git_dir / "HEAD").read_text(encoding="utf-8").strip()
        except OSError:
            return None
        return (
            head.removeprefix("ref: refs/heads/") if head.startswith("ref: refs/heads/") else None
        )


_DUBIOUS_AT = re.compile(r"dubious ownership in repository at '([^']+)'")


def _open(path: Path) -> _Checkout:
    if not path.is_dir():
        raise NotACheckout(f"{path} is not in a git checkout", _NOT_A_REPO_FIX)
    try:
        out = _git(
            path,
            "rev-parse",
            "--is-bare-repository",
            "--is-shallow-repository",
            "--absolute-git-dir",
            "--show-cdup",
        )
    except GitFailed as exc:
        at = _DUBIOUS_AT.search(exc.stderr)
        refused = _refused(exc, Path(at[1]) if at else path)
        if refused:
            raise refused from None
        if "not a git repository" in exc.stderr:
            raise NotACheckout(f"{path} is not in a git checkout", _NOT_A_REPO_FIX) from None
        raise _failed(exc, path) from None
    bare, shallow, git_dir, *cdup = out.split("\n")
    bare_repo = bare.strip() == "true"
    root = Path(git_dir) if bare_repo else (path.resolve() / (cdup[0] if cdup else "")).resolve()
    return _Checkout(root, Path(git_dir), bare_repo, shallow.strip() == "true")


def _failed(exc: GitFailed, path: Path) -> BuildToolsError:
    return BuildToolsError(
        f"git failed in {path}: {' '.join(exc.command)}: {exc.stderr.strip()}",
        "check that the checkout is not corrupt (git fsck)",
    )


def _check_own_checkout(root: Path, path: Path) -> None:
    """A project folder inside another checkout (an app unpacked into a dotfiles repository)
    must not be described by that checkout's branch and commit: it is none of its files."""
    try:
        inner = path.resolve().relative_to(root.resolve())
    except ValueError:
        return
    if inner == Path(".") or _git(root, "ls-files", "--", str(inner)):
        return  # the checkout itself, or a tracked folder of it (a monorepo)
    raise NotACheckout(
        f"{path} is not a git checkout of its own: it is inside the checkout {root}, "
        "which tracks none of its files",
        f"run git init in {path} and commit, add it to {root} and commit, "
        "or point buildtools.repo at the app's own checkout",
    )


def _refused(exc: GitFailed, root: Path) -> BuildToolsError | None:
    """git's refusal to read a checkout another user owns (a CI container running as root on
    a mounted checkout), as the fix git itself would give; None for other failures."""
    if "dubious ownership" not in exc.stderr:
        return None
    return BuildToolsError(
        f"git refuses to read {root}: it is owned by another user (git's safe.directory check)",
        f"if you trust it: git config --global --add safe.directory {root}",
    )


def _head(checkout: _Checkout) -> tuple[str, int]:
    root = checkout.root
    if checkout.bare:
        raise BuildToolsError(
            f"{root} is a bare git repository: it has no working tree to build",
            f"build in a clone of it (git clone {root} <folder>)",
        )
    try:
        commit, _, time = _git(root, "log", "-1", "--format=%H %ct", "HEAD").partition(" ")
    except GitFailed as exc:
        raise _refused(exc, root) or BuildToolsError(
            f"the git checkout {root} has no commits yet", "commit something first"
        ) from None
    return commit, int(time)


def _tags(root: Path, commit: str) -> tuple[dict[str, str], list[str]]:
    """All tags with the commit each points at (annotated tags peeled), and those on HEAD."""
    out = _git(
        root,
        "for-each-ref",
        "refs/tags",
        "--format=%(refname:strip=2)%00%(objectname)%00%(*objectname)",
    )
    targets: dict[str, str] = {}
    for line in out.splitlines():
        name, _, rest = line.partition("\0")
        obj, _, peeled = rest.partition("\0")
        targets[name] = peeled or obj
    return targets, [name for name, target in targets.items() if target == commit]


def best_tag(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Tag names, best first: highest semantic version, then other names alphabetically."""
    versions = [(parse_version(n), n) for n in names]
    semvers = sorted((item for item in versions if item[0]), key=lambda i: i[0], reverse=True)
    return tuple(n for _, n in semvers) + tuple(sorted(n for v, n in versions if v is None))


# Tag names shaped like a semantic version, for ``git describe --match``: a glob cannot say
# "a semantic version" exactly, so a match that is not one is excluded and describe asked again.
_VERSION_GLOBS = ("v[0-9]*.[0-9]*.[0-9]*", "V[0-9]*.[0-9]*.[0-9]*", "[0-9]*.[0-9]*.[0-9]*")
_DESCRIBE_TRIES = 20


def _describe(root: Path) -> tuple[str | None, int | None]:
    """The nearest reachable version tag and the commits since it.

    One ``git describe`` restricted to version-shaped names, whatever the number of other tags
    (one ``--exclude`` per non-version tag overflowed the command line at ~100,000 tags). A
    nearer tag that only looks like a version (``1.2.3.4``) is excluded and describe asked
    again, up to :data:`_DESCRIBE_TRIES` times; past that the version has no base tag.
    """
    excluded: list[str] = []
    for _ in range(_DESCRIBE_TRIES):
        args = ["--tags", "--long", "--abbrev=40"]
        args += [f"--match={glob}" for glob in _VERSION_GLOBS]
        args += [f"--exclude={name}" for name in excluded]  # git refuses * ? [ \\ in tags
        try:
            out = _git(root, "describe", *args, "HEAD")
        except GitFailed:
            return None, None  # no version tag reachable
        tag, count, _ = out.rsplit("-", 2)
        if parse_version(tag) is not None:
            return tag, int(count)
        excluded.append(tag)
    return None, None


def read(path: Path | str, untracked_is_dirty: bool = False) -> GitFacts:
    """Read the checkout containing ``path``; BuildToolsError if there is none."""
    path = Path(path)
    checkout = _open(path)
    root = checkout.root
    try:
        commit, commit_time = _head(checkout)
        _check_own_checkout(root, path)
        targets, head_tags = _tags(root, commit)
        last_tag, since = _describe(root)
        untracked = "normal" if untracked_is_dirty else "no"
        status = _git(root, "status", "--porcelain", "-z", f"--untracked-files={untracked}")
    except GitFailed as exc:
        raise _refused(exc, path) or _failed(exc, path) from None
    versions = {str(v): v for v in map(parse_version, targets) if v is not None}
    return GitFacts(
        root=root,
        commit=commit,
        commit_time=commit_time,
        branch=checkout.branch(),
        head_tags=best_tag(head_tags),
        tag_names=frozenset(targets),
        dirty=bool(status.strip("\0 \n")),
        last_tag=last_tag,
        commits_since_tag=since,
        shallow=checkout.shallow,
        versions=tuple(sorted(versions, key=versions.__getitem__)),
        tag_commits=targets,
    )


def fetch_tag(path: Path | str, tag: str, shallow: bool = False) -> str | None:
    """Fetch one tag from ``origin`` (a shallow CI clone may lack it); the commit it points at,
    or None when there is no such tag or no remote to ask. A full clone's history is never cut,
    and a shallow clone is fetched at its own depth: ``--depth=1`` would cut HEAD's history to
    one commit when the tag is on HEAD (then ``git describe`` and the version lose their base)."""
    try:
        root = _open(Path(path)).root
    except BuildToolsError:
        return None
    try:
        depth: list[str] = []
        if shallow:
            current = _git(root, "rev-list", "--count", "--first-parent", "HEAD").strip()
            depth = [f"--depth={max(1, int(current or 1))}"]
        refspec = f"+refs/tags/{tag}:refs/tags/{tag}"
        _git(root, "fetch", "--quiet", "--no-tags", *depth, "origin", refspec)
        return _git(root, "rev-parse", f"refs/tags/{tag}^{{commit}}").strip()
    except GitFailed:
        return None
