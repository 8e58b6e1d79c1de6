"""`invoke release`: push both images with every policy tag to every registry, then verify.

The order of work is what makes a failure anywhere safe:

1. **Refuse early** (:func:`check_releasable`): a dirty tree, a pull request (unless
   configured), a branch that is not a release branch. Tag builds are always releasable.
2. **Check every registry** (:func:`preflight`) through its HTTP API: reachable (with
   retries), and, if it needs a login, that credentials are set and accepted. Every missing
   login is reported in one error before anything is pushed.
3. **Plan** (:func:`plan`): for every registry, image and tag, what the registry has now. A
   tag already pointing at this very image (same config digest, i.e. image ID) is left alone,
   so re-running a finished release pushes nothing. A protected tag (an exact release such as
   ``1.2.3``) that points at *other* content is refused unless ``force``; ``sha-…`` is replaced
   by a later build of its commit. Immutable tags (exact versions, ``sha-…``) of all images and
   registries come first, floating ones (``1.2``, ``1``, ``latest``, branch names) last, so a
   failure never leaves a floating tag on an image whose exact tag is missing.
4. **Push and verify** (:func:`execute`): each push's stream is read to the end and every
   ``errorDetail`` is an error; transient ones are retried with backoff, permanent ones are
   not. The digest the stream reports must be the one the registry then serves for the tag.

Credentials go to the Docker Engine only as each push's ``auth_config``; every message that
comes back from the engine or a registry is redacted before it is shown.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import docker
import docker.errors
import requests

from buildtools import build as builder
from buildtools import buildinfo
from buildtools import credentials as creds
from buildtools.config import ReleaseConfig, Settings
from buildtools.errors import BuildToolsError
from buildtools.registry import (
    AuthError,
    CredentialsMissing,
    Registry,
    RegistryClient,
    RetryPolicy,
    TransientError,
    parse_registry,
    registry_versions,
)

# --- what may be released --------------------------------------------------------------------


def check_releasable(
    *,
    dirty: bool,
    pull_request: int | None,
    branch: str | None,
    tag: str | None,
    config: ReleaseConfig,
) -> None:
    """Refuse builds that must not be published, with the reason and what to do instead."""
    if dirty:
        raise BuildToolsError(
            "refusing to release: the working tree has uncommitted changes, so the images "
            "would not match any commit",
            "commit or stash the changes (git status shows them) and release again",
        )
    if pull_request is not None and not config.allow_pull_requests:
        raise BuildToolsError(
            f"refusing to release pull request #{pull_request}: its code is not reviewed yet",
            "release from the merged branch or a tag, or set "
            "buildtools.release.allow_pull_requests",
        )
    if tag or pull_request is not None:
        return
    if branch is None:
        raise BuildToolsError(
            "refusing to release: no branch or tag is known for this build (detached HEAD?)",
            "pass --branch or --tag, or run it in CI, which says what is built",
        )
    if branch not in config.branches:
        allowed = ", ".join(config.branches) or "(none)"
        raise BuildToolsError(
            f"refusing to release branch {branch!r}: release branches are {allowed}",
            "release from one of them or a tag, or add it to buildtools.release.branches",
        )


# --- registries ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One registry to release to, with its API client (and the credentials inside it)."""

    registry: Registry
    client: RegistryClient

    @property
    def name(self) -> str:
        return self.registry.name

    @property
    def auth_config(self) -> dict[str, str] | None:
        login = self.client.credentials
        return login.auth_config() if login else None


def targets(
    config: ReleaseConfig,
    env: Mapping[str, str],
    retry: RetryPolicy | None = None,
    on_retry: Callable[[str, int, float, str], None] | None = None,
) -> list[Target]:
    """The configured registries (none configured: Docker Hub) with credentials from ``env``."""
    retry = retry or retry_policy(config)
    found: list[Target] = []
    for entry in config.registries or ("docker.io",):
        registry = parse_registry(entry)
        if any(t.registry.name == registry.name for t in found):
            continue
        login = creds.for_registry(registry.name, env)
        found.append(Target(registry, RegistryClient(registry, login, retry, on_retry=on_retry)))
    return found


def retry_policy(config: ReleaseConfig) -> RetryPolicy:
    return RetryPolicy(
        retries=max(0, config.retries),
        base_delay=max(0.0, config.retry_base_delay),
        max_delay=max(0.0, config.retry_max_delay),
    )


def preflight(found: Sequence[Target], repositories: Sequence[str]) -> None:
    """Every registry answers and accepts our login (if it needs one), or one clear error.

    Missing credentials for several registries are reported together.
    """
    missing: list[CredentialsMissing] = []
    for target in found:
        try:
            target.client.check_access(repositories)
        except CredentialsMissing as exc:
            missing.append(exc)
    if len(missing) == 1:
        raise missing[0]
    if missing:
        names = ", ".join(m.registry for m in missing)
        fixes = "; ".join(m.fix for m in missing)
        raise BuildToolsError(f"registries {names} require a login and have no credentials", fixes)


def known_versions(found: Sequence[Target], repositories: Sequence[str]) -> list[str]:
    """Release versions already in any registry: pass them to the tag computation so that a
    backport (1.4.9 after 2.0.0) does not move ``latest``, ``1``… (see :mod:`buildtools.tags`).
    """
    return registry_versions([t.client for t in found], repositories)


# --- the plan --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReleaseImage:
    """A local image to release: its role (``app``/``nginx``), repository and image ID.

    ``image_id`` may be None for a dry run of images not built yet (every tag is then
    planned as a push).
    """

    name: str
    repository: str
    image_id: str | None


class TagLike(Protocol):
    name: str
    floating: bool
    protected: bool


def tag_pairs(tags: Iterable[TagLike | tuple[str, bool]]) -> list[tuple[str, bool]]:
    """ImageTag-like objects or ``(name, floating)`` pairs as pairs, immutable ones first."""
    pairs = [
        (t[0], bool(t[1])) if isinstance(t, tuple) else (t.name, bool(t.floating)) for t in tags
    ]
    seen: set[str] = set()
    unique = [p for p in pairs if not (p[0] in seen or seen.add(p[0]))]
    return sorted(unique, key=lambda p: p[1])


def protected_names(tags: Iterable[TagLike | tuple[str, bool]]) -> set[str]:
    """Tags that must never change content (exact releases); a ``(name, False)`` pair is one."""
    return {
        t[0] if isinstance(t, tuple) else t.name
        for t in tags
        if (not t[1] if isinstance(t, tuple) else t.protected)
    }


PUSH, UNCHANGED, OVERWRITE = "push", "unchanged", "overwrite"


@dataclass
class Push:
    """One tag of one image in one registry: what is there, what to do, what happened."""

    image: str
    image_id: str | None
    registry: str
    repository: str
    ref: str  # the repository as the engine names it, e.g. 127.0.0.1:5000/lara/app
    tag: str
    floating: bool
    action: str
    previous: str | None = None  # the tag's manifest digest before the release
    digest: str | None = None
    verified: bool = False
    attempts: int = 0
    bytes_pushed: int = 0

    @property
    def reference(self) -> str:
        return f"{self.ref}:{self.tag}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "registry": self.registry,
            "repository": self.repository,
            "reference": self.reference,
            "tag": self.tag,
            "floating": self.floating,
            "action": self.action,
            "previous_digest": self.previous,
            "digest": self.digest,
            "verified": self.verified,
            "attempts": self.attempts,
        }


def plan(
    images: Sequence[ReleaseImage],
    tags: Iterable[TagLike | tuple[str, bool]],
    found: Sequence[Target],
    *,
    force: bool = False,
) -> list[Push]:
    """Every push, immutable tags (all registries and images) before floating ones.

    Reads each tag's current manifest; refuses (unless ``force``) to overwrite a protected
    (exact release) tag that points at other content.
    """
    tags = list(tags)
    pairs = tag_pairs(tags)
    protected = protected_names(tags)
    if not pairs:
        raise BuildToolsError(
            "nothing to release: the tag policy gives this build no tags",
            "release a release branch or a tag (invoke version shows the tags)",
        )
    pushes: list[Push] = []
    conflicts: list[str] = []
    for floating in (False, True):
        for target in found:
            for image in images:
                for name, is_floating in pairs:
                    if is_floating != floating:
                        continue
                    there = target.client.manifest(image.repository, name)
                    action = PUSH
                    if (
                        there is not None
                        and image.image_id
                        and there.config_digest == image.image_id
                    ):
                        action = UNCHANGED
                    elif there is not None and not floating:
                        if name in protected:
                            conflicts.append(
                                f"{target.registry.push_name(image.repository)}:{name}"
                            )
                        action = OVERWRITE
                    pushes.append(
                        Push(
                            image=image.name,
                            image_id=image.image_id,
                            registry=target.name,
                            repository=image.repository,
                            ref=target.registry.push_name(image.repository),
                            tag=name,
                            floating=floating,
                            action=action,
                            previous=there.digest if there else None,
                            digest=there.digest if action == UNCHANGED else None,
                            verified=action == UNCHANGED,
                        )
                    )
    if conflicts and not force:
        raise BuildToolsError(
            f"refusing to overwrite release tags that already exist with other content: "
            f"{', '.join(conflicts)}",
            "release a new version; to replace them anyway, run again with --force",
        )
    return pushes


# --- pushing ---------------------------------------------------------------------------------

TRANSIENT, AUTH, PERMANENT = "transient", "auth", "permanent"

_PERMANENT = re.compile(
    r"denied|forbidden|manifest invalid|manifest unknown|name invalid|name unknown|tag invalid|"
    r"blob unknown|digest invalid|size invalid|unsupported|no space left|does not exist",
    re.IGNORECASE,
)
_AUTH = re.compile(
    r"unauthorized|authentication required|no basic auth credentials|incorrect username",
    re.IGNORECASE,
)
_TRANSIENT = re.compile(
    r"\b5\d\d\b|\b429\b|toomanyrequests|too many requests|connection refused|"
    r"connection reset|broken pipe|timeout|timed out|temporar|unavailable|bad gateway|\beof\b|"
    r"no such host|server misbehaving|network is unreachable|connection closed",
    re.IGNORECASE,
)


def classify(message: str) -> str:
    """Whether a push error is worth retrying: ``transient``, ``auth`` or ``permanent``.

    The messages are the Docker Engine's, e.g. ``received unexpected HTTP status: 503 Service
    Unavailable`` (transient) or ``denied: requested access to the resource is denied``
    (permanent). ``auth`` is decided by asking the registry (see :func:`execute`). Unknown
    errors are permanent: retrying them would only hide them longer.
    """
    if _AUTH.search(message):
        return AUTH
    if _PERMANENT.search(message):
        return PERMANENT
    if _TRANSIENT.search(message):
        return TRANSIENT
    return PERMANENT


class PushFailed(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def read_push_stream(
    lines: Iterable[Mapping[str, Any]],
    on_layer: Callable[[str, str, int, int], None] | None = None,
) -> str:
    """The pushed manifest digest from a decoded push stream; raises PushFailed on any error.

    docker-py never raises for registry errors: they arrive as ``errorDetail`` lines inside
    a successful HTTP response, so the stream must be read to its end.
    """
    digest = None
    for line in lines:
        if "errorDetail" in line or "error" in line:
            detail = line.get("errorDetail") or {}
            raise PushFailed(str(detail.get("message") or line.get("error") or "push failed"))
        aux = line.get("aux")
        if isinstance(aux, Mapping) and aux.get("Digest"):
            digest = str(aux["Digest"])
        if on_layer is not None and line.get("id"):
            progress = line.get("progressDetail") or {}
            on_layer(
                str(line["id"]),
                str(line.get("status", "")),
                int(progress.get("current") or 0),
                int(progress.get("total") or 0),
            )
    if digest is None:
        raise PushFailed("the push ended without reporting a digest (connection lost?)")
    return digest


class PushReporter(Protocol):
    def start(self, push: Push) -> None: ...
    def layer(self, push: Push, layer: str, status: str, current: int, total: int) -> None: ...
    def retry(self, what: str, attempt: int, delay: float, reason: str) -> None: ...
    def finish(self, push: Push) -> None: ...
    def close(self) -> None: ...


class QuietReporter:
    """No output (``--json``)."""

    def start(self, push: Push) -> None:
        pass

    def layer(self, push: Push, layer: str, status: str, current: int, total: int) -> None:
        pass

    def retry(self, what: str, attempt: int, delay: float, reason: str) -> None:
        pass

    def finish(self, push: Push) -> None:
        pass

    def close(self) -> None:
        pass


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


class LineReporter:
    """Plain progress lines on stderr: one per push, per layer state change, per retry.

    On a terminal, the bytes of the running push are shown with a rich progress bar.
    """

    def __init__(self, stream: Any = None, terminal: bool | None = None) -> None:
        from rich.console import Console

        self.console = Console(
            file=stream or sys.stderr, highlight=False, soft_wrap=True, force_terminal=terminal
        )
        self._layers: dict[str, tuple[str, int, int]] = {}
        self._progress: Any = None
        self._task: Any = None

    def start(self, push: Push) -> None:
        self._layers = {}
        self.console.print(f"pushing {push.reference}", markup=False)
        if self.console.is_terminal:
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

            self._progress = Progress(
                TextColumn("  {task.description}"),
                BarColumn(),
                DownloadColumn(),
                console=self.console,
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task(push.tag, total=None)

    def layer(self, push: Push, layer: str, status: str, current: int, total: int) -> None:
        before = self._layers.get(layer, ("", 0, 0))
        self._layers[layer] = (status, current or before[1], max(total, before[2]))
        if status != before[0] and status not in ("Pushing", "Preparing", "Waiting"):
            self.console.print(f"  {layer}: {status}", markup=False)
        if self._progress is not None:
            done = sum(c for _, c, _ in self._layers.values())
            total_bytes = sum(max(c, t) for _, c, t in self._layers.values())
            self._progress.update(self._task, completed=done, total=total_bytes or None)

    def retry(self, what: str, attempt: int, delay: float, reason: str) -> None:
        self.console.print(f"  {what}: retry {attempt} in {delay:.1f}s ({reason})", markup=False)

    def finish(self, push: Push) -> None:
        self._stop()
        sent = sum(c for status, c, _ in self._layers.values() if status == "Pushed")
        push.bytes_pushed = sent
        self.console.print(
            f"  {push.tag}: {push.digest} ({_size(sent)} sent, verified)", markup=False
        )

    def _stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def close(self) -> None:
        self._stop()


def _explain(message: str) -> str:
    lowered = message.lower()
    if "denied" in lowered or "forbidden" in lowered:
        return "give the user push access to the repository (or create it), then release again"
    if "unauthorized" in lowered:
        return "check the username and password or token for this registry"
    if "manifest" in lowered:
        return (
            "the registry rejected the image manifest; "
            "check that it accepts Docker v2 schema 2 or OCI images"
        )
    return "see the message; tags pushed so far stay, floating ones only move after all exact ones"


def _push_once(
    api: docker.APIClient,
    push: Push,
    target: Target,
    reporter: PushReporter,
    secrets: list[str],
    repositories: Sequence[str],
) -> str:
    push.attempts += 1
    try:
        stream = api.push(
            push.ref, tag=push.tag, stream=True, decode=True, auth_config=target.auth_config
        )
        return read_push_stream(
            stream, lambda layer, status, cur, tot: reporter.layer(push, layer, status, cur, tot)
        )
    except PushFailed as exc:
        message = creds.redact(exc.message, secrets)
    except docker.errors.APIError as exc:
        message = creds.redact(str(exc.explanation or exc), secrets)
    except requests.RequestException as exc:
        message = creds.redact(f"lost the Docker Engine connection: {exc}", secrets)
        raise TransientError(message) from None
    kind = classify(message)
    if kind == AUTH:
        # The engine asks /v2/ for the registry's auth challenge before it pushes; when that
        # one request fails (a 503 from a load balancer), it pushes without a login and
        # reports "unauthorized". Our own login check tells that apart from a bad password.
        target.client.check_access(repositories)  # raises AuthError if the login is refused
        raise TransientError(f"{message} (our login check passed: retrying)")
    if kind == TRANSIENT:
        raise TransientError(message)
    raise BuildToolsError(f"push of {push.reference} failed: {message}", _explain(message))


def execute(
    client: docker.DockerClient,
    pushes: Sequence[Push],
    found: Sequence[Target],
    *,
    retry: RetryPolicy,
    reporter: PushReporter | None = None,
) -> list[Push]:
    """Tag, push and verify every planned push in order (``unchanged`` ones are skipped).

    Registry-qualified local tags made for the pushes are removed again at the end.
    """
    reporter = reporter or QuietReporter()
    by_name = {t.name: t for t in found}
    secrets = [t.client.credentials.password for t in found if t.client.credentials]
    repositories = sorted({p.repository for p in pushes})
    made: list[str] = []
    done = 0
    try:
        for push in pushes:
            if push.action == UNCHANGED:
                done += 1
                continue
            if not push.image_id:
                raise BuildToolsError(f"no local image for {push.image}", "build it first")
            target = by_name[push.registry]
            if _tag_locally(client, push):
                made.append(push.reference)
            reporter.start(push)
            try:
                digest = retry.run(
                    lambda p=push, t=target: _push_once(
                        client.api, p, t, reporter, secrets, repositories
                    ),
                    f"push of {push.reference}",
                    lambda n, wait, why, p=push: reporter.retry(
                        f"push of {p.reference}", n, wait, why
                    ),
                    fix="check the registry's status; raise buildtools.release.retries "
                    "or retry_base_delay to wait longer",
                )
                served = target.client.digest(push.repository, push.tag)
                if served != digest:
                    raise BuildToolsError(
                        f"verification failed for {push.reference}: the push reported "
                        f"{digest} but the registry serves {served or 'nothing'}",
                        "check for another release pushing the same tag at the same time, "
                        "then release again",
                    )
                push.digest, push.verified = digest, True
            except BuildToolsError as exc:
                exc.problem = creds.redact(exc.problem, secrets) + _where(pushes, done, push)
                raise
            reporter.finish(push)
            done += 1
    finally:
        reporter.close()
        _untag(client, made)
    return list(pushes)


def _where(pushes: Sequence[Push], done: int, failed: Push) -> str:
    moved = "no floating tag was moved" if not failed.floating else "some floating tags moved"
    return f" (after {done} of {len(pushes)} tags; {moved})"


def _tag_locally(client: docker.DockerClient, push: Push) -> bool:
    """Point ``ref:tag`` at the image; True when that reference did not exist before."""
    try:
        existed = client.images.get(push.reference).id == push.image_id
    except docker.errors.ImageNotFound:
        existed = False
    if not existed:
        client.api.tag(push.image_id, push.ref, push.tag, force=True)
    return not existed


def _untag(client: docker.DockerClient, refs: Iterable[str]) -> None:
    for ref in refs:
        try:
            image = client.images.get(ref)
            if len(image.tags) > 1:  # never delete an image by removing its last name
                client.images.remove(ref, noprune=True)
        except docker.errors.APIError:
            pass  # cleanup only


# --- the whole release -----------------------------------------------------------------------


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
) -> ReleaseResult:
    """Check, plan, push and verify; with ``dry_run`` only check and plan (reads only)."""
    repositories = [image.repository for image in images]
    preflight(found, repositories)
    pushes = plan(images, tags, found, force=force)
    if dry_run:
        return ReleaseResult(pushes, dry_run=True)
    if client is None:
        raise BuildToolsError("no Docker Engine to push from", "start one")
    return ReleaseResult(execute(client, pushes, found, retry=retry, reporter=reporter), False)


# --- wiring to the build's metadata (used by the `release` task) -----------------------------


def repositories(settings: Settings) -> list[str]:
    return [settings.app.repository, settings.nginx.image.repository]


def prepare(
    settings: Settings,
    env: Mapping[str, str],
    overrides: buildinfo.Overrides | None = None,
    reporter: PushReporter | None = None,
) -> tuple[buildinfo.Metadata, list[Target]]:
    """Refuse unreleasable builds, check every registry, and compute the tags with the
    registries' release versions added to git's. Nothing is pushed or tagged.
    """
    meta = buildinfo.from_settings(settings, env, overrides)
    info = meta.info
    check_releasable(
        dirty=info.dirty,
        pull_request=info.pull_request,
        branch=info.branch,
        tag=info.tag,
        config=settings.release,
    )
    on_retry = reporter.retry if reporter is not None else None
    found = targets(settings.release, env, retry_policy(settings.release), on_retry)
    repos = repositories(settings)
    preflight(found, repos)
    versions = known_versions(found, repos)
    return buildinfo.from_settings(settings, env, overrides, known_versions=versions), found


REVISION_LABEL = "org.opencontainers.image.revision"


def local_images(
    client: docker.DockerClient, settings: Settings, meta: buildinfo.Metadata
) -> list[ReleaseImage]:
    """The app and nginx images built for exactly this commit (image_id None when missing).

    They are found by the first local tag ``invoke build`` gives them and must carry this
    commit in their revision label, so an image left from another commit is never released.
    """
    found = []
    for name, repository in (
        ("app", settings.app.repository),
        ("nginx", settings.nginx.image.repository),
    ):
        ref = builder.local_refs(repository, meta)[0]
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


__all__ = [
    "AuthError",
    "LineReporter",
    "Push",
    "PushReporter",
    "QuietReporter",
    "ReleaseImage",
    "ReleaseResult",
    "Target",
    "check_releasable",
    "classify",
    "execute",
    "known_versions",
    "plan",
    "preflight",
    "read_push_stream",
    "run",
    "targets",
]


def publish(
    client: docker.DockerClient,
    settings: Settings,
    meta: buildinfo.Metadata,
    found: Sequence[Target],
    *,
    force: bool = False,
    dry_run: bool = False,
    reporter: PushReporter | None = None,
    build_reporter: Any = None,
) -> ReleaseResult:
    """Release the images built for ``meta``, building them first when they are missing."""
    images = local_images(client, settings, meta)
    if not dry_run and any(image.image_id is None for image in images):
        builder.build_all(client, settings, meta, reporter=build_reporter)
        images = local_images(client, settings, meta)
    return run(
        client,
        images,
        meta.tags,
        found,
        retry=retry_policy(settings.release),
        force=force,
        dry_run=dry_run,
        reporter=reporter,
    )
