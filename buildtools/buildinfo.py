"""BuildInfo: everything a build needs to say what it is, read once from git and CI.

Each fact comes from the first source that has it: explicit overrides (task flags, config) >
the CI environment > git > defaults. Which branch, tag or pull request is built is taken as a
unit from one source, because the sources disagree by design: a Travis *branch* build of a
tagged commit is not a tag build, and a Travis tag build reports the tag as its "branch".

Tags, OCI labels and version.yml are pure functions of the resulting frozen object, so the
same commit and environment always give the same answer, locally and on every CI.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from buildtools import ci, gitinfo, labels, tags, versionfile
from buildtools.errors import BuildToolsError
from buildtools.tags import ImageTag

if TYPE_CHECKING:
    from buildtools.config import Settings

log = logging.getLogger(__name__)

_COMMIT = re.compile(r"^[0-9a-f]{7,64}$")
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
    exact = [v for v in map(tags.parse_version, exact_tags) if v is not None]
    parsed_tag = tags.parse_version(tag) if tag else None
    if tag:
        version = str(parsed_tag) if parsed_tag else tag
    elif exact:
        version = str(max(exact))
    elif last_tag and (last := tags.parse_version(last_tag)) is not None:
        version = f"{last.replace(build=None)}-{commits_since_tag or 0}-g{sha}"
    elif branch:
        version = f"0.0.0-{_ident(branch)}.g{sha}"
    else:
        version = f"0.0.0-g{sha}"
    if dirty:
        version += ".dirty" if "+" in version else "+dirty"
    return version


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


def _override_commit(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    commit = value.strip().lower()
    if not _COMMIT.match(commit):
        raise BuildToolsError(
            f"--commit {value!r} is not a commit hash",
            "pass the full or abbreviated (7 or more hex digits) commit",
        )
    return commit


def _read_git(
    path: Path | str | None, untracked_is_dirty: bool, commit_given: bool, warnings: list[str]
) -> gitinfo.GitFacts | None:
    if path is None:
        return None
    try:
        return gitinfo.read(path, untracked_is_dirty=untracked_is_dirty)
    except BuildToolsError as exc:
        if not commit_given:
            raise
        warnings.append(f"{exc.problem}: using only the given commit, branch and tag")
        return None


def gather(
    path: Path | str | None,
    env: Mapping[str, str],
    overrides: Overrides | None = None,
    untracked_is_dirty: bool = False,
) -> tuple[BuildInfo, tuple[str, ...]]:
    """Like :func:`collect`, but returns the warnings instead of logging them."""
    o = overrides or Overrides()
    warnings: list[str] = []
    wanted = _override_commit(o.commit)
    facts = _read_git(path, untracked_is_dirty, wanted is not None, warnings)
    context = ci.detect(env, facts.tag_names if facts else ())

    if wanted and facts and facts.commit.startswith(wanted):
        wanted = facts.commit
    commit = wanted or (context.commit if context else None) or (facts.commit if facts else None)
    if commit is None:
        raise BuildToolsError("no commit is known for this build", "pass --commit")
    head = facts if facts is not None and facts.commit == commit else None
    if facts is not None and head is None:
        warnings.append(
            f"building commit {commit[:7]} but the checkout is at {facts.commit[:7]}: "
            "its tags, dirtiness and commit time are not used"
        )

    branch = tag = base = None
    pull_request = None
    if o.gives_ref:
        branch, tag, pull_request = o.branch, o.tag, o.pull_request
    elif context is not None and context.knows_ref:
        branch, tag, pull_request = context.branch, context.tag, context.pull_request
        base = context.base_branch
    elif head is not None:
        branch = head.branch
        tag = head.head_tags[0] if head.head_tags else None

    dirty = bool(head and head.dirty)
    last_tag = head.last_tag if head else None
    since = head.commits_since_tag if head else None
    version = make_version(
        tag,
        commit,
        branch=branch,
        dirty=dirty,
        exact_tags=head.head_tags if head else (),
        last_tag=last_tag,
        commits_since_tag=since,
    )
    info = BuildInfo(
        version=version,
        commit=commit,
        branch=branch,
        tag=tag,
        dirty=dirty,
        pull_request=pull_request,
        build_number=o.build_number or (context.build_number if context else None),
        build_url=o.build_url or (context.build_url if context else None),
        build_date=build_date(env, head.commit_time if head else None),
        ci=context.provider if context else None,
        event=context.event if context else None,
        base_branch=base,
        last_tag=last_tag,
        commits_since_tag=since,
        shallow=bool(facts and facts.shallow),
        known_versions=facts.versions if facts else (),
    )
    return info, tuple(warnings)


def collect(
    path: Path | str | None,
    env: Mapping[str, str],
    overrides: Overrides | None = None,
    untracked_is_dirty: bool = False,
) -> BuildInfo:
    """The BuildInfo of the checkout at ``path`` (None: no git) under CI environment ``env``.

    Without git (not a checkout), ``overrides.commit`` must be given; the build date then
    comes from ``SOURCE_DATE_EPOCH`` or the current time.
    """
    info, warnings = gather(path, env, overrides, untracked_is_dirty)
    for warning in warnings:
        log.warning("%s", warning)
    return info


@dataclass(frozen=True)
class Metadata:
    """A build's facts, Docker tags, OCI labels and warnings: what build and release use."""

    info: BuildInfo
    tags: tuple[ImageTag, ...]
    labels: Mapping[str, str]
    warnings: tuple[str, ...]

    @property
    def tag_names(self) -> list[str]:
        return [t.name for t in self.tags]

    def version_data(self) -> dict[str, Any]:
        """The content of version.yml (render it with :func:`versionfile.render`)."""
        return versionfile.as_dict(self.info, self.tags)


def from_settings(
    settings: Settings,
    env: Mapping[str, str] | None = None,
    overrides: Overrides | None = None,
    known_versions: Iterable[str] = (),
) -> Metadata:
    """BuildInfo, tags and labels for the configured repository, in one call.

    ``env`` defaults to ``os.environ``; ``known_versions`` (e.g. tags already in the registry)
    add to git's when deciding whether ``1.2``, ``1`` and ``latest`` move.
    """
    env = os.environ if env is None else env
    info, warnings = gather(settings.repo, env, overrides, settings.untracked_is_dirty)
    plan = tags.plan(
        info,
        known_versions=known_versions,
        extra=settings.extra_tags,
        pull_requests=settings.pull_request_tags,
    )
    oci = labels.oci_labels(info, settings.title, settings.source_url, plan.tags)
    return Metadata(info, plan.tags, oci, warnings + plan.warnings)
