"""What git knows about the checkout being built, read once into a plain object.

A handful of single git commands (``log -1``, ``for-each-ref``, ``describe``, ``status``) do
all the work, so reading stays fast on repositories with thousands of commits and tags.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

# GitPython refuses to be imported when no git executable is found (a 30-line ImportError);
# quiet, it imports, and _open says in one line that git is missing.
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
import git

from buildtools.errors import BuildToolsError
from buildtools.facts.versions import parse_version

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


def _open(path: Path) -> git.Repo:
    # git.Repo() runs no git command: without this check the first one would be a traceback.
    if not shutil.which(git.Git.GIT_PYTHON_GIT_EXECUTABLE or "git"):
        raise NotACheckout(
            "git is not installed (no git command on PATH)",
            "install git (Debian: apt-get install git), or pass --commit (with --branch or "
            "--tag) to build without git",
        )
    try:
        return git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise NotACheckout(f"{path} is not in a git checkout", _NOT_A_REPO_FIX) from None


def _check_own_checkout(repo: git.Repo, root: Path, path: Path) -> None:
    """A project folder inside another checkout (an app unpacked into a dotfiles repository)
    must not be described by that checkout's branch and commit: it is none of its files."""
    try:
        inner = path.resolve().relative_to(root.resolve())
    except ValueError:
        return
    if inner == Path(".") or repo.git.ls_files("--", str(inner)):
        return  # the checkout itself, or a tracked folder of it (a monorepo)
    raise NotACheckout(
        f"{path} is not a git checkout of its own: it is inside the checkout {root}, "
        "which tracks none of its files",
        f"run git init in {path} and commit, add it to {root} and commit, "
        "or point buildtools.repo at the app's own checkout",
    )


def _refused(exc: git.GitCommandError, root: Path) -> BuildToolsError | None:
    """git's refusal to read a checkout another user owns (a CI container running as root on
    a mounted checkout), as the fix git itself would give; None for other failures."""
    if "dubious ownership" not in str(exc.stderr or ""):
        return None
    return BuildToolsError(
        f"git refuses to read {root}: it is owned by another user (git's safe.directory check)",
        f"if you trust it: git config --global --add safe.directory {root}",
    )


def _failed(exc: git.GitCommandError, path: Path) -> BuildToolsError:
    """A git command that failed while reading the checkout at ``path``, in one line."""
    return _refused(exc, path) or BuildToolsError(
        f"git failed in {path}: {' '.join(str(a) for a in exc.command)}: "
        f"{(exc.stderr or '').strip()}",
        "check that the checkout is not corrupt (git fsck)",
    )


def _head(repo: git.Repo, root: Path) -> tuple[str, int]:
    if repo.bare:
        raise BuildToolsError(
            f"{root} is a bare git repository: it has no working tree to build",
            f"build in a clone of it (git clone {root} <folder>)",
        )
    try:
        commit, _, time = repo.git.log("-1", "--format=%H %ct", "HEAD").partition(" ")
    except git.GitCommandError as exc:
        raise _refused(exc, root) or BuildToolsError(
            f"the git checkout {root} has no commits yet", "commit something first"
        ) from None
    return commit, int(time)


def _tags(repo: git.Repo, commit: str) -> tuple[dict[str, str], list[str]]:
    """All tags with the commit each points at (annotated tags peeled), and those on HEAD."""
    out = repo.git.for_each_ref(
        "refs/tags", "--format=%(refname:strip=2)%00%(objectname)%00%(*objectname)"
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


def _describe(repo: git.Repo) -> tuple[str | None, int | None]:
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
            out = repo.git.describe(*args, "HEAD")
        except git.GitCommandError:
            return None, None  # no version tag reachable
        tag, count, _ = out.rsplit("-", 2)
        if parse_version(tag) is not None:
            return tag, int(count)
        excluded.append(tag)
    return None, None


def read(path: Path | str, untracked_is_dirty: bool = False) -> GitFacts:
    """Read the checkout containing ``path``; BuildToolsError if there is none."""
    path = Path(path)
    repo = _open(path)
    try:
        root = Path(repo.working_tree_dir or repo.git_dir or path)
        commit, commit_time = _head(repo, root)
        _check_own_checkout(repo, root, path)
        branch = None if repo.head.is_detached else repo.active_branch.name
        targets, head_tags = _tags(repo, commit)
        last_tag, since = _describe(repo)
        status = repo.git.status(
            "--porcelain", "-z", f"--untracked-files={'normal' if untracked_is_dirty else 'no'}"
        )
        shallow = repo.git.rev_parse("--is-shallow-repository").strip() == "true"
    except git.GitCommandError as exc:
        raise _failed(exc, Path(path)) from None
    finally:
        repo.close()
    versions = {str(v): v for v in map(parse_version, targets) if v is not None}
    return GitFacts(
        root=root,
        commit=commit,
        commit_time=commit_time,
        branch=branch,
        head_tags=best_tag(head_tags),
        tag_names=frozenset(targets),
        dirty=bool(status.strip("\0 \n")),
        last_tag=last_tag,
        commits_since_tag=since,
        shallow=shallow,
        versions=tuple(sorted(versions, key=versions.__getitem__)),
        tag_commits=targets,
    )


# ``git ls-remote``/``fetch`` against a host that drops packets answers never: minutes is dead.
NETWORK_TIMEOUT = 120.0
# Never ask for a password: git's own prompt and ssh's askpass off, and the command in a
# session of its own (no terminal for ssh to open), so a remote that wants a login fails at
# once instead of waiting at a prompt that a CI job or a scheduled job never answers.
NO_PROMPTS = {
    "GIT_TERMINAL_PROMPT": "0",
    "GCM_INTERACTIVE": "never",
    "SSH_ASKPASS_REQUIRE": "never",
}


def on_remote(repo: git.Repo, *args: str) -> str:
    """``git args`` that talk to a remote: no prompt, no terminal, no input, a time limit.
    Raises :class:`git.GitCommandError` as any git command does."""
    return repo.git.execute(  # type: ignore[return-value]
        ["git", *args], env=NO_PROMPTS, kill_after_timeout=NETWORK_TIMEOUT,
        istream=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip


def fetch_tag(path: Path | str, tag: str, shallow: bool = False) -> str | None:
    """Fetch one tag from ``origin`` (a shallow CI clone may lack it); the commit it points at,
    or None when there is no such tag or no remote to ask. A full clone's history is never cut,
    and a shallow clone is fetched at its own depth: ``--depth=1`` would cut HEAD's history to
    one commit when the tag is on HEAD (then ``git describe`` and the version lose their base)."""
    try:
        repo = git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, git.GitCommandNotFound):
        return None
    try:
        depth: list[str] = []
        if shallow:
            current = repo.git.rev_list("--count", "--first-parent", "HEAD").strip()
            depth = [f"--depth={max(1, int(current or 1))}"]
        refspec = f"+refs/tags/{tag}:refs/tags/{tag}"
        on_remote(repo, "fetch", "--quiet", "--no-tags", *depth, "origin", refspec)
        return repo.git.rev_parse(f"refs/tags/{tag}^{{commit}}").strip()
    except git.GitCommandError:
        return None
    finally:
        repo.close()


# What git says of a commit and a branch named on the command line (:func:`branch_check`).
ON, OFF, MISSING, UNKNOWN, INVALID = "on", "off", "missing", "unknown", "invalid"
_REMOTE = "origin"


@dataclass(frozen=True)
class BranchCheck:
    """Whether a commit is on a branch, as git knows it: ``on`` (reachable from ``refs/heads/B``
    or a ``refs/remotes/<remote>/B``), ``off`` (git has the branch, the commit is not on it),
    ``missing`` (neither the checkout nor its origin has a branch of that name), ``unknown``
    (no such ref here and origin could not be reached: git cannot say), ``invalid`` (not a
    name git allows for a branch). ``refs`` are the branch's refs git has, with their commits;
    ``origin`` what asking origin gave (``fetched``, ``absent``, ``unreachable``, ``no
    remote``), empty when the checkout alone answered."""

    verdict: str
    refs: tuple[tuple[str, str], ...] = ()
    origin: str = ""


def _branch_refs(repo: git.Repo, branch: str) -> list[tuple[str, str]]:
    """``refs/heads/<branch>`` and every ``refs/remotes/<remote>/<branch>`` git has, exactly
    (for-each-ref also lists refs *below* a name, as ``refs/heads/<branch>/x``)."""
    wanted = [f"refs/heads/{branch}"]
    wanted += [f"refs/remotes/{r}/{branch}" for r in repo.git.remote().split()]
    out = repo.git.for_each_ref("--format=%(refname)%00%(objectname)", *wanted)
    found = [line.split("\0", 1) for line in out.splitlines()]
    return [(ref, sha) for ref, sha in found if ref in wanted]


def _reaches(repo: git.Repo, refs: list[tuple[str, str]], commit: str) -> bool:
    for ref, _ in refs:
        try:
            repo.git.merge_base("--is-ancestor", commit, ref)
        except git.GitCommandError:
            continue  # not an ancestor (1), or history a shallow clone lacks
        return True
    return False


def _ask_origin(repo: git.Repo, branch: str, shallow: bool) -> str:
    """Fetch ``branch`` from origin into ``refs/remotes/origin/<branch>``; what came of it:
    ``fetched``, ``absent`` (origin has no such branch), ``unreachable``, ``no remote``."""
    if _REMOTE not in repo.git.remote().split():
        return "no remote"
    head = f"refs/heads/{branch}"
    try:
        on_remote(repo, "ls-remote", "--exit-code", "--heads", _REMOTE, head)
    except git.GitCommandError as exc:
        return "absent" if exc.status == 2 else "unreachable"  # 2: it answered, no such ref
    depth: list[str] = []
    if shallow:  # deep enough to reach HEAD, and never cutting HEAD's own history
        current = int(repo.git.rev_list("--count", "--first-parent", "HEAD").strip() or 1)
        depth = [f"--depth={current + 50}"]
    refspec = f"+{head}:refs/remotes/{_REMOTE}/{branch}"
    try:
        on_remote(repo, "fetch", "--quiet", "--no-tags", *depth, _REMOTE, refspec)
    except git.GitCommandError:
        return "unreachable"
    return "fetched"


def branch_check(path: Path | str, branch: str, commit: str, shallow: bool = False) -> BranchCheck:
    """Whether git says ``commit`` is on ``branch`` (see :class:`BranchCheck`). What the
    checkout has is read first; only when that does not show the commit on the branch is
    origin asked for it, once (a stale or missing remote-tracking ref, a single-ref clone)."""
    repo = _open(Path(path))
    try:
        try:
            repo.git.check_ref_format(f"refs/heads/{branch}")
        except git.GitCommandError:
            return BranchCheck(INVALID)  # also keeps a glob (*) out of the fetch's refspec
        refs = _branch_refs(repo, branch)
        if _reaches(repo, refs, commit):
            return BranchCheck(ON, tuple(refs))
        origin = _ask_origin(repo, branch, shallow)
        if origin == "fetched":
            refs = _branch_refs(repo, branch)
            if _reaches(repo, refs, commit):
                return BranchCheck(ON, tuple(refs), origin)
        if refs:
            return BranchCheck(OFF, tuple(refs), origin)
        return BranchCheck(UNKNOWN if origin == "unreachable" else MISSING, (), origin)
    except git.GitCommandError as exc:
        raise _failed(exc, Path(path)) from None
    finally:
        repo.close()


def commit_times(path: Path | str, shorts: list[str]) -> dict[str, int]:
    """The commit time (epoch seconds) of each abbreviated commit git knows here, in one git
    command (``invoke releases`` gives ``sha-`` tags an age without a registry request each);
    commits git lacks, or no checkout at all, are simply absent."""
    if not shorts:
        return {}
    try:
        repo = _open(Path(path))
        out = repo.git.log("--no-walk=unsorted", "--ignore-missing", "--format=%H %ct", *shorts)
    except (BuildToolsError, git.GitCommandError):
        return {}
    full = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    by_prefix = {h[: len(s)]: t for n in {len(s) for s in shorts} for h, t in full.items()
                 for s in [h[:n]]}  # fmt: skip
    return {s: int(by_prefix[s]) for s in shorts if s in by_prefix}
