"""Which tags of a repository ``invoke prune`` keeps and which it deletes, and why: a pure
function of the tags, their digests and dates, and the remote's branches.

The rules (README, *Keeping the registry tidy*):

* an exact release (``1.2.3``, ``1.2.3-rc.1``), a floating release tag (``latest``, ``1``,
  ``1.2``), a ``tags.extra`` tag, a ``tag-<name>`` git tag and a ``rollback-<tag>`` marker are
  always kept;
* a branch's tag is kept while the branch exists on the remote, and goes when it does not;
* a commit tag (``sha-…``) is kept when its commit is among the last ``keep_commits`` of an
  existing branch, or is newer than ``keep_days``; ``pr-N`` is kept while newer than
  ``keep_days`` (a PR's state needs a forge's API);
* signatures and attestations (``sha256-<hex>.sig``/``.att``) follow the digest they belong
  to, and stage caches (``cache-<stage>-<branch tag>``) the branch: never deleted while it
  is kept;
* deletes go by digest (``DELETE …/manifests/<digest>`` removes every tag on it), so a tag
  to go whose digest a kept tag shares is kept.

A tag whose age is needed and unknown is kept: nothing is deleted on a guess.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from buildtools.facts.versions import parse_version
from buildtools.plan.inventory import MARKER_PREFIX
from buildtools.plan.tags import FLOATING_NAMES, SHA_LENGTH, TagPolicy

# cosign's tag scheme: the signature, attestation or SBOM of manifest sha256:<hex>.
FOLLOWER = re.compile(r"^sha256-([0-9a-f]{64})\.(sig|att|sbom)$")
_FLOATING_RELEASE = re.compile(r"^(\d+|\d+\.\d+)$")
_SHORTENED = re.compile(r"-[0-9a-f]{8}$")
_FRACTION = re.compile(r"\.\d+")


@dataclass(frozen=True)
class Rules:
    """How much history to keep (``buildtools.prune.*``) and the tag policy that named it."""

    keep_commits: int
    keep_days: int
    policy: TagPolicy = field(default_factory=TagPolicy)


@dataclass(frozen=True)
class Remote:
    """The remote's branches and, for each, its last commits (newest first, full hashes);
    ``dates``: when each commit git knows was made, by short hash. Plain values: the facts'
    :class:`buildtools.facts.remote.Remote` read from git has the same fields."""

    branches: Mapping[str, Sequence[str]]
    dates: Mapping[str, dt.datetime] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """One tag: kept or not, and why."""

    tag: str
    digest: str
    keep: bool
    reason: str


@dataclass(frozen=True)
class Delete:
    """One ``DELETE …/manifests/<digest>``: the tags it removes. ``follower``: a signature,
    attestation or cache, deleted after the images (an interrupted run never leaves an image
    without its signature)."""

    digest: str
    tags: tuple[str, ...]
    follower: bool


@dataclass(frozen=True)
class Verdict:
    """The decisions for one repository, by tag, and the deletes they make."""

    decisions: tuple[Decision, ...]
    deletes: tuple[Delete, ...]

    @property
    def kept(self) -> list[Decision]:
        return [d for d in self.decisions if d.keep]

    @property
    def deleted(self) -> list[Decision]:
        return [d for d in self.decisions if not d.keep]


def is_release(tag: str) -> bool:
    """An exact release tag, pre-releases and ``_build`` included."""
    return parse_version(tag.replace("_", "+", 1)) is not None


def is_pull_request(tag: str) -> bool:
    return tag.startswith("pr-") and tag[3:].isdigit()


def commit_of(tag: str, rules: Rules) -> str | None:
    """The short commit of a ``sha-<7 hex>`` tag, else None."""
    prefix = rules.policy.sha_prefix
    rest = tag[len(prefix) :] if tag.startswith(prefix) else ""
    ok = len(rest) == SHA_LENGTH and all(c in "0123456789abcdef" for c in rest)
    return rest if ok else None


def _kept_commits(remote: Remote, keep: int) -> dict[str, str]:
    """Short commit -> the branch that keeps it (its last ``keep`` commits)."""
    found: dict[str, str] = {}
    for branch in sorted(remote.branches):
        for commit in list(remote.branches[branch])[:keep]:
            found.setdefault(commit[:SHA_LENGTH], branch)
    return found


def undated(tags: Iterable[str], remote: Remote, rules: Rules) -> list[str]:
    """The tags whose age decides and that git cannot date: the image's own date is read for
    these (``pr-N``; ``sha-`` tags of commits outside every kept history git does not have)."""
    kept = _kept_commits(remote, rules.keep_commits)
    found = []
    for tag in tags:
        commit = commit_of(tag, rules)
        unknown = commit is not None and commit not in kept and commit not in remote.dates
        if is_pull_request(tag) or unknown:
            found.append(tag)
    return found


def _age_rule(
    tag: str, date: dt.datetime | None, now: dt.datetime, days: int, what: str
) -> tuple[bool, str]:
    if date is None:
        return True, f"{what}, age unknown"
    age = (now - date).days
    if age < days:
        return True, f"{what}, {age} days old (newer than {days} days)"
    return False, f"{what}, {age} days old (older than {days} days)"


def _first_pass(
    tag: str,
    rules: Rules,
    remote: Remote,
    kept_commits: Mapping[str, str],
    branch_tags: Mapping[str, str],
    extra: frozenset[str],
    image_dates: Mapping[str, dt.datetime],
    now: dt.datetime,
) -> tuple[bool | None, str]:
    """A tag's own verdict; None for signatures, attestations and caches (they follow)."""
    if is_release(tag):
        return True, "release"
    if tag in FLOATING_NAMES or _FLOATING_RELEASE.match(tag):
        return True, "floating release tag"
    if tag in extra:
        return True, "floating tag (tags.extra)"
    if tag.startswith("tag-"):
        return True, "git tag"
    if tag.startswith(MARKER_PREFIX):
        return True, "rollback marker (invoke rollback --clear removes it)"
    if FOLLOWER.match(tag) or tag.startswith("cache-"):
        return None, ""
    commit = commit_of(tag, rules)
    if commit is not None:
        if commit in kept_commits:
            branch = kept_commits[commit]
            return True, f"commit {commit} is among the last {rules.keep_commits} of {branch}"
        date = remote.dates.get(commit) or image_dates.get(tag)
        return _age_rule(tag, date, now, rules.keep_days, f"commit {commit}")
    if is_pull_request(tag):
        return _age_rule(tag, image_dates.get(tag), now, rules.keep_days, "pull request")
    if tag in branch_tags:
        return True, f"branch {branch_tags[tag]} exists"
    return False, "no branch of that name on the remote"


def _follower(
    tag: str,
    own: Mapping[str, tuple[bool, str]],
    digests: Mapping[str, str],
    branch_tags: Mapping[str, str],
) -> tuple[bool, str]:
    """A signature or attestation as its image, a stage cache as its branch."""
    matched = FOLLOWER.match(tag)
    if matched:
        subject = f"sha256:{matched.group(1)}"
        kind = {"sig": "signature", "att": "attestation", "sbom": "SBOM"}[matched.group(2)]
        holders = sorted(t for t, d in digests.items() if d == subject and t in own)
        kept = [t for t in holders if own[t][0]]
        if kept:
            return True, f"{kind} of kept {kept[0]}"
        if holders:
            return False, f"{kind} of deleted {holders[0]}"
        return False, f"{kind} of an image no tag names"
    for branch_tag, branch in branch_tags.items():
        if tag.endswith(f"-{branch_tag}"):
            return True, f"build cache of branch {branch}, which exists"
    if len(tag) == 128 and _SHORTENED.search(tag):
        return True, "build cache of a branch its shortened name does not tell"
    return False, "build cache of a branch not on the remote"


def decide(
    tags: Mapping[str, str],
    remote: Remote,
    rules: Rules,
    now: dt.datetime,
    image_dates: Mapping[str, dt.datetime] | None = None,
) -> Verdict:
    """Keep or delete each of ``tags`` (tag -> manifest digest), with the deletes, in order:
    images first, then what follows them. ``image_dates``: the images' own dates of the
    tags :func:`undated` named."""
    dates = image_dates or {}
    kept_commits = _kept_commits(remote, rules.keep_commits)
    branch_tags = {rules.policy.branch_tag(b): b for b in sorted(remote.branches)}
    extra = frozenset(n for names in rules.policy.extra.values() for n in names)
    own: dict[str, tuple[bool, str]] = {}
    for tag in sorted(tags):
        verdict, why = _first_pass(tag, rules, remote, kept_commits, branch_tags, extra, dates, now)
        if verdict is not None:
            own[tag] = (verdict, why)
    decided = dict(own)
    for tag in sorted(set(tags) - set(own)):
        decided[tag] = _follower(tag, own, tags, branch_tags)
    holder: dict[str, str] = {}
    for tag in sorted(decided):
        if decided[tag][0]:
            holder.setdefault(tags[tag], tag)
    decisions = []
    for tag in sorted(decided):
        keep, why = decided[tag]
        digest = tags[tag]
        if not keep and digest in holder:
            keep, why = True, f"{why}; kept: kept {holder[digest]} shares its digest"
        decisions.append(Decision(tag, digest, keep, why))
    return Verdict(tuple(decisions), _deletes(decisions))


def _deletes(decisions: Sequence[Decision]) -> tuple[Delete, ...]:
    by_digest: dict[str, list[str]] = {}
    for d in decisions:
        if not d.keep:
            by_digest.setdefault(d.digest, []).append(d.tag)
    made = [
        Delete(
            digest, tuple(names), all(FOLLOWER.match(t) or t.startswith("cache-") for t in names)
        )
        for digest, names in by_digest.items()
    ]
    return tuple(sorted(made, key=lambda d: (d.follower, d.tags)))


def image_date(config: bytes) -> dt.datetime | None:
    """An image config's ``created`` time (UTC), None when it has none that parses."""
    try:
        created = str(json.loads(config).get("created"))
        # Go writes nanoseconds; Python reads at most microseconds.
        created = _FRACTION.sub(lambda m: m.group(0)[:7], created.replace("Z", "+00:00"))
        date = dt.datetime.fromisoformat(created)
    except (ValueError, AttributeError, TypeError):
        return None
    return date if date.tzinfo else date.replace(tzinfo=dt.UTC)
