"""`invoke release`: push the images with every planned tag to every registry, then verify.

The order of work is what makes a failure anywhere safe:

1. **Refuse early** (:mod:`buildtools.decision`): a dirty tree, a pull request (unless
   configured), a branch that is not a release branch. Tag builds are always releasable.
2. **Check every registry once** (:func:`buildtools.targets.preflight`) through its HTTP API:
   reachable (with retries), and, if it needs a login, that credentials are set and accepted.
3. **Plan** (:mod:`buildtools.pushplan`) from what each registry holds now (:func:`survey`).
4. **Push and verify** (:func:`execute`): each push goes through a :class:`Pusher`; transient
   failures are retried with backoff, permanent ones are not. The digest the push reports
   must be the one the registry then serves for the tag.

This module knows nothing of building: the task layer builds what is missing first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import docker
import docker.errors

from buildtools import pushplan
from buildtools.errors import INTERRUPTED, BuildToolsError
from buildtools.metadata import Metadata
from buildtools.progress import PushReporter, QuietReporter
from buildtools.pusher import EnginePusher, Pusher
from buildtools.pushplan import OVERWRITE, PUSH, UNCHANGED, Push, ReleaseImage, TagLike
from buildtools.retry import RetryPolicy
from buildtools.targets import Target, preflight, secrets_of

REVISION_LABEL = "org.opencontainers.image.revision"


def survey(
    images: Sequence[ReleaseImage],
    tags: Iterable[TagLike | tuple[str, bool]],
    found: Sequence[Target],
) -> pushplan.Current:
    """What every registry holds now for every image and tag (reads only)."""
    names = [name for name, _ in pushplan.tag_pairs(tags)]
    return {
        (target.name, image.repository, name): target.client.manifest(image.repository, name)
        for target in found
        for image in images
        for name in names
    }


def plan(
    images: Sequence[ReleaseImage],
    tags: Iterable[TagLike | tuple[str, bool]],
    found: Sequence[Target],
    *,
    force: bool = False,
) -> list[Push]:
    """Every push in order, from what the registries hold now (see :mod:`buildtools.pushplan`)."""
    tags = list(tags)
    current = survey(images, tags, found)
    return pushplan.plan(images, tags, [t.registry for t in found], current, force=force)


def verify(push: Push, target: Target, digest: str) -> None:
    """The registry serves, for the tag, exactly the manifest the push reported."""
    served = target.client.digest(push.repository, push.tag)
    if served != digest:
        raise BuildToolsError(
            f"verification failed for {push.reference}: the push reported "
            f"{digest} but the registry serves {served or 'nothing'}",
            "check for another release pushing the same tag at the same time, then release again",
        )
    push.digest, push.verified = digest, True


def execute(
    client: docker.DockerClient | None,
    pushes: Sequence[Push],
    found: Sequence[Target],
    *,
    retry: RetryPolicy,
    reporter: PushReporter | None = None,
    pusher: Pusher | None = None,
) -> list[Push]:
    """Push and verify every planned push in order (``unchanged`` ones are skipped)."""
    reporter = reporter or QuietReporter()
    by_name = {t.name: t for t in found}
    secrets = secrets_of(found)
    if pusher is None:
        if client is None:
            raise BuildToolsError("no Docker Engine to push from", "start one")
        repositories = sorted({p.repository for p in pushes})
        pusher = EnginePusher(client, secrets, repositories)
    done = 0
    try:
        for push in pushes:
            if push.action == UNCHANGED:
                done += 1
                continue
            target = by_name[push.registry]
            reporter.start(push)
            try:
                digest = retry.run(
                    lambda p=push, t=target: pusher.push(
                        p, t, lambda *layer, p=p: reporter.layer(p, *layer)
                    ),
                    f"push of {push.reference}",
                    lambda n, wait, why, p=push: reporter.retry(
                        f"push of {p.reference}", n, wait, why
                    ),
                    fix="check the registry's status; raise buildtools.release.retries "
                    "or retry_base_delay to wait longer",
                )
                verify(push, target, digest)
            except BuildToolsError as exc:
                exc.redact(secrets).problem += _where(pushes, done, push)
                raise
            reporter.finish(push)
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
    return list(pushes)


def _where(pushes: Sequence[Push], done: int, failed: Push) -> str:
    moved = "no floating tag was moved" if not failed.floating else "some floating tags moved"
    return f" (after {done} of {len(pushes)} tags; {moved})"


@dataclass
class ReleaseResult:
    pushes: list[Push]
    dry_run: bool
    version: str | None = None
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "dry_run": self.dry_run,
            "pushes": [p.as_dict() for p in self.pushes],
            "pushed": sum(1 for p in self.pushes if p.action != UNCHANGED and p.verified),
            "unchanged": sum(1 for p in self.pushes if p.action == UNCHANGED),
            "warnings": list(self.warnings),
        }

    def text(self) -> str:
        """The human summary: one line per tag with what happened and its digest."""
        lines = []
        for p in self.pushes:
            if self.dry_run:
                what = {PUSH: "would push", UNCHANGED: "unchanged", OVERWRITE: "would overwrite"}
                state = what[p.action]
                digest = p.previous or ""
            else:
                state = "unchanged" if p.action == UNCHANGED else "pushed"
                digest = p.digest or ""
            kind = "floating" if p.floating else "immutable"
            lines.append(f"{state:<16} {p.registry:<22} {p.repository}:{p.tag} ({kind}) {digest}")
        return "\n".join(lines)


def finish_interrupted(
    images: Sequence[ReleaseImage],
    tags: Iterable[TagLike | tuple[str, bool]],
    found: Sequence[Target],
    current: pushplan.Current,
    revision: str | None,
    pusher: Pusher | None,
) -> tuple[list[ReleaseImage], list[str]]:
    """Images whose exact release tag a registry already holds *from this very commit* (an
    interrupted release; the local image since rebuilt or removed) take the registry's image
    as their source, so a re-run finishes the release without ``--force``. ``pusher`` None
    (a dry run) only plans with it."""
    protected = sorted(pushplan.protected_names(tags))
    result: list[ReleaseImage] = []
    notes: list[str] = []
    for image in images:
        adopted = image
        for target in found if revision else ():
            for name in protected:
                there = current.get((target.name, image.repository, name))
                if there is None or not there.config_digest:
                    continue
                if there.config_digest == image.image_id:
                    continue
                labels = target.client.image_labels(image.repository, there)
                if labels.get(REVISION_LABEL) != revision:
                    continue
                ref = target.registry.push_name(image.repository)
                image_id = pusher.fetch(ref, name, target) if pusher else there.config_digest
                adopted = ReleaseImage(image.name, image.repository, image_id)
                notes.append(
                    f"{ref}:{name} already holds this commit's {image.name} image (an earlier "
                    "release was interrupted): finishing the release with that image"
                )
                break
            if adopted is not image:
                break
        result.append(adopted)
    return result, notes


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
    revision: str | None = None,
) -> ReleaseResult:
    """Plan, push and verify on registries already checked; ``dry_run`` only plans.

    With ``revision`` (the commit being released), an interrupted release of that commit is
    finished from what the registry already holds (see :func:`finish_interrupted`).
    """
    tags = list(tags)
    current = survey(images, tags, found)
    if pusher is None and not dry_run and client is not None:
        repositories = sorted({image.repository for image in images})
        pusher = EnginePusher(client, secrets_of(found), repositories)
    images, notes = finish_interrupted(
        images, tags, found, current, revision, None if dry_run else pusher
    )
    registries = [t.registry for t in found]
    pushes = pushplan.plan(images, tags, registries, current, force=force)
    if dry_run:
        return ReleaseResult(pushes, dry_run=True, warnings=notes)
    executed = execute(client, pushes, found, retry=retry, reporter=reporter, pusher=pusher)
    return ReleaseResult(executed, dry_run=False, warnings=notes)


def run(
    client: docker.DockerClient | None,
    images: Sequence[ReleaseImage],
    tags: Iterable[TagLike | tuple[str, bool]],
    found: Sequence[Target],
    *,
    retry: RetryPolicy,
    force: bool = False,
    dry_run: bool = False,
    reporter: PushReporter | None = None,
    revision: str | None = None,
) -> ReleaseResult:
    """Check every registry, then :func:`push_all`: the whole release of given images."""
    preflight(found, [image.repository for image in images])
    return push_all(
        client,
        images,
        tags,
        found,
        retry=retry,
        force=force,
        dry_run=dry_run,
        reporter=reporter,
        revision=revision,
    )


def local_images(
    client: docker.DockerClient, repositories: Sequence[tuple[str, str]], meta: Metadata
) -> list[ReleaseImage]:
    """The images built for exactly this commit, by role (image_id None when missing).

    ``repositories`` are ``(role, repository)`` pairs. Images are found by the first local tag
    ``invoke build`` gives them and must carry this commit in their revision label, so an
    image left from another commit is never released.
    """
    found = []
    for name, repository in repositories:
        ref = meta.local_refs(repository)[0]
        image_id = None
        try:
            image = client.images.get(ref)
            labels = image.labels or {}
            if labels.get(REVISION_LABEL) == meta.info.commit:
                image_id = image.id
        except docker.errors.ImageNotFound:
            pass
        found.append(ReleaseImage(name, repository, image_id))
    return found
