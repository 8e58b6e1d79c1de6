"""`invoke rollback`: moving a floating release tag back to an earlier release, deliberately
(what the registries hold, `invoke releases`, is :mod:`buildtools.release.inventory`).

A rollback reads everything before its first PUT: every registry is checked (reachable, login,
push access), every repository's tag list, the target release's manifest bytes and the
floating tag's current ones; the target must be a release of the tag's kind in every
repository of every registry (:func:`buildtools.plan.rollback.check_target`) and, with a
verify key configured, signed and smoke-tested under it. Then app and sidecar move together in
every registry through :func:`buildtools.release.publish.execute` (the promotion's pusher: the
exact bytes the registry serves for the release, so the digest is the release's), and the
marker is put beside each (:mod:`buildtools.plan.rollback`). A failure part-way puts back the
old manifests (and removes the markers put), so both images stay on the old digest.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from buildtools.attest.keyring import load_keys
from buildtools.config.schema import Settings
from buildtools.errors import BuildToolsError
from buildtools.plan import inventory, rollback
from buildtools.plan.manifest_rewrite import Promoted
from buildtools.plan.manifests import Manifest, config_labels, parse_manifest
from buildtools.plan.push_order import Push, ReleaseImage
from buildtools.registry import targets
from buildtools.registry.client import RegistryClient
from buildtools.registry.targets import Target
from buildtools.release.inventory import proof_problem, roles

# Publishing and promotion (the engine's client with them) are imported where a rollback moves
# a tag: `invoke releases` only reads.
if TYPE_CHECKING:
    from buildtools.release.promote import ManifestPusher


@dataclass(frozen=True)
class Move:
    """One floating tag of one image in one registry: from what to what."""

    registry: str
    image: str
    repository: str
    tag: str
    old_digest: str | None
    old_version: str | None  # what the old image's labels claim
    new_digest: str
    version: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "registry": self.registry,
            "image": self.image,
            "repository": self.repository,
            "tag": self.tag,
            "old_digest": self.old_digest,
            "old_labelled_version": self.old_version,
            "new_digest": self.new_digest,
            "version": self.version,
        }


@dataclass(frozen=True)
class RollbackResult:
    tag: str
    version: str
    moves: tuple[Move, ...]
    dry_run: bool
    markers: tuple[str, ...] = ()
    cleared: bool = False
    notes: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {
            "tag": self.tag,
            "version": self.version,
            "dry_run": self.dry_run,
            "cleared": self.cleared,
            "moves": [m.as_dict() for m in self.moves],
            "markers": list(self.markers),
            "notes": list(self.notes),
        }

    def text(self) -> str:
        verb = "would move" if self.dry_run else "moved"
        lines = [
            f"{verb} {m.registry}/{m.repository}:{m.tag} "
            f"{m.old_digest or 'none'} (labelled {m.old_version or '?'}) -> {m.new_digest} "
            f"({m.version})"
            if m.old_digest != m.new_digest
            else f"unchanged {m.registry}/{m.repository}:{m.tag} already at {m.version} "
            f"({m.new_digest})"
            for m in self.moves
        ]
        marker_verb = "would put" if self.dry_run else "put"
        if self.cleared:
            marker_verb = "would clear" if self.dry_run else "cleared"
        lines.extend(f"{marker_verb} marker {m}" for m in self.markers)
        lines.extend(self.notes)
        return "\n".join(lines)


@dataclass
class Read:
    """What one repository of one registry holds for the rollback (read before any PUT)."""

    target: Target
    image: str
    repository: str
    tags: tuple[str, ...]
    new: tuple[bytes, str] | None = None  # the release's manifest bytes and media type
    old: tuple[bytes, str] | None = None  # the floating tag's, before
    old_version: str | None = None


def checked_targets(settings: Settings, env: Mapping[str, str]) -> list[Target]:
    """Every registry answers and lets us push (checked before anything changes)."""
    found = targets.configured(settings.release, env)
    targets.preflight(found, [repository for _, repository in roles(settings)])
    return found


def read_all(found: Sequence[Target], settings: Settings) -> list[Read]:
    return [
        Read(target, image, repository, tuple(target.client.tags(repository)))
        for target in found
        for image, repository in roles(settings)
    ]


def plan(
    settings: Settings, env: Mapping[str, str], tag: str, version: str
) -> tuple[list[Target], list[Read], list[Move]]:
    """Every read and check of a rollback, nothing written."""
    rollback.check_floating(tag)
    keys = load_keys(settings.release, env)  # an unusable key: one line before any read
    found = checked_targets(settings, env)
    state = read_all(found, settings)
    common = set.intersection(*(set(r.tags) for r in state)) if state else set()
    rollback.check_target(tag, version, common)
    moves = []
    for r in state:
        where = f"{r.target.registry.push_name(r.repository)}"
        r.new = r.target.client.manifest_bytes(r.repository, version)
        r.old = r.target.client.manifest_bytes(r.repository, tag) if tag in r.tags else None
        if r.new is None:
            raise BuildToolsError(f"{where}:{version} vanished while read", "run it again")
        if r.old is None:
            raise BuildToolsError(
                f"{where} has no {tag} tag: there is nothing to roll back",
                "release first; a rollback moves an existing floating tag",
            )
        old = parse_manifest(*r.old)
        if old.config_digest:
            r.old_version = config_labels(
                r.target.client.config(r.repository, old.config_digest)
            ).get(inventory.VERSION)
        new = parse_manifest(*r.new)
        why = (
            proof_problem(r.target.client, r.repository, new.digest, keys) if keys.verify else None
        )
        if why is not None:
            raise BuildToolsError(
                f"{where}:{version} cannot be rolled back to: {why}",
                "roll back to a release invoke ci signed and smoke-tested with this key",
            )
        moves.append(
            Move(
                r.target.name,
                r.image,
                r.repository,
                tag,
                old.digest,
                r.old_version,
                new.digest,
                version,
            )
        )
    return found, state, moves


def execute(
    settings: Settings,
    found: Sequence[Target],
    state: Sequence[Read],
    tag: str,
    version: str,
    moves: Sequence[Move],
) -> tuple[str, ...]:
    """Move the tag in every repository of every registry, then put the markers; on any
    failure put back what was moved and remove the markers put. The markers put."""
    from buildtools.release import publish
    from buildtools.release.promote import Candidate

    candidates, images, current = [], {}, {}
    for r in state:
        assert r.new is not None and r.old is not None
        new, old = parse_manifest(*r.new), parse_manifest(*r.old)
        promoted = Promoted(old.digest, r.new[0], new.media_type, config_digest=new.config_digest)
        candidates.append(Candidate(r.target, r.image, r.repository, promoted))
        images[(r.target.name, r.repository)] = ReleaseImage(
            r.image, r.repository, promoted.image_id
        )
        same = old.digest == new.digest
        current[(r.target.name, r.repository, tag)] = Manifest(
            old.digest, old.media_type, promoted.image_id if same else None, old.size
        )
    from buildtools.plan import push_order

    pushes = []
    for target in found:
        mine = [i for (name, _), i in images.items() if name == target.name]
        pushes.extend(push_order.pushes(mine, [(tag, True)], [target.registry], current))
    pusher = MovingPusher(candidates, {}, pushes)
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    put: list[tuple[Read, str]] = []
    try:
        publish.execute(
            None,
            pushes,
            found,
            retry=targets.retry_policy(settings.release),
            pusher=pusher,
            verifier=pusher.verify,
        )
        for r, move in zip(state, moves, strict=True):
            body = rollback.marker_manifest(tag, version, move.new_digest, when)
            r.target.client.put_blob(r.repository, rollback.EMPTY_DIGEST, rollback.EMPTY)
            digest = r.target.client.put_manifest(
                r.repository, rollback.marker_tag(tag), body, parse_manifest(body).media_type
            )
            put.append((r, digest))
    except BuildToolsError as exc:
        left = restore(state, tag, put, pusher.moved)
        exc.problem += (
            f"; every {tag} tag was put back on its old digest"
            if not left
            else f"; could not put back {', '.join(left)}: move them by hand"
        )
        raise
    return tuple(
        f"{r.target.registry.push_name(r.repository)}:{rollback.marker_tag(tag)}" for r, _ in put
    )


class MovingPusher:
    """The promotion's pusher, remembering every tag its registry accepted (to put back)."""

    def __init__(self, *args: Any) -> None:
        from buildtools.release.promote import ManifestPusher

        self.pusher: ManifestPusher = ManifestPusher(*args)
        self.moved: set[tuple[str, str]] = set()

    def push(self, push: Push, target: Target, on_layer: Callable[..., None]) -> str:
        self.moved.add((push.registry, push.repository))  # a lost answer may have moved it
        return self.pusher.push(push, target, on_layer)

    def fetch(self, ref: str, tag: str, target: Target) -> str:
        return self.pusher.fetch(ref, tag, target)

    def verify(self, push: Push, target: Target, digest: str) -> None:
        self.pusher.verify(push, target, digest)

    def close(self) -> None:
        self.pusher.close()


def restore(
    state: Sequence[Read], tag: str, put: Sequence[tuple[Read, str]], moved: set[tuple[str, str]]
) -> list[str]:
    """Put back the old manifest under ``tag`` wherever a PUT was tried, and delete the
    markers put; the references that could not be put back."""
    left = []
    for r in state:
        if (r.target.name, r.repository) not in moved or r.old is None:
            continue
        old = parse_manifest(*r.old).digest
        try:
            r.target.client.put_manifest(r.repository, tag, *r.old)
        except BuildToolsError:
            try:  # the PUT that failed the rollback may never have moved it
                there = r.target.client.digest(r.repository, tag)
            except BuildToolsError:
                there = None
            if there != old:
                left.append(f"{r.target.registry.push_name(r.repository)}:{tag}")
    for r, digest in put:
        try:
            r.target.client.delete_manifest(r.repository, digest)
        except BuildToolsError:
            left.append(f"{r.target.registry.push_name(r.repository)}:{rollback.marker_tag(tag)}")
    return left


def clear(
    settings: Settings, env: Mapping[str, str], tag: str, *, dry_run: bool = False
) -> RollbackResult:
    """Remove ``tag``'s rollback markers everywhere (each by its own digest, only when it is
    one of ours): the next release moves the tag again."""
    rollback.check_floating(tag)
    return clear_in(checked_targets(settings, env), settings, tag, dry_run=dry_run)


def clear_in(
    found: Sequence[Target], settings: Settings, tag: str, *, dry_run: bool = False
) -> RollbackResult:
    """:func:`clear` on registries already checked (a forced release clears what it moved)."""
    marker = rollback.marker_tag(tag)
    removed = []
    for r in read_all(found, settings):
        if marker not in r.tags:
            continue
        read = r.target.client.manifest_bytes(r.repository, marker)
        if read is None:
            continue
        ref = f"{r.target.registry.push_name(r.repository)}:{marker}"
        digest = parse_manifest(*read).digest
        if parse_manifest(*read).media_type != rollback.OCI_MANIFEST or (
            rollback.ARTIFACT_TYPE.encode() not in read[0]
        ):
            # Not ours (a hand-made tag, a forgery): deleting its digest would take every tag
            # on that manifest (a release's too). Our own marker goes over the tag first.
            ref += f" (not this tool's marker: it named {digest}, which stays)"
            if not dry_run:
                digest = _own_marker_over(r.target.client, r.repository, tag)
        if not dry_run:
            r.target.client.delete_manifest(r.repository, digest)
        removed.append(ref)
    notes = () if removed else (f"no rollback marker for {tag}: nothing to clear",)
    return RollbackResult(tag, "", (), dry_run, tuple(removed), cleared=True, notes=notes)


def _own_marker_over(client: RegistryClient, repository: str, tag: str) -> str:
    """A marker of this tool put under ``rollback-<tag>``: its digest, which only it has."""
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = rollback.marker_manifest(tag, "?", "?", when)
    client.put_blob(repository, rollback.EMPTY_DIGEST, rollback.EMPTY)
    return client.put_manifest(repository, rollback.marker_tag(tag), body, rollback.OCI_MANIFEST)


def run(
    settings: Settings, env: Mapping[str, str], tag: str, version: str, *, dry_run: bool = False
) -> RollbackResult:
    """`invoke rollback TAG VERSION`."""
    found, state, moves = plan(settings, env, tag, version)
    markers = tuple(
        f"{r.target.registry.push_name(r.repository)}:{rollback.marker_tag(tag)}" for r in state
    )
    if dry_run:
        return RollbackResult(tag, version, tuple(moves), True, markers)
    put = execute(settings, found, state, tag, version, moves)
    return RollbackResult(tag, version, tuple(moves), False, put)
