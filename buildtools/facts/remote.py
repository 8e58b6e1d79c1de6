"""What the remote's branches are, and which commits each holds last: read for ``invoke prune``.

The remote says which branches exist (``git ls-remote --heads``: a branch deleted on the
server is gone even if this clone still has its remote-tracking ref); the clone says each
one's last commits (``git rev-list``) and when the commits it knows were made (one
``git log --all``), so dating a ``sha-`` tag costs no registry request.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import git

from buildtools.errors import BuildToolsError
from buildtools.facts.gitinfo import _open, on_remote

SHORT = 7


@dataclass(frozen=True)
class Remote:
    """The remote's branches and, for each, its last commits (newest first, full hashes);
    ``dates``: commit time of every commit the clone knows, by short hash.
    :mod:`buildtools.release.prune` hands them to the plan as
    :class:`buildtools.plan.retention.Remote`."""

    branches: Mapping[str, Sequence[str]]
    dates: Mapping[str, dt.datetime] = field(default_factory=dict)


def _git(repo: git.Repo, *args: str, network: bool = False) -> str:
    """``git args`` in the clone; ``network``: on the remote, with no prompt and a time limit."""
    try:
        if network:
            return on_remote(repo, *args)
        return repo.git.execute(["git", *args])  # type: ignore[return-value]
    except git.GitCommandError as exc:
        said = str(exc.stderr or "").strip()
        said = said.removeprefix("stderr: ").strip("'")
        detail = " ".join(said.split())[:200]
        raise BuildToolsError(
            f"git {args[0]} failed in {repo.working_dir}: {detail or exc.status}",
            "check the remote's name (buildtools.prune.remote) and that it can be reached; "
            "git is never let ask for a login here: use an ssh key or a credential helper",
        ) from None


def read(path: Path | str, remote: str, keep: int) -> Remote:
    """The branches on ``remote`` with their last ``keep`` commits, and the dates of the
    commits this clone has. A branch whose head the clone lacks is an error: without its
    history, tags of its last commits could be deleted (fetch first)."""
    repo = _open(Path(path))
    heads: dict[str, str] = {}
    for line in _git(repo, "ls-remote", "--heads", remote, network=True).splitlines():
        commit, _, ref = line.partition("\t")
        if ref.startswith("refs/heads/"):
            heads[ref.removeprefix("refs/heads/")] = commit
    branches: dict[str, tuple[str, ...]] = {}
    for branch, head in sorted(heads.items()):
        try:
            listed = repo.git.rev_list(f"--max-count={max(keep, 1)}", head, "--")
        except git.GitCommandError:
            raise BuildToolsError(
                f"branch {branch} of {remote} is at {head[:SHORT]}, which this clone does not have",
                f"fetch it first (git fetch {remote}; in CI a full clone: fetch-depth: 0)",
            ) from None
        branches[branch] = tuple(listed.split()[:keep])
    dates: dict[str, dt.datetime] = {}
    for line in _git(repo, "log", "--all", "--format=%H %ct").splitlines():
        commit, _, stamp = line.partition(" ")
        if stamp.isdigit():
            when = dt.datetime.fromtimestamp(int(stamp), dt.UTC)
            dates.setdefault(commit[:SHORT], when)
    return Remote(branches, dates)
