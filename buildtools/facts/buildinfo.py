"""BuildInfo: everything a build needs to say what it is, as one frozen value.

:mod:`buildtools.facts.read` fills it once from git and the CI environment; tags, OCI labels and
version.yml are pure functions of it (:mod:`buildtools.plan.metadata`), so the same commit and
environment always give the same answer, locally and on every CI. This module reads nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from buildtools.errors import BuildToolsError
from buildtools.facts.versions import parse_version

_NOT_IDENT = re.compile(r"[^0-9A-Za-z-]+")
_DIGITS = re.compile(r"^[0-9]+$")


@dataclass(frozen=True)
class Overrides:
    """Facts given explicitly (task flags); any ref field given replaces the CI's and git's ref."""

    branch: str | None = None
    tag: str | None = None
    commit: str | None = None
    pull_request: int | None = None
    build_number: str | None = None
    build_url: str | None = None

    @property
    def gives_ref(self) -> bool:
        return bool(self.branch or self.tag or self.pull_request is not None)


@dataclass(frozen=True)
class BuildInfo:
    """What one build is. ``branch`` is the built (on PRs: source) branch, None on tag builds
    and detached HEADs; ``base_branch`` is a PR's target. ``known_versions`` are the semantic
    versions of all tags git knows, ascending; they decide whether floating tags move.
    """

    version: str
    commit: str
    branch: str | None = None
    tag: str | None = None
    short_commit: str = ""
    dirty: bool = False
    pull_request: int | None = None
    build_number: str | None = None
    build_url: str | None = None
    build_date: str = ""
    ci: str | None = None
    event: str | None = None
    base_branch: str | None = None
    last_tag: str | None = None
    commits_since_tag: int | None = None
    shallow: bool = False
    known_versions: tuple[str, ...] = field(default=())
    # This build is pushed only after its smoke test passed (`invoke ci` with its smoke test):
    # set by the task, not read from git or CI. A label says so on every registry copy.
    smoke_gated: bool = False

    def __post_init__(self) -> None:
        if not self.short_commit:
            object.__setattr__(self, "short_commit", self.commit[:7])


def _ident(text: str) -> str:
    """Text as a semver pre-release identifier: ``[0-9A-Za-z-]``, no numeric leading zero."""
    ident = _NOT_IDENT.sub("-", text).strip("-") or "unknown"
    return f"b{ident}" if ident.isdigit() else ident


def make_version(
    tag: str | None,
    commit: str,
    branch: str | None = None,
    dirty: bool = False,
    exact_tags: Iterable[str] = (),
    last_tag: str | None = None,
    commits_since_tag: int | None = None,
) -> str:
    """The version string of a build.

    * a tag build: the tag's semantic version without ``v`` (``v1.2.3`` → ``1.2.3``), or the
      tag name itself when it is not a semantic version;
    * a commit carrying a version tag (e.g. a branch build of a released commit): that
      version, the highest if several;
    * after a reachable version tag: ``git describe`` style, ``1.2.3-5-gabc1234``, a valid
      semantic version (a pre-release of 1.2.3, so never mistaken for a release);
    * no reachable version tag (e.g. a shallow clone): ``0.0.0-<branch>.gabc1234``, or
      ``0.0.0-gabc1234`` without a branch;
    * uncommitted changes add build metadata ``+dirty``, which semver ordering ignores.
    """
    sha = commit[:7]
    exact = [v for v in map(parse_version, exact_tags) if v is not None]
    parsed_tag = parse_version(tag) if tag else None
    if tag:
        version = str(parsed_tag) if parsed_tag else tag
    elif exact:
        version = str(max(exact))
    elif last_tag and (last := parse_version(last_tag)) is not None:
        version = f"{last.replace(build=None)}-{commits_since_tag or 0}-g{sha}"
    elif branch:
        version = f"0.0.0-{_ident(branch)}.g{sha}"
    else:
        version = f"0.0.0-g{sha}"
    return _dirty(version) if dirty else version


def _dirty(version: str) -> str:
    return version + (".dirty" if "+" in version else "+dirty")


def as_worktree(info: BuildInfo) -> BuildInfo:
    """``info`` of a working-tree build (asked for, or of a context outside the checkout):
    dirty, as any build that is not the commit's own files (its labels and version say so)."""
    if info.dirty:
        return info
    return dataclasses.replace(info, dirty=True, version=_dirty(info.version))


def build_date(env: Mapping[str, str], commit_time: int | None) -> str:
    """ISO-8601 UTC build date: ``SOURCE_DATE_EPOCH``, else the commit time, else now.

    The commit time makes two builds of one commit carry the same date (reproducible).
    """
    raw = env.get("SOURCE_DATE_EPOCH", "").strip()
    if raw:
        if not _DIGITS.match(raw):
            raise BuildToolsError(
                f"SOURCE_DATE_EPOCH={raw!r} is not a number of seconds",
                "set it to an integer such as $(git log -1 --pretty=%ct), or unset it",
            )
        seconds = int(raw)
    elif commit_time is not None:
        seconds = commit_time
    else:
        seconds = int(dt.datetime.now(dt.UTC).timestamp())
    try:
        when = dt.datetime.fromtimestamp(seconds, dt.UTC)
    except (OverflowError, OSError, ValueError):
        raise BuildToolsError(
            f"SOURCE_DATE_EPOCH={raw!r} is out of range", "set it to seconds since 1970"
        ) from None
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")
