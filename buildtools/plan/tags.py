"""Which Docker tags a build gets: a pure function of its BuildInfo.

The policy, in order of what the build is:

* **Release tag** (``v1.2.3`` or ``1.2.3``): ``1.2.3`` (immutable), then the floating ``1.2``,
  ``1`` and ``latest``, each only when this release is the highest stable version of that
  series among the known versions, so a backport (``v1.4.9`` after ``v2.0.0``) never moves
  ``latest`` or ``1`` backwards. A pre-release gets only its full version. Build metadata
  (``+…``) is not allowed in Docker tags and is written with ``_`` (``1.2.3+b.1`` →
  ``1.2.3_b.1``); ``_`` cannot occur in a semantic version, so this never collides with a
  pre-release tag the way ``-`` would.
* **Other git tag**: ``tag-<sanitized name>`` only (immutable), with a warning: the prefix
  keeps a git tag named ``latest``, ``edge``, ``1.2`` or ``main`` from overwriting the floating
  tag, release or branch of that name.
* **Pull request**: ``pr-N`` (floating: later pushes to the PR move it) when enabled, otherwise
  no tags at all: PR code is unreviewed, so nothing from it is pushable unless configured.
* **Branch**: ``sha-<7 hex>`` (immutable), the sanitized branch name and the configured extra
  tags for that branch (floating). A branch whose name would pose as another kind of tag is
  written ``branch-<name>``: a release (``latest``, ``1``, ``1.2``, a version), a floating tag
  (``edge``, any ``tags.extra`` value), or a name starting with another kind's prefix (the
  commit's ``sha-``, ``pr-``, ``cache-``, ``tag-``, ``branch-``).
* **Nothing known** (detached HEAD outside CI): ``sha-<7 hex>`` only.
* **A working-tree build** (dirty, or asked for): ``sha-<7 hex>-dirty`` only, a local name no
  release, promotion or cache lookup asks for.

Every name is checked against Docker's grammar and its 128-character limit before anything is
built: branch names are shortened with a hash of the full name, a git tag too long is refused.
Names with non-ASCII letters are transliterated (``ü`` → ``u``); what cannot be is replaced by
a hash of the name, so every branch gets a tag and two such branches never share one.

``sha-`` is the default of ``sha_prefix`` (``buildtools.tags.sha_prefix``; LARA's GitHub
workflow tags ``git-<7 hex>``).

Tags are ordered immutable first, then floating. Warnings are returned by :func:`choose`, for
the task to show. :class:`TagPolicy` holds the settings the choice depends on: its
:meth:`TagPolicy.branch_tag` is the one place a branch's tag is made, for the release tags, the
cache lookups and the stage images alike.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import semver

from buildtools.config.keys import default_of
from buildtools.errors import BuildToolsError
from buildtools.facts.buildinfo import BuildInfo
from buildtools.facts.versions import docker_version, parse_version

MAX_LENGTH = 128
VALID_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_INVALID_RUN = re.compile(r"[^A-Za-z0-9_.-]+")
_RELEASE_LOOKALIKE = re.compile(r"^(latest|v?\d+(\.\d+){0,2})$", re.IGNORECASE)
_HASH_LENGTH = 8
_SHORT_SHA = re.compile(r"[0-9a-f]{7,40}")
# The commit tag's prefix when none is given: the tags.sha_prefix key's default.
SHA_PREFIX: str = default_of("tags.sha_prefix")  # type: ignore[assignment]
# Prefixes that say what kind of build a tag belongs to, besides the commit's ``sha_prefix``:
# a pull request, a stage cache, a git tag that is no version, a branch that needed one.
KIND_PREFIXES = ("pr-", "cache-", "tag-", "branch-", "rollback-")
# Floating tags of the default policy: a branch of this name would move them.
FLOATING_NAMES = ("latest", "edge")
# The commit tag is the prefix and this many hex digits of the commit.
SHA_LENGTH = 7


@dataclass(frozen=True)
class ImageTag:
    """One Docker tag; ``floating`` tags move to newer builds, the others never should.

    ``protected`` tags (exact releases) must never point at other content once pushed. A
    ``sha-`` tag is not floating (it is pushed before the floating ones) but not protected: a
    later build of the same commit (a tag build after the branch build, a restarted CI job)
    carries other metadata and replaces it.
    """

    name: str
    floating: bool
    reason: str
    protected: bool = False


@dataclass(frozen=True)
class TagChoice:
    """The tags of a build plus what the user should know about them."""

    tags: tuple[ImageTag, ...]
    warnings: tuple[str, ...]


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8")).hexdigest()[:_HASH_LENGTH]


def _clean(name: str) -> str:
    """``name`` in Docker's tag alphabet, not cut to length: letters with accents lose them
    (NFKD); runs of other characters become ``-``, and if a non-ASCII letter or digit had to go,
    a hash of ``name`` is added so that two Cyrillic branch names do not share a tag."""
    folded = "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c))
    tag = _INVALID_RUN.sub("-", folded).lstrip(".-").rstrip("-")
    if any(ord(c) > 127 and c.isalnum() for c in folded):
        tag = f"{tag}-{_digest(name)}" if tag else _digest(name)
    if not tag:
        raise BuildToolsError(
            f"{name!r} cannot be made into a Docker tag (it has no letter, digit or _)",
            "use a branch or tag name with at least one letter or digit",
        )
    return tag


def shorten(tag: str, original: str) -> str:
    """``tag`` cut to 128 characters with a hash of ``original`` when longer, so two long
    names that share a prefix still get different tags."""
    if len(tag) <= MAX_LENGTH:
        return tag
    return f"{tag[: MAX_LENGTH - _HASH_LENGTH - 1]}-{_digest(original)}"


def sanitize(name: str) -> str:
    """Turn any name into a valid Docker tag, deterministically.

    Runs of characters outside ``[A-Za-z0-9_.-]`` become ``-`` (accents are dropped first,
    other non-ASCII letters become a hash); leading ``.``/``-`` and trailing ``-`` are
    dropped; a result longer than 128 characters is cut and given a hash of the original name.
    """
    return shorten(_clean(name), name)


def prefixed(prefix: str, tag: str) -> str:
    """``prefix`` + ``tag`` (e.g. ``cache-<stage>-`` + a branch tag), shortened with a hash
    when over 128 characters."""
    return shorten(prefix + tag, prefix + tag)


def _release_tags(version: semver.Version, known: Iterable[semver.Version]) -> list[ImageTag]:
    full = ImageTag(docker_version(version), False, f"release {version}", protected=True)
    if version.prerelease:
        return [full]
    stable = [v for v in known if not v.prerelease] + [version]
    tags = [full]
    minor = [v for v in stable if (v.major, v.minor) == (version.major, version.minor)]
    if version >= max(minor):
        name = f"{version.major}.{version.minor}"
        tags.append(ImageTag(name, True, f"{version} is the highest {name}.x release"))
    major = [v for v in stable if v.major == version.major]
    if version >= max(major):
        name = str(version.major)
        tags.append(ImageTag(name, True, f"{version} is the highest {name}.x release"))
    if version >= max(stable):
        tags.append(ImageTag("latest", True, f"{version} is the highest stable release"))
    return tags


def floating_moved(version: semver.Version, known: Iterable[semver.Version]) -> set[str]:
    """The floating tags (``X.Y``, ``X``, ``latest``) a release of ``version`` moves when
    ``known`` are the other versions: the same rule the plan chose them by."""
    return {tag.name for tag in _release_tags(version, known) if tag.floating}


def is_release_lookalike(name: str, sha_prefix: str = "") -> bool:
    """``latest``, ``1``, ``1.2``, ``v1.2.3``, ``1.2.3-rc.1``, ``1.2.3_b``: names only release
    builds may carry; with ``sha_prefix``, also another commit's tag (``sha-0123abc``)."""
    if _RELEASE_LOOKALIKE.match(name) or parse_version(name.replace("_", "+", 1)) is not None:
        return True
    rest = name[len(sha_prefix) :] if sha_prefix and name.startswith(sha_prefix) else None
    return rest is not None and bool(_SHORT_SHA.fullmatch(rest))


def poses_as_other_kind(name: str, sha_prefix: str = SHA_PREFIX) -> bool:
    """Whether a tag named ``name`` could be mistaken for a release or for a tag of another
    kind: a release lookalike, or a name starting with a kind's prefix (``sha-``, ``pr-``,
    ``cache-``, ``tag-``, ``branch-``; case does not matter to a reader)."""
    lower = name.lower()
    prefixes = tuple(p.lower() for p in (*KIND_PREFIXES, sha_prefix) if p)
    return is_release_lookalike(name, sha_prefix) or lower.startswith(prefixes)


def _branch_name_tag(
    branch: str, sha_prefix: str, extra: Mapping[str, Sequence[str]]
) -> tuple[str, str | None]:
    """A branch's tag and, when it had to be ``branch-<name>``, the warning saying why. Other
    branches' extra floating tags are taken (a branch's own extra tags may repeat its name)."""
    name = sanitize(branch)
    floating = [n for b, names in extra.items() if b != branch for n in names]
    taken = {n.lower() for n in (*FLOATING_NAMES, *floating)}
    if poses_as_other_kind(name, sha_prefix) or name.lower() in taken:
        safe = sanitize(f"branch-{branch}")
        return safe, f"branch {branch!r} would pose as another kind of tag: tagged {safe!r}"
    return name, None


@dataclass(frozen=True)
class TagPolicy:
    """The settings that decide a build's tags (``buildtools.tags``): extra floating tags per
    branch, whether pull requests get ``pr-N``, and the commit tag's prefix."""

    sha_prefix: str = SHA_PREFIX
    extra: Mapping[str, Sequence[str]] = field(default_factory=dict)
    pull_requests: bool = False

    def branch_tag(self, branch: str) -> str:
        """The floating tag a build of ``branch`` gets: the one name the release pushes, the
        cache is looked up by and the stage images carry (never worked out elsewhere)."""
        return _branch_name_tag(branch, self.sha_prefix, self.extra)[0]

    def sha_tag(self, commit: str) -> str:
        return sha_tag_name(commit, self.sha_prefix)

    def choose(self, info: BuildInfo, known_versions: Iterable[str] = ()) -> TagChoice:
        return choose(info, known_versions, self.extra, self.pull_requests, self.sha_prefix)


def _too_long(tag: str, name: str) -> BuildToolsError:
    shown = tag if len(tag) <= 48 else f"{tag[:40]}…"
    return BuildToolsError(
        f"git tag {shown!r} would be the Docker tag of {len(name)} characters; "
        f"Docker allows at most {MAX_LENGTH}",
        f"tag the commit with a shorter name, and delete this one: git tag -d {tag}",
    )


def _git_tag_name(tag: str) -> str:
    """A git tag that is no version, as ``tag-<name>``: never a floating, branch or release
    tag's name. Too long is refused, not shortened: an exact tag must say what it is."""
    name = f"tag-{_clean(tag)}"
    if len(name) > MAX_LENGTH:
        raise _too_long(tag, name)
    return name


def sha_tag_name(commit: str, prefix: str = SHA_PREFIX) -> str:
    """The commit's own tag: ``prefix`` and the short commit (``sha-0123abc``)."""
    return f"{prefix}{commit[:SHA_LENGTH]}"


def dirty_tag_name(commit: str, prefix: str = SHA_PREFIX) -> str:
    """A working-tree build's only tag: ``sha-0123abc-dirty``, never the commit's own."""
    return f"{sha_tag_name(commit, prefix)}-dirty"


def _sha_tag(info: BuildInfo, prefix: str) -> ImageTag:
    short = info.commit[:SHA_LENGTH]
    return ImageTag(sha_tag_name(info.commit, prefix), False, f"commit {short}")


def choose(
    info: BuildInfo,
    known_versions: Iterable[str] = (),
    extra: Mapping[str, Sequence[str]] | None = None,
    pull_requests: bool = False,
    sha_prefix: str = SHA_PREFIX,
) -> TagChoice:
    """The tags for ``info`` and any warnings, without logging them.

    ``known_versions`` (e.g. from the registry) add to the versions git knows
    (``info.known_versions``); both decide whether floating release tags move. ``sha_prefix``
    starts the commit tag (checked by :mod:`buildtools.plan.validate`).
    """
    extra_versions = list(known_versions)
    warnings: list[str] = []
    tags: list[ImageTag] = []
    if info.tag:
        version = parse_version(info.tag)
        if version is None:
            name = _git_tag_name(info.tag)
            warnings.append(
                f"tag {info.tag!r} is not a semantic version (like v1.2.3): "
                f"it gets only {name!r}, no 1.2/1/latest"
            )
            tags.append(ImageTag(name, False, f"git tag {info.tag}", protected=True))
        else:
            names = [*info.known_versions, *extra_versions]
            known = [v for v in map(parse_version, names) if v is not None]
            release = _release_tags(version, known)
            if len(release[0].name) > MAX_LENGTH:
                raise _too_long(info.tag, release[0].name)
            tags.extend(release)
            if info.shallow and not version.prerelease and not extra_versions:
                warnings.append(
                    "shallow clone: tags outside its history are unknown, so 1.2/1/latest "
                    "may move for an older release (fetch all tags or do a full clone)"
                )
        tags.append(_sha_tag(info, sha_prefix))
    elif info.pull_request is not None:
        if pull_requests:
            tags.append(ImageTag(f"pr-{info.pull_request}", True, "pull request"))
        else:
            warnings.append(
                f"pull request #{info.pull_request}: no tags "
                "(set buildtools.tags.pull_requests to tag pr-N images)"
            )
    else:
        tags.append(_sha_tag(info, sha_prefix))
        if info.branch:
            name, warning = _branch_name_tag(info.branch, sha_prefix, extra or {})
            tags.append(ImageTag(name, True, f"branch {info.branch}"))
            warnings.extend([warning] if warning else [])
            for extra_tag in (extra or {}).get(info.branch, ()):
                tags.append(ImageTag(sanitize(extra_tag), True, f"extra tag for {info.branch}"))
    if info.dirty:
        # Not the commit's files: one local tag that no release, promotion or cache lookup
        # asks for, instead of the commit's and the branch's or release's (the build says
        # once that it builds the working tree; the tag's reason says it here).
        name = dirty_tag_name(info.commit, sha_prefix)
        tags = [ImageTag(name, False, f"working tree of commit {info.commit[:7]}, not releasable")]
    unique: dict[str, ImageTag] = {}
    for tag in sorted(tags, key=lambda t: t.floating):  # stable: keeps the order within each
        unique.setdefault(tag.name, tag)
    for tag in unique.values():
        if not VALID_TAG.match(tag.name):  # before the first step, never from the engine
            raise BuildToolsError(
                f"the Docker tag {tag.name[:60]!r} ({tag.reason}) is not valid: at most "
                f"{MAX_LENGTH} of A-Z a-z 0-9 _ . -, not starting with . or -",
                "rename what it comes from (branch, tag or buildtools.tags.extra)",
            )
    return TagChoice(tuple(unique.values()), tuple(warnings))
