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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import docker
import docker.errors

from buildtools.engine.push import EnginePusher, Pusher
from buildtools.errors import INTERRUPTED, BuildToolsError
from buildtools.plan import build_source, labels, push_order
from buildtools.plan.build_record import BuildRecord
from buildtools.plan.build_source import Wanted
from buildtools.plan.manifests import Manifest
from buildtools.plan.metadata import Metadata
from buildtools.plan.push_order import OVERWRITE, PUSH, UNCHANGED, Push, ReleaseImage, TagLike
from buildtools.registry.retry import RetryPolicy
from buildtools.registry.targets import Target, secrets_of
from buildtools.release import floating
from buildtools.release.progress import PushReporter, QuietReporter

REVISION_LABEL = labels.OCI + "revision"
VERSION_LABEL = labels.OCI + "version"
DIRTY_LABEL = labels.BUILD + "dirty"
TAGS_LABEL = labels.BUILD + "tags"
SMOKE_LABEL = labels.SMOKE_TEST
SMOKE_PASSED = labels.SMOKE_PASSED
SMOKE_NONE = labels.SMOKE_NONE


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


@dataclass(frozen=True)
class Expected:
    """What a released image's labels must say: this commit, clean, this build's version."""

    revision: str
    version: str
    # The tags version.yml lists, as the TAGS_LABEL writes them; None: not checked.
    tags: str | None = None
    # The SMOKE_LABEL's value this build writes; None: not checked.
    smoke_test: str | None = None

    @classmethod
    def of(cls, meta: Metadata) -> Expected:
        return cls(
            meta.info.commit,
            meta.info.version,
            meta.labels.get(TAGS_LABEL, ""),
            meta.labels.get(SMOKE_LABEL, SMOKE_NONE),
        )

    def tested(self, labels: Mapping[str, str]) -> str | None:
        """Why an image with ``labels`` is not one built from this commit's clean tree (what
        identifies the tested ``sha-`` image a release may promote), or None when it is."""
        if labels.get(REVISION_LABEL) != self.revision:
            return f"built from commit {str(labels.get(REVISION_LABEL) or 'unknown')[:7]}"
        if labels.get(DIRTY_LABEL) != "false":
            return "built from a working tree with uncommitted changes"
        return None

    def unsmoked(self, labels: Mapping[str, str]) -> str | None:
        """Why a registry image with ``labels`` may not stand in for this build's because it
        skipped the smoke test this build promises (`invoke ci` with its smoke test), or None.
        A registry image labelled as pushed after its smoke test passed stands in for any."""
        if self.smoke_test != SMOKE_PASSED:
            return None
        if labels.get(SMOKE_LABEL) == SMOKE_PASSED:
            return None
        return "pushed without a smoke test"

    def mismatch(self, labels: Mapping[str, str], *, in_registry: bool = False) -> str | None:
        """Why an image with ``labels`` is not this build's, or None when it is.

        A local image must carry exactly this build's smoke-test label (one built by
        `invoke build` never passes for `invoke ci`'s, which pushes only after its smoke test);
        a registry image (``in_registry``) may also be one pushed after a passing smoke test."""
        why = self.tested(labels)
        if why is not None:
            return why
        if labels.get(VERSION_LABEL) != self.version:
            return f"of version {labels.get(VERSION_LABEL) or 'unknown'}, not {self.version}"
        # A registry image is a release already made: the tags it lists are those it had
        # then (latest, before a higher release came); only a local image must be this build.
        if not in_registry and self.tags is not None and labels.get(TAGS_LABEL, "") != self.tags:
            have = labels.get(TAGS_LABEL) or "none"
            return f"built for the tags {have}, not {self.tags or 'none'}"
        if in_registry:
            return self.unsmoked(labels)
        have = labels.get(SMOKE_LABEL, SMOKE_NONE)
        if self.smoke_test is not None and have != self.smoke_test:
            return f"labelled smoke test {have!r}, not {self.smoke_test!r}"
        return None


# Why a registry image labelled this commit's is not proven to be its build (None: it is).
Proven = Callable[[Target, str, Manifest], str | None]


def finish_interrupted(
    images: Sequence[ReleaseImage],
    tags: Iterable[TagLike | tuple[str, bool]],
    found: Sequence[Target],
    current: push_order.Current,
    expected: Expected | None,
    pusher: Pusher | None,
    proven: Proven | None = None,
) -> tuple[list[ReleaseImage], list[str]]:
    """Images whose exact release tag a registry already holds *from this very commit* (an
    interrupted release; the local image since rebuilt or removed) take the registry's image
    as their source, so a re-run finishes the release without ``--force``. That image must be
    clean and of this version too: one built from a dirty tree, or of another version, is
    refused with one line. ``pusher`` None (a dry run) only plans with it. ``proven`` (with a
    signing or verify key): why that image is not proven this commit's build (None: it is);
    labels are what anyone who can push writes, and the release would sign it."""
    protected = sorted(push_order.protected_names(tags))
    result: list[ReleaseImage] = []
    notes: list[str] = []
    for image in images:
        adopted = image
        for target in found if expected else ():
            for name in protected:
                there = current.get((target.name, image.repository, name))
                if there is None or not there.config_digest:
                    continue
                if there.config_digest == image.image_id:
                    continue
                labels = target.client.image_labels(image.repository, there)
                if labels.get(REVISION_LABEL) != expected.revision:
                    continue
                ref = target.registry.push_name(image.repository)
                why = expected.mismatch(labels, in_registry=True)
                if why is not None:
                    raise BuildToolsError(
                        f"refusing to release: {ref}:{name} holds this commit's {image.name} "
                        f"image {why}",
                        "delete that tag in the registry if it must be replaced, or release "
                        "a new version",
                    )
                unproven = proven(target, image.repository, there) if proven else None
                if unproven is not None:
                    raise BuildToolsError(
                        f"refusing to release: {ref}:{name} holds an image labelled this "
                        f"commit's {image.name}, but {unproven}",
                        "delete that tag in the registry (the release then builds it from the "
                        "commit), or release a new version",
                    )
                image_id = pusher.fetch(ref, name, target) if pusher else there.config_digest
                adopted = ReleaseImage(image.name, image.repository, image_id)
                notes.append(
                    f"{ref}:{name} already holds this commit's {image.name} image (an earlier "
                    "release of it, finished or interrupted): releasing that image"
                )
                break
            if adopted is not image:
                break
        result.append(adopted)
    return result, notes


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
    ``before_floating``: as :func:`execute`'s; ``proven``: as :func:`finish_interrupted`'s.

    With ``expected`` (the commit and version being released), an interrupted release of that
    commit is finished from what the registry already holds (see :func:`finish_interrupted`).
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


def local_images(
    client: docker.DockerClient,
    repositories: Sequence[tuple[str, str]],
    meta: Metadata,
    records: Callable[[str], BuildRecord | None] = lambda image_id: None,
    wanted: Mapping[str, Wanted] | None = None,
) -> tuple[list[ReleaseImage], list[str]]:
    """This build's images by ``(role, repository)`` (image_id None when missing or not this
    build's, with a note each). Found by their first local tag, taken only when the record
    naming the image ID (``records``) proves a commit-tree build of what this release builds
    (``wanted``: :func:`buildtools.plan.build_source.mismatch`) and the labels say this
    version and tags (:class:`Expected`). Labels alone never do."""
    expected = Expected.of(meta)
    found: list[ReleaseImage] = []
    notes: list[str] = []
    for name, repository in repositories:
        ref = meta.local_refs(repository)[0]
        image_id = None
        try:
            image = client.images.get(ref)
        except docker.errors.ImageNotFound:
            pass
        else:
            want = (wanted or {}).get(name) or Wanted(name, meta.info.commit)
            if name == "nginx" and found and found[0].image_id:  # made from the app taken
                args = {**(want.build_args or {}), "APP_IMAGE": found[0].image_id}
                want = dataclasses.replace(want, build_args=args)
            why = build_source.mismatch(records(image.id), want)
            if why is None and (why := expected.mismatch(image.labels or {})) is None:
                image_id = image.id
            else:
                notes.append(
                    f"the local {name} image {ref} is not this build's ({why}): rebuilding it"
                )
        found.append(ReleaseImage(name, repository, image_id))
    return found, notes
