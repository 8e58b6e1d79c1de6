"""The HTTP edge to a registry's API v2: access check, tags, manifest digests, image labels.

The Docker Engine pushes; this client checks around the push what the engine cannot tell us:
whether the registry needs a login and accepts ours (before anything is pushed), which
release tags it already has (so a backport does not move ``latest``), and which manifest
each tag points at afterwards (so a reported digest is the one the registry serves).

Each request is made by :mod:`buildtools.registry.session` (authenticated, retried,
credentials only to the configured origin, answers within size limits, the password
redacted). Nothing a registry serves is trusted: a manifest or blob asked for by digest must
hash to it, a tag's manifest to its ``Docker-Content-Digest``, and JSON must have the
shape :mod:`buildtools.plan.shapes` expects.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable, Sequence
from pathlib import Path

from buildtools.errors import BuildToolsError
from buildtools.facts.versions import ascending, semver_tags
from buildtools.plan import shapes
from buildtools.plan.manifests import ACCEPT, Manifest, config_labels, parse_manifest
from buildtools.registry import checks
from buildtools.registry.auth import pull_scope, push_scope
from buildtools.registry.failures import AuthError, CredentialsMissing, RegistryError
from buildtools.registry.session import RegistrySession
from buildtools.registry.transport import (
    CONFIG_LIMIT,
    MANIFEST_LIMIT,
    Answer,
)

# Tags per page of a tag list: 1,000 is the most ECR and docker-registry 3.1 (its default
# ``maxtags``) accept without a 400; a registry that serves fewer pages on with ``Link``.
TAGS_PAGE = 1000
# A digest no manifest has: deleting it asks whether the registry deletes at all.
NO_MANIFEST = "sha256:" + "0" * 64


def delete_scope(api_name: str) -> str:
    return f"repository:{api_name}:pull,push,delete"


class DeletesRefused(RegistryError):
    """The registry does not delete manifests through the registry API."""

    def __init__(self, registry: str, answer: str) -> None:
        self.registry = registry
        super().__init__(
            f"registry {registry} refuses deletes ({answer}): nothing was deleted",
            DELETE_ELSEWHERE.get(registry, DELETE_ELSEWHERE[""]),
        )


# What to use where the registry API does not delete.
DELETE_ELSEWHERE = {
    "docker.io": "delete tags on hub.docker.com (Repository > Tags) or with Docker Hub's own API",
    "ghcr.io": "delete package versions in GitHub (the package's settings, or the REST API / "
    "actions/delete-package-versions)",
    "": "set storage.delete.enabled: true in the registry's config and restart it, or leave "
    "this registry out (INVOKE_BUILDTOOLS_RELEASE_REGISTRIES)",
}


class RegistryClient(RegistrySession):
    """HTTP API v2 of one registry, with its credentials (None: anonymous)."""

    def check_access(self, repositories: Sequence[str]) -> None:
        """Fail now, before any push, if we cannot log in or may not push to ``repositories``.

        Raises :class:`CredentialsMissing`, :class:`AuthError` or :class:`Unreachable`.
        """
        probe = self._probe()
        if probe.status_code == 200:
            return
        if self.credentials is None:
            raise CredentialsMissing(self.registry.name)
        self._login.reset()
        names = [self.registry.api_name(r) for r in repositories]
        scope = push_scope(names)
        # Answer the probe's challenge at once, so the login costs one more request, not two.
        challenge = probe.headers.get("WWW-Authenticate", "")
        what = f"login to {self.registry.url}"
        try:
            self.retry.run(
                lambda: self._login.answer(challenge, scope),
                f"registry {self.registry.name} is unreachable: {what}",
                self._notify(what),
            )
        except BuildToolsError as exc:
            raise exc.redact(self._login.secrets()) from None
        resp = self.request("GET", "/v2/", scope)
        if resp.status_code != 200:
            raise RegistryError(
                f"{self.registry.url}/v2/ answered HTTP {resp.status_code} after login",
                "check the registry's status page",
            )
        access = self._login.granted(scope)
        if access is None:
            return  # Basic auth, or an opaque token: the push itself will tell
        for name in names:
            granted = {
                action
                for entry in access
                if entry.get("type") == "repository" and entry.get("name") == name
                for action in entry.get("actions", [])
            }
            if "push" not in granted:
                raise AuthError(
                    f"registry {self.registry.name} does not let user "
                    f"{self.credentials.username!r} push to {name}",
                    "give that user (or token) push access to the repository, or create it",
                )

    def tags(self, repository: str) -> list[str]:
        """Every tag of ``repository`` (all pages); an unknown repository has none."""
        name = self.registry.api_name(repository)
        scope = pull_scope(name)
        url = f"{self.registry.url}/v2/{name}/tags/list?n={TAGS_PAGE}"
        found: list[str] = []
        for _ in range(10_000):  # pages; a bound against a registry that links in circles
            resp = self.request("GET", url, scope)
            if resp.status_code == 404:
                return found
            self._expect(resp, 200, f"tags of {name}")
            try:
                found.extend(shapes.tag_list(shapes.load(resp.content, "tag list")))
            except shapes.BadDocument as exc:
                raise RegistryError(
                    f"registry {self.registry.name}: tags of {name}: {exc}",
                    "check the registry's status page",
                ) from None
            following = resp.links.get("next", {}).get("url")
            if not following:
                break
            url = urllib.parse.urljoin(url, following)
        return found

    def manifest(self, repository: str, reference: str) -> Manifest | None:
        """The manifest a tag (or digest) points at, or None if there is none."""
        found = self.manifest_bytes(repository, reference)
        return None if found is None else parse_manifest(*found)

    def image_labels(self, repository: str, manifest: Manifest) -> dict[str, str]:
        """The labels in an image's config blob (empty for indexes or a config without any)."""
        if not manifest.config_digest:
            return {}
        return config_labels(self.config(repository, manifest.config_digest))

    def manifest_bytes(self, repository: str, reference: str) -> tuple[bytes, str] | None:
        """A manifest's exact bytes and its Content-Type, or None if there is none: promotion
        rewrites them, and the digest is the SHA-256 of these bytes. At most 4 MiB, checked
        against the digest asked for (or the tag's ``Docker-Content-Digest``) and for the
        shape of every field the tools read."""
        resp = self._manifest_request("GET", repository, reference)
        if resp is None:
            return None
        what = checks.subject("manifest", self.registry.api_name(repository), reference)
        served = resp.headers.get("Docker-Content-Digest", "")
        expected = reference if shapes.is_digest(reference) else served
        checks.check_digest(self.registry.name, resp.content, expected, what)
        checks.check_shape(self.registry.name, resp.content, shapes.manifest_problem, what)
        return resp.content, resp.headers.get("Content-Type", "")

    def _manifest_request(self, method: str, repository: str, reference: str) -> Answer | None:
        """A manifest's GET or HEAD, with every media type accepted; None when it is not there."""
        name = self.registry.api_name(repository)
        checks.check_reference(self.registry.name, name, reference, "manifest")
        resp = self.request(
            method,
            f"/v2/{name}/manifests/{reference}",
            pull_scope(name),
            {"Accept": ACCEPT},
            limit=MANIFEST_LIMIT,
            subject=checks.subject("manifest", name, reference),
        )
        if resp.status_code == 404:
            return None
        self._expect(resp, 200, f"manifest {name}:{reference}")
        return resp

    def blob(self, repository: str, digest: str, limit: int = CONFIG_LIMIT) -> bytes:
        """A small blob's bytes (an image config: at most 8 MiB), checked against ``digest``."""
        name = self.registry.api_name(repository)
        checks.check_reference(self.registry.name, name, digest, "blob")
        what = checks.subject("blob", name, digest)
        resp = self.request(
            "GET", f"/v2/{name}/blobs/{digest}", pull_scope(name), limit=limit, subject=what
        )
        self._expect(resp, 200, what)
        checks.check_digest(self.registry.name, resp.content, digest, what)
        return resp.content

    def config(self, repository: str, digest: str) -> bytes:
        """An image config blob, checked against its digest and for the shape of its fields."""
        body = self.blob(repository, digest)
        what = checks.subject("config", self.registry.api_name(repository), digest)
        checks.check_shape(self.registry.name, body, shapes.config_problem, what)
        return body

    def copy_blob(self, repository: str, digest: str, dest: Path) -> int:
        """A blob of any size (a layer) streamed into ``dest``, never held in memory, and
        hashed as it streams; the bytes written. One that does not match ``digest`` is removed
        and named in the error."""
        name = self.registry.api_name(repository)
        checks.check_reference(self.registry.name, name, digest, "blob")
        what = checks.subject("blob", name, digest)
        into = checks.DigestFile(dest, digest)
        try:
            resp = self.request(
                "GET", f"/v2/{name}/blobs/{digest}", pull_scope(name), subject=what, sink=into.start
            )
        finally:
            into.close()
        self._expect(resp, 200, what)
        if into.actual != digest:
            dest.unlink(missing_ok=True)
            raise checks.mismatch(self.registry.name, what, into.actual, digest)
        return into.size

    def has_blob(self, repository: str, digest: str) -> bool:
        """Whether the repository holds the blob already (then it is not sent again)."""
        name = self.registry.api_name(repository)
        resp = self.request("HEAD", f"/v2/{name}/blobs/{digest}", push_scope([name]))
        if resp.status_code == 404:
            return False
        self._expect(resp, 200, f"blob {name}@{digest}")
        return True

    def put_blob(self, repository: str, digest: str, data: bytes, *, ask_first: bool = True) -> int:
        """Upload a blob in one piece (POST an upload, PUT its bytes with the digest) unless the
        repository has it; the bytes sent (0 when it was there). Repeating it is harmless: the
        registry names what it stores by the digest it checks. ``ask_first=False`` skips the
        HEAD that asks: for a blob just made, which the registry holds only on a re-run."""
        if ask_first and self.has_blob(repository, digest):
            return 0
        name = self.registry.api_name(repository)
        scope = push_scope([name])
        started = self.request("POST", f"/v2/{name}/blobs/uploads/", scope)
        self._expect(started, 202, f"blob upload to {name}")
        location = started.headers.get("Location", "")
        if not location:
            raise RegistryError(
                f"registry {self.registry.name}: blob upload to {name} gave no Location",
                "check the registry's status page",
            )
        url = urllib.parse.urljoin(self.registry.url + "/", location)
        joiner = "&" if "?" in url else "?"
        put = self.request(
            "PUT",
            f"{url}{joiner}digest={urllib.parse.quote(digest)}",
            scope,
            {"Content-Type": "application/octet-stream"},
            data,
        )
        if put.status_code != 201 and self.has_blob(repository, digest):
            # A retried PUT whose first attempt the registry had stored (the answer was lost):
            # the upload session is gone, the blob is there.
            return len(data)
        self._expect(put, 201, f"blob {name}@{digest}")
        return len(data)

    def put_manifest(self, repository: str, reference: str, body: bytes, media_type: str) -> str:
        """Put a manifest under a tag (Content-Type: its own media type); the digest the
        registry names it by (its header, else the SHA-256 of the bytes)."""
        answer = self.put_manifest_answer(repository, reference, body, media_type)
        return answer or parse_manifest(body).digest

    def put_manifest_answer(
        self, repository: str, reference: str, body: bytes, media_type: str
    ) -> str | None:
        """Put a manifest under a tag; the digest the registry's answer names it by
        (``Docker-Content-Digest``), None when it names none."""
        name = self.registry.api_name(repository)
        resp = self.request(
            "PUT",
            f"/v2/{name}/manifests/{reference}",
            push_scope([name]),
            {"Content-Type": media_type},
            body,
        )
        self._expect(resp, 201, f"manifest {name}:{reference}")
        return resp.headers.get("Docker-Content-Digest") or None

    def digest(self, repository: str, reference: str) -> str | None:
        """The manifest digest of a tag, by HEAD (GET if the registry sends no digest)."""
        resp = self._manifest_request("HEAD", repository, reference)
        if resp is None:
            return None
        digest = resp.headers.get("Docker-Content-Digest")
        if digest and shapes.is_digest(reference) and digest != reference:
            raise RegistryError(
                f"registry {self.registry.name} names manifest "
                f"{self.registry.api_name(repository)}@{reference} {digest}",
                "something between here and the registry alters what it serves: check the "
                "registry and any proxy in front of it",
            )
        if digest:
            return digest
        found = self.manifest(repository, reference)
        return found.digest if found else None

    def delete_manifest(self, repository: str, digest: str) -> bool:
        """``DELETE …/manifests/<digest>``: the manifest and every tag on it go. False when it
        was already gone (a re-run after an interrupted one); :class:`DeletesRefused` when the
        registry does not delete through this API."""
        name = self.registry.api_name(repository)
        checks.check_reference(self.registry.name, name, digest, "manifest")
        if not shapes.is_digest(digest):
            raise RegistryError(f"not a digest: {digest[:80]!r}", "delete manifests by digest")
        if self.registry.is_hub:
            raise DeletesRefused(self.registry.name, "Docker Hub deletes only through its own API")
        resp = self.request("DELETE", f"/v2/{name}/manifests/{digest}", delete_scope(name))
        if resp.status_code == 405 or "UNSUPPORTED" in checks.error_code(resp):
            raise DeletesRefused(self.registry.name, f"HTTP {resp.status_code}")
        if resp.status_code == 404:
            return False
        self._expect(resp, 202, f"delete of {name}@{digest}")
        return True

    def check_deletes(self, repository: str) -> None:
        """Whether the registry deletes manifests, asked without deleting anything: a DELETE of
        a digest no manifest has answers 404 where deletes work, 405 (``UNSUPPORTED``) where
        the registry has them switched off."""
        self.delete_manifest(repository, NO_MANIFEST)


def registry_versions(clients: Iterable[RegistryClient], repositories: Iterable[str]) -> list[str]:
    """Release versions already in any of the registries, for the tag computation.

    A backport (1.4.9 after 2.0.0 was released) must not move ``latest``, ``1``... even when
    git's view is partial (shallow clones, a CI that fetched one tag).
    """
    repos = list(repositories)
    versions: set[str] = set()
    for client in clients:
        for repository in repos:
            versions.update(semver_tags(client.tags(repository)))
    return ascending(versions)
