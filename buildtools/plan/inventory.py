"""What the registries hold, as `invoke releases` shows it: pure grouping of tag lists and the
few reads made for them.

A repository's tag list (one paged read) already tells most: which tags are releases, which
are floating, ``sha-``/branch/``pr-``/cache tags, cosign's ``sha256-<hex>.sig``/``.att``
(signed, attested) and rollback markers. Only releases and floating tags are resolved to
digests, and each distinct release image's config read once for its labels; ``sha-``, branch
and ``pr-`` tags are counted, never read (their age comes from git, see
:func:`buildtools.facts.gitinfo.commit_times`). Labels are what the image claims: shown as
"labelled", decisions are made with digests.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from buildtools.facts.versions import ascending, parse_version
from buildtools.plan.labels import OCI, SMOKE_TEST

PROOF = re.compile(r"^sha256-([0-9a-f]{64})\.(sig|att)$")
RELEASE_FLOATING = re.compile(r"^(latest|\d+|\d+\.\d+)$")
# A rollback's marker: ``rollback-latest`` (a tag no release, branch or commit tag can have:
# branches named so are tagged ``branch-rollback-…``, see :mod:`buildtools.plan.tags`).
MARKER_PREFIX = "rollback-"
REVISION, CREATED, VERSION = OCI + "revision", OCI + "created", OCI + "version"


@dataclass(frozen=True)
class Kinds:
    """One repository's tags by kind, from its tag list alone."""

    releases: tuple[str, ...] = ()  # exact versions, pre-releases too, lowest first
    floating: tuple[str, ...] = ()  # latest, X, X.Y, and the extra floating tags (edge)
    shas: tuple[str, ...] = ()
    branches: tuple[str, ...] = ()
    prs: tuple[str, ...] = ()
    caches: tuple[str, ...] = ()
    markers: tuple[str, ...] = ()  # the floating tags a rollback marker holds
    proofs: Mapping[str, frozenset[str]] = field(default_factory=dict)  # digest -> sig/att

    @property
    def resolved(self) -> tuple[str, ...]:
        """The tags worth a request each: releases and floating tags."""
        return (*self.releases, *self.floating)


def classify(tags: Iterable[str], sha_prefix: str, extra_floating: Iterable[str] = ()) -> Kinds:
    """The tags of one repository by kind (``sha_prefix``: ``buildtools.tags.sha_prefix``;
    ``extra_floating``: the ``tags.extra`` values, e.g. ``edge``)."""
    extra = set(extra_floating)
    found: dict[str, list[str]] = {k: [] for k in ("rel", "flo", "sha", "br", "pr", "ca", "mk")}
    proofs: dict[str, set[str]] = {}
    for tag in tags:
        proof = PROOF.match(tag)
        if proof:
            proofs.setdefault("sha256:" + proof.group(1), set()).add(proof.group(2))
        elif parse_version(tag.replace("_", "+", 1)) is not None:
            found["rel"].append(tag)
        elif RELEASE_FLOATING.match(tag) or tag in extra:
            found["flo"].append(tag)
        elif tag.startswith(MARKER_PREFIX):
            found["mk"].append(tag.removeprefix(MARKER_PREFIX))
        elif tag.startswith(sha_prefix):
            found["sha"].append(tag)
        elif tag.startswith("pr-"):
            found["pr"].append(tag)
        elif tag.startswith("cache-"):
            found["ca"].append(tag)
        else:
            found["br"].append(tag)
    releases = ascending(t.replace("_", "+", 1) for t in found["rel"])
    return Kinds(
        tuple(v.replace("+", "_", 1) for v in releases),
        tuple(sorted(found["flo"], key=floating_order)),
        tuple(found["sha"]),
        tuple(sorted(found["br"])),
        tuple(found["pr"]),
        tuple(found["ca"]),
        tuple(sorted(found["mk"])),
        {d: frozenset(k) for d, k in proofs.items()},
    )


def floating_order(tag: str) -> tuple[int, str]:
    """``latest`` first, then ``X``, ``X.Y``, then the rest by name."""
    return (0 if tag == "latest" else 1 if RELEASE_FLOATING.match(tag) else 2, tag)


@dataclass(frozen=True)
class Marker:
    """A rollback marker as read: the floating tag it holds, the version and digest it was
    rolled back to in this repository, and when."""

    tag: str
    version: str
    digest: str
    when: str


@dataclass(frozen=True)
class Holdings:
    """What one registry holds in one repository: the tag kinds, the digest of every release
    and floating tag, the labels of every release image (by digest), the markers, and the
    commit time git knows for each ``sha-`` tag (epoch seconds)."""

    registry: str
    image: str  # app / nginx
    repository: str
    kinds: Kinds
    digests: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    markers: Mapping[str, Marker] = field(default_factory=dict)
    sha_times: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Release:
    """One release version of one image, across the registries."""

    image: str
    version: str
    digests: Mapping[str, str]  # registry -> digest
    missing: tuple[str, ...]  # registries without this version
    labels: Mapping[str, str]
    signed: bool
    attested: bool
    floating: tuple[str, ...]
    verified: str | None = None  # with a key: "verified" or why not

    @property
    def digest(self) -> str | None:
        """The one digest every registry holding it serves; None when they disagree."""
        found = set(self.digests.values())
        return found.pop() if len(found) == 1 else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "version": self.version,
            "digest": self.digest,
            "digests": dict(self.digests),
            "missing_in": list(self.missing),
            "labelled_commit": self.labels.get(REVISION),
            "labelled_created": self.labels.get(CREATED),
            "labelled_smoke_test": self.labels.get(SMOKE_TEST),
            "signature_tag": self.signed,
            "attestation_tag": self.attested,
            "verified": self.verified,
            "floating": list(self.floating),
        }


@dataclass(frozen=True)
class Inventory:
    """`invoke releases`: every release row, the summaries and what needs a human's eye."""

    releases: tuple[Release, ...]
    summaries: tuple[str, ...]
    disagreements: tuple[str, ...]
    markers: tuple[str, ...]
    requests: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "releases": [r.as_dict() for r in self.releases],
            "summaries": list(self.summaries),
            "disagreements": list(self.disagreements),
            "rollbacks": list(self.markers),
        }

    def text(self) -> str:
        rows = [
            (
                "IMAGE",
                "VERSION",
                "DIGEST",
                "LABELLED COMMIT",
                "LABELLED DATE",
                "SIGNED",
                "SMOKE",
                "FLOATING TAGS",
            ),
        ]
        for r in self.releases:
            digest = (r.digest or "DIFFERS").removeprefix("sha256:")[:12]
            signed = r.verified or ("sig tag" if r.signed else "no")
            smoke = "att tag" if r.attested else "no"
            label = r.labels.get(SMOKE_TEST)
            if label and not r.verified:
                smoke += f", labelled {label}"
            commit = (r.labels.get(REVISION) or "-")[:7]
            created = r.labels.get(CREATED) or "-"
            rows.append(
                (
                    r.image,
                    r.version,
                    digest,
                    commit,
                    created,
                    signed,
                    smoke,
                    " ".join(r.floating) or "-",
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
        lines = [
            "  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]]).rstrip()
            for row in rows
        ]
        lines.extend(self.summaries)
        lines.extend(f"rolled back: {line}" for line in self.markers)
        lines.extend(f"DISAGREE: {line}" for line in self.disagreements)
        return "\n".join(lines)


def epoch_text(seconds: int) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%d %H:%M")


def summary(image: str, registry: str, kinds: Kinds, sha_times: Mapping[str, int]) -> str:
    """``sha-``, branch, ``pr-`` and cache tags by count; the ``sha-`` ones' age from git."""
    known = sorted(sha_times[t] for t in kinds.shas if t in sha_times)
    age = ""
    if known:
        age = f" (commits from {epoch_text(known[0])} to {epoch_text(known[-1])}"
        unknown = len(kinds.shas) - len(known)
        age += f", {unknown} unknown to git)" if unknown else ")"
    elif kinds.shas:
        age = " (their commits are unknown to this git checkout: age not shown)"
    shown = ", ".join(kinds.branches[:5]) + (", …" if len(kinds.branches) > 5 else "")
    return (
        f"{image} in {registry}: {len(kinds.shas)} commit tags{age}; "
        f"{len(kinds.branches)} branch tags{f' ({shown})' if shown else ''}; "
        f"{len(kinds.prs)} pr- tags; {len(kinds.caches)} cache tags"
    )


def build(
    holdings: Sequence[Holdings], verified: Mapping[tuple[str, str], str] | None = None
) -> Inventory:
    """The inventory from every registry's holdings (``verified``: by (image, digest), what a
    verification with the configured key said)."""
    verified = verified or {}
    registries = list(dict.fromkeys(h.registry for h in holdings))
    images = list(dict.fromkeys(h.image for h in holdings))
    releases: list[Release] = []
    disagreements: list[str] = []
    markers: list[str] = []
    for image in images:
        mine = [h for h in holdings if h.image == image]
        versions = ascending(v.replace("_", "+", 1) for h in mine for v in h.kinds.releases)
        for version in (v.replace("+", "_", 1) for v in versions):
            digests = {h.registry: h.digests[version] for h in mine if version in h.digests}
            first = next(h for h in mine if version in h.digests)
            digest = digests[first.registry]
            proofs = frozenset().union(
                *(
                    h.kinds.proofs.get(d, frozenset())
                    for h in mine
                    for d in [digests.get(h.registry)]
                )
            )
            floating = sorted(
                {
                    t
                    for h in mine
                    for t in h.kinds.floating
                    if h.digests.get(t) is not None and h.digests.get(t) == digests.get(h.registry)
                },
                key=floating_order,
            )
            releases.append(
                Release(
                    image,
                    version,
                    digests,
                    tuple(
                        r
                        for r in registries
                        if r not in digests and any(h.registry == r for h in mine)
                    ),
                    first.labels.get(digest, {}),
                    "sig" in proofs,
                    "att" in proofs,
                    tuple(floating),
                    verified.get((image, digest)),
                )
            )
        disagreements.extend(disagree(image, mine))
        for h in mine:
            markers.extend(
                f"{h.registry}/{h.repository}:{m.tag} held at {m.version} ({m.digest}) "
                f"since {m.when}: a release leaves it alone until `invoke rollback --clear {m.tag}`"
                for m in h.markers.values()
            )
    summaries = tuple(summary(h.image, h.registry, h.kinds, h.sha_times) for h in holdings)
    return Inventory(tuple(releases), summaries, tuple(disagreements), tuple(markers))


def disagree(image: str, mine: Sequence[Holdings]) -> list[str]:
    """Every resolved tag that two registries hold at different digests, or one lacks."""
    if len(mine) < 2:
        return []
    lines = []
    tags = sorted({t for h in mine for t in h.digests}, key=lambda t: (parse_version(t) is None, t))
    for tag in tags:
        seen = {h.registry: h.digests.get(tag) for h in mine}
        if len(set(seen.values())) > 1:
            where = ", ".join(f"{r}: {d or 'absent'}" for r, d in seen.items())
            lines.append(f"{image}:{tag} differs between registries ({where})")
    return lines
