"""The engine edge of a release: push one tag through the Docker Engine and read its stream.

:class:`Pusher` is the small interface the release needs (one attempt at one push, then
cleanup), so another pusher (e.g. copying manifests registry-side) can slot in beside
:class:`EnginePusher`. Retries and verification stay in :mod:`buildtools.release.publish`.

docker-py never raises for registry errors: they arrive as ``errorDetail`` lines inside a
successful HTTP response, so the stream is read to its end and every error is classified.
Credentials go to the engine only as each push's ``auth_config``; every message that comes
back is redacted before it is shown.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import docker
import docker.errors
import requests

from buildtools.errors import BuildToolsError
from buildtools.plan.push_order import Push
from buildtools.registry.credentials import redact
from buildtools.registry.failures import TransientError
from buildtools.registry.targets import Target

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

# (layer id, status, bytes done, bytes in all), as the engine reports a push's progress.
LayerCallback = Callable[[str, str, int, int], None]


def classify(message: str) -> str:
    """Whether a push error is worth retrying: ``transient``, ``auth`` or ``permanent``.

    The messages are the Docker Engine's, e.g. ``received unexpected HTTP status: 503 Service
    Unavailable`` (transient) or ``denied: requested access to the resource is denied``
    (permanent). ``auth`` is decided by asking the registry (see :meth:`EnginePusher.push`).
    Unknown errors are permanent: retrying them would only hide them longer.
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
    lines: Iterable[Mapping[str, Any]], on_layer: LayerCallback | None = None
) -> str:
    """The pushed manifest digest from a decoded push stream; raises PushFailed on any error."""
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


def explain(message: str) -> str:
    """The fix for a permanent push error."""
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


class Pusher(Protocol):
    """Pushes one planned tag once: returns the manifest digest the registry accepted, raises
    ``TransientError`` for a failure worth retrying and ``BuildToolsError`` for any other."""

    def push(self, push: Push, target: Target, on_layer: LayerCallback) -> str: ...

    def fetch(self, ref: str, tag: str, target: Target) -> str:
        """Make the registry's content of ``ref:tag`` the local source; its image ID."""
        ...

    def close(self) -> None: ...


class EnginePusher:
    """Pushes local images through the Docker Engine, tagging them ``registry/repo:tag`` first
    and removing the tags it made when closed."""

    def __init__(
        self,
        client: docker.DockerClient,
        secrets: Sequence[str] = (),
        repositories: Sequence[str] = (),
    ) -> None:
        self.client = client
        self.secrets = list(secrets)
        self.repositories = list(repositories)
        # References this pusher pointed somewhere, with the image each held before (or None).
        self._made: list[tuple[str, str | None]] = []

    def push(self, push: Push, target: Target, on_layer: LayerCallback) -> str:
        if not push.image_id:
            raise BuildToolsError(f"no local image for {push.image}", "build it first")
        self._tag_locally(push)
        try:
            stream = self.client.api.push(
                push.ref, tag=push.tag, stream=True, decode=True, auth_config=target.auth_config
            )
            return read_push_stream(stream, on_layer)
        except PushFailed as exc:
            message = redact(exc.message, self.secrets)
        except docker.errors.APIError as exc:
            message = redact(str(exc.explanation or exc), self.secrets)
        except requests.RequestException as exc:
            message = redact(f"lost the Docker Engine connection: {exc}", self.secrets)
            raise TransientError(message) from None
        kind = classify(message)
        if kind == AUTH:
            # The engine asks /v2/ for the registry's auth challenge before it pushes; when that
            # one request fails (a 503 from a load balancer), it pushes without a login and
            # reports "unauthorized". Our own login check tells that apart from a bad password.
            target.client.check_access(self.repositories)  # AuthError if the login is refused
            raise TransientError(f"{message} (our login check passed: retrying)")
        if kind == TRANSIENT:
            raise TransientError(message)
        raise BuildToolsError(f"push of {push.reference} failed: {message}", explain(message))

    def _tag_locally(self, push: Push) -> None:
        """Point ``ref:tag`` at the image, remembering what it held (e.g. a pulled cache
        source) so that :meth:`close` puts it back."""
        if any(ref == push.reference for ref, _ in self._made):
            return  # a retry of this push: tagged already
        try:
            before: str | None = self.client.images.get(push.reference).id
        except docker.errors.ImageNotFound:
            before = None
        if before == push.image_id:
            return
        try:
            self.client.api.tag(push.image_id, push.ref, push.tag, force=True)
        except docker.errors.NotFound:
            raise BuildToolsError(
                f"the local {push.image} image {push.image_id[:19]} is gone "
                "(removed during the release?)",
                "run the release again: it finishes what is missing",
            ) from None
        self._made.append((push.reference, before))

    def fetch(self, ref: str, tag: str, target: Target) -> str:
        """Pull what ``ref:tag`` holds in the registry; the local image ID."""
        try:
            image = self.client.images.pull(ref, tag=tag, auth_config=target.auth_config)
        except (docker.errors.APIError, requests.RequestException) as exc:
            message = redact(str(getattr(exc, "explanation", None) or exc), self.secrets)
            raise BuildToolsError(
                f"could not pull {ref}:{tag} to finish its release: {message}",
                "check the registry, then release again",
            ) from None
        self._made.append((f"{ref}:{tag}", None))
        return image.id

    def close(self) -> None:
        """Undo the registry-qualified tags this pusher made: a reference that held another
        image points at it again; a new one is removed (never an image's last name)."""
        for ref, before in reversed(self._made):
            repository, _, tag = ref.rpartition(":")
            try:
                if before is not None:
                    self.client.api.tag(before, repository, tag, force=True)
                    continue
                image = self.client.images.get(ref)
                if len(image.tags) > 1:
                    self.client.images.remove(ref, noprune=True)
            except docker.errors.APIError:
                pass  # cleanup only
        self._made.clear()
