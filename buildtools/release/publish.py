"""`invoke release`: push the images with every planned tag to every registry, then verify.

The order of work is what makes a failure anywhere safe:

1. **Refuse early** (:mod:`buildtools.plan.release_rule`): a dirty tree, a pull request (unless
   configured), a branch that is not a release branch. Tag builds are always releasable.
2. **Check every registry once** (:func:`buildtools.registry.targets.preflight`) through its HTTP
   API: reachable (with retries), and, if it needs a login, that credentials are set and accepted.
3. **Plan** (:mod:`buildtools.plan.push_order`) from what each registry holds now (:func:`survey`).
4. **Push and verify** (:func:`execute`): each push goes through a :class:`Pusher`; transient
   failures are retried with backoff, permanent ones are not. The digest the push reports
   must be the one the registry then serves for the tag. A release's floating tags are read
   again right before they move (:mod:`buildtools.release.floating`): never backwards.

This module knows nothing of building: the task layer builds what is missing first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import docker
import docker.errors

from buildtools.engine.push import EnginePusher, Pusher
from buildtools.errors import INTERRUPTED, BuildToolsError
from buildtools.plan import push_order
from buildtools.plan.push_order import OVERWRITE, PUSH, UNCHANGED, Push, ReleaseImage, TagLike
from buildtools.registry.retry import RetryPolicy
from buildtools.registry.targets import Target, secrets_of
from buildtools.release import floating
from buildtools.release.identity import Expected, Proven, finish_interrupted
from buildtools.release.progress import PushReporter, QuietReporter


def survey(
    images: Sequence[ReleaseImage],
    tags: Iterable[TagLike | tuple[str, bool]],
    found: Sequence[Target],
) -> push_order.Current:
    """What every registry holds now for every image and tag (reads only)."""
    names = [name for name, _ in push_order.tag_pairs(tags)]
    return {
        (target.name, image.repository, name): target.client.manifest(image.repository, name)
        for target in found
        for image in images
        for name in names
    }


def verify(push: Push, target: Target, digest: str) -> None:
    """The registry serves, for the tag, exactly the manifest the push reported."""
    served = target.client.digest(push.repository, push.tag)
    if served != digest:
        raise BuildToolsError(
            f"verification failed for {push.reference}: the push reported "
            f"{digest} but the registry serves {served or 'nothing'}",
            "check for another release pushing the same tag at the same time, then release again",
        )


def execute(
    client: docker.DockerClient | None,
    pushes: Sequence[Push],
    found: Sequence[Target],
    *,
    retry: RetryPolicy,
    reporter: PushReporter | None = None,
    pusher: Pusher | None = None,
    verifier: Callable[[Push, Target, str], None] = verify,
    before_floating: Callable[[list[Push]], None] | None = None,
) -> list[Push]:
    """Push and verify every planned push in order (``unchanged`` ones are skipped); returns
    the record of each: the plan's push with its verified digest and the attempts it took.
    ``verifier`` checks each push (default: :func:`verify`, a read-back of every tag).
    ``before_floating`` is given the records of the exact tags once, before the first floating
    tag moves (the signing of what they point at: no floating tag names an unsigned image)."""
    reporter = reporter or QuietReporter()
    by_name = {t.name: t for t in found}
    secrets = secrets_of(found)
    if pusher is None:
        if client is None:
            raise BuildToolsError("no Docker Engine to push from", "start one")
        repositories = sorted({p.repository for p in pushes})
        pusher = EnginePusher(client, secrets, repositories)
    done = 0
    records: list[Push] = []
    try:
        for push in pushes:
            if push.floating and before_floating is not None:
                _before_floating(before_floating, records, pushes, done)
                before_floating = None
            if push.action == UNCHANGED:
                records.append(push)
                done += 1
                continue
            target = by_name[push.registry]
            attempts = 0

            def attempt(p: Push = push, t: Target = target) -> str:
                nonlocal attempts
                attempts += 1
                return pusher.push(p, t, lambda *layer: reporter.layer(p, *layer))

            try:
                kept = floating.held(push, target)  # the registry read again, right before
                if kept is not None:
                    records.append(kept)
                    done += 1
                    continue
                reporter.start(push)
                digest = retry.run(
                    attempt,
                    f"push of {push.reference}",
                    lambda n, wait, why, p=push: reporter.retry(
                        f"push of {p.reference}", n, wait, why
                    ),
                    fix="check the registry's status; raise buildtools.release.retries "
                    "or retry_base_delay to wait longer",
                )
                verifier(push, target, digest)
            except BuildToolsError as exc:
                exc.redact(secrets).problem += _where(pushes, done, push)
                raise
            record = dataclasses.replace(push, digest=digest, verified=True, attempts=attempts)
            records.append(record)
            reporter.finish(record)
            done += 1
    except KeyboardInterrupt:
        pushed = sum(1 for p in pushes[:done] if p.action != UNCHANGED)
        left = "nothing pushed" if not pushed else f"pushed {pushed} of {len(pushes)} tags"
        raise BuildToolsError(
            f"interrupted: {left}; floating tags move only after every exact one",
            "run the release again: it finishes what is missing",
            exit_code=INTERRUPTED,
        ) from None
    finally:
        reporter.close()
        pusher.close()
    return records


def _before_floating(
    call: Callable[[list[Push]], None], records: list[Push], pushes: Sequence[Push], done: int
) -> None:
    try:
        call(list(records))
    except BuildToolsError as exc:
        exc.problem += f" (after {done} of {len(pushes)} tags; no floating tag was moved)"
        raise


def _where(pushes: Sequence[Push], done: int, failed: Push) -> str:
    moved = "no floating tag was moved" if not failed.floating else "some floating tags moved"
    return f" (after {done} of {len(pushes)} tags; {moved})"


@dataclass(frozen=True)
class ReleaseResult:
    """What a release did (or, ``dry_run``, would do): every push in order, and what to say."""

    pushes: list[Push]
    dry_run: bool
    version: str | None = None
    warnings: list[str] = field(default_factory=list)
    # A promoted release (buildtools.promote): per registry and image, the tested image it was
    # made from (source digest), the release image's digest and the bytes sent.
    promoted: list[dict[str, Any]] = field(default_factory=list)
    # Where each registry's credentials go (buildtools.registry.targets.credential_routes):
    # what a --dry-run tells before anything is pushed.
    credentials: list[str] = field(default_factory=list)
    # What was signed (buildtools.release.signing): per registry and digest, the release tags,
    # the attestations attached and the bytes sent.
    signatures: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        found = {
            "version": self.version,
            "dry_run": self.dry_run,
            "pushes": [p.as_dict() for p in self.pushes],
            "pushed": sum(1 for p in self.pushes if p.action != UNCHANGED and p.verified),
            "unchanged": sum(1 for p in self.pushes if p.action == UNCHANGED),
            "warnings": list(self.warnings),
        }
        if self.promoted:
            found["promoted"] = list(self.promoted)
        if self.credentials:
            found["credentials"] = list(self.credentials)
        if self.signatures:
            found["signatures"] = list(self.signatures)
        return found

    def text(self) -> str:
        """The human summary: one line per tag with what happened and its digest (after one
        line per promoted image saying what it was made from)."""
        lines = list(self.credentials)
        for p in self.promoted:
            verb = "would promote" if self.dry_run else "promoted"
            lines.append(
                f"{verb} {p['registry']} {p['repository']}:{p['source_tag']} "
                f"{p['source_digest']} -> {p['digest']} ({p['bytes_sent']} bytes sent)"
            )
        rows = []
        for p in self.pushes:
            if self.dry_run:
                what = {PUSH: "would push", UNCHANGED: "unchanged", OVERWRITE: "would overwrite"}
                state = what[p.action]
                digest = p.previous or "none"
            else:
                # "replaced": the tag pointed at other content before (a sha- tag of a build
                # that was tested again, a floating tag); the JSON keeps the old digest.
                moved = p.previous and p.previous != p.digest
                state = "unchanged" if p.action == UNCHANGED else "replaced" if moved else "pushed"
                state = "kept" if p.action == push_order.HELD else state  # a higher one holds it
                digest = p.digest or ""
            kind = "floating" if p.floating else "immutable"
            rows.append((state, p.registry, f"{p.repository}:{p.tag}", kind, digest))
        if rows:
            # Every column named: a dry run's digest is what the tag points at now.
            digest = "DIGEST NOW" if self.dry_run else "DIGEST"
            rows.insert(0, ("ACTION", "REGISTRY", "REPOSITORY:TAG", "KIND", digest))
            widths = [max(len(row[i]) for row in rows) for i in range(4)]
            for row in rows:
                cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
                lines.append(" ".join([*cells, row[4]]).rstrip())
        for s in self.signatures:
            attached = ", ".join(s["attestations"]) or "no attestation"
            lines.append(
                f"signed {s['registry']} {s['repository']}@{s['digest']}: {attached} "
                f"({s['bytes_sent']} bytes sent)"
            )
        return "\n".join(lines)


def nothing_moves(pushes: Sequence[Push]) -> list[str]:
    """The note for a release run again (a restarted CI job) whose every tag is in place."""
    if pushes and all(p.action == UNCHANGED for p in pushes):
        return ["every tag already points at this release's images: nothing to push"]
    return []


def push_all(
    client: docker.DockerClient | None,
    images: Sequence[ReleaseImage],
    tags: Iterable[TagLike | tuple[str, bool]],
    found: Sequence[Target],
    *,
    retry: RetryPolicy,
    force: bool = False,
    dry_run: bool = False,
    reporter: PushReporter | None = None,
    pusher: Pusher | None = None,
    expected: Expected | None = None,
    before_floating: Callable[[list[Push]], None] | None = None,
    proven: Proven | None = None,
) -> ReleaseResult:
    """Plan, push and verify on registries already checked
    (:func:`buildtools.registry.targets.preflight`); ``dry_run`` only plans.
    ``before_floating``: as :func:`execute`'s; ``proven``: as ``finish_interrupted``'s.

    With ``expected`` (the commit and version being released), an interrupted release of that
    commit is finished from what the registry already holds
    (:func:`buildtools.release.identity.finish_interrupted`).
    """
    tags = list(tags)
    current = survey(images, tags, found)
    if pusher is None and not dry_run and client is not None:
        repositories = sorted({image.repository for image in images})
        pusher = EnginePusher(client, secrets_of(found), repositories)
    images, notes = finish_interrupted(
        images, tags, found, current, expected, None if dry_run else pusher, proven
    )
    registries = [t.registry for t in found]
    pushes = push_order.pushes(images, tags, registries, current, force=force)
    notes.extend(nothing_moves(pushes))
    if dry_run:
        return ReleaseResult(pushes, dry_run=True, warnings=notes)
    executed = execute(
        client, pushes, found, retry=retry, reporter=reporter, pusher=pusher,
        before_floating=before_floating,
    )  # fmt: skip
    return ReleaseResult(executed, dry_run=False, warnings=notes + floating.notes(executed))
