"""The HTTP edge to a registry's API v2: access check, tags, manifest digests, image labels.

The Docker Engine pushes; this client checks around the push what the engine cannot tell us:
whether the registry needs a login and accepts ours (before anything is pushed), which
release tags it already has (so a backport does not move ``latest``), and which manifest
each tag points at afterwards (so a reported digest is the one the registry serves).

Each request is authenticated by :mod:`buildtools.registry.auth` and retried by
:mod:`buildtools.registry.retry`; every error it raises has the password redacted.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Iterable, Sequence

import requests

from buildtools.config.registry_address import Registry
from buildtools.errors import BuildToolsError
from buildtools.facts.versions import ascending, semver_tags
from buildtools.plan.manifests import ACCEPT, Manifest, config_labels, parse_manifest
from buildtools.registry.auth import RegistryLogin, pull_scope, push_scope
from buildtools.registry.credentials import Credentials
from buildtools.registry.failures import AuthError, CredentialsMissing, RegistryError
from buildtools.registry.retry import RetryPolicy, network_failure, raise_if_transient

USER_AGENT = "lara-buildtools (registry API client)"
TAGS_PAGE = 100


class RegistryClient:
    """HTTP API v2 of one registry, with its credentials (None: anonymous)."""

    def __init__(
        self,
        registry: Registry,
        credentials: Credentials | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        on_retry: Callable[[str, int, float, str], None] | None = None,
    ) -> None:
        """``on_retry(what, attempt, delay, reason)`` is told before each wait."""
        self.registry = registry
        self.credentials = credentials
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.on_retry = on_retry
        self._session = requests.Session()
        self._session.headers["User-Agent"] = USER_AGENT
        # HTTP/1.1 defaults, sent by requests on every request: the connection is kept alive
        # and anything is accepted without them (a promotion makes two dozen requests).
        for default in ("Connection", "Accept"):
            self._session.headers.pop(default, None)
        self._login = RegistryLogin(registry, credentials, self._session, timeout)

    def __repr__(self) -> str:
        return f"RegistryClient({self.registry.name!r}, credentials={self.credentials!r})"

    # -- one request, authenticated and retried --

    def _send(
        self,
        method: str,
        path: str,
        scope: str,
        headers: dict[str, str],
        data: bytes | None = None,
    ) -> requests.Response:
        url = path if path.startswith(("http://", "https://")) else self.registry.url + path
        # Credentials only ever go to the registry itself, whatever a Link header points at.
        own = urllib.parse.urlsplit(url).netloc == self.registry.api_host
        for answered in (False, True):  # again once after answering an auth challenge
            try:
                resp = self._session.request(
                    method,
                    url,
                    headers={**headers, **(self._login.header(scope) if own else {})},
                    data=data,
                    timeout=self.timeout,
                    allow_redirects=True,
                )
            except requests.RequestException as exc:
                raise network_failure(exc) from None
            raise_if_transient(resp)
            challenge = resp.headers.get("WWW-Authenticate", "")
            if resp.status_code == 401 and not answered and self._login.answer(challenge, scope):
                continue
            break
        if resp.status_code == 401:
            raise self._login.refused()
        if resp.status_code == 403:
            who = f"user {self.credentials.username!r}" if self.credentials else "anonymous users"
            where = urllib.parse.urlsplit(url).path
            raise AuthError(
                f"registry {self.registry.name} denied {who} access ({method} {where})",
                "give that user push access to the repository",
            )
        return resp

    def request(
        self,
        method: str,
        path: str,
        scope: str = "",
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
    ) -> requests.Response:
        """One API request, authenticated and retried; 401/403 raise, other statuses return.

        ``data`` is sent whole with every attempt: only requests that may be repeated (a blob
        or manifest named by its digest, a fresh upload session) carry one."""
        url = path if path.startswith(("http://", "https://")) else self.registry.url + path
        what = f"{method} {url.split('?')[0]}"
        try:
            return self.retry.run(
                lambda: self._send(method, path, scope, headers or {}, data),
                f"registry {self.registry.name} is unreachable: {what}",
                self._notify(what),
            )
        except BuildToolsError as exc:
            raise exc.redact(self._login.secrets()) from None

    def _notify(self, what: str) -> Callable[[int, float, str], None] | None:
        if self.on_retry is None:
            return None
        report = self.on_retry
        return lambda attempt, delay, reason: report(what, attempt, delay, reason)

    # -- what the release needs --

    def _probe(self) -> requests.Response:
        """``GET /v2/`` without credentials: 200 (open) or 401 with the auth challenge."""

        def ping() -> requests.Response:
            try:
                resp = self._session.get(self.registry.url + "/v2/", timeout=self.timeout)
            except requests.RequestException as exc:
                raise network_failure(exc) from None
            raise_if_transient(resp)
            return resp

        what = f"GET {self.registry.url}/v2/"
        resp = self.retry.run(
            ping, f"registry {self.registry.name} is unreachable: {what}", self._notify(what)
        )
        if resp.status_code in (200, 401):
            return resp
        raise RegistryError(
            f"{self.registry.url}/v2/ answered HTTP {resp.status_code}: "
            "not a Docker registry (API v2)",
            "check the host and port in buildtools.release.registries",
        )

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
                found.extend(resp.json().get("tags") or [])
            except (ValueError, AttributeError):
                raise RegistryError(
                    f"registry {self.registry.name}: tags of {name} are not JSON",
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
        name = self.registry.api_name(repository)
        resp = self.request("GET", f"/v2/{name}/blobs/{manifest.config_digest}", pull_scope(name))
        self._expect(resp, 200, f"image config of {name}@{manifest.config_digest}")
        return config_labels(resp.content)

    def manifest_bytes(self, repository: str, reference: str) -> tuple[bytes, str] | None:
        """A manifest's exact bytes and its Content-Type, or None if there is none: promotion
        rewrites them, and the digest is the SHA-256 of these bytes."""
        resp = self._manifest_request("GET", repository, reference)
        if resp is None:
            return None
        return resp.content, resp.headers.get("Content-Type", "")

    def _manifest_request(
        self, method: str, repository: str, reference: str
    ) -> requests.Response | None:
        """A manifest's GET or HEAD, with every media type accepted; None when it is not there."""
        name = self.registry.api_name(repository)
        resp = self.request(
            method, f"/v2/{name}/manifests/{reference}", pull_scope(name), {"Accept": ACCEPT}
        )
        if resp.status_code == 404:
            return None
        self._expect(resp, 200, f"manifest {name}:{reference}")
        return resp

    def blob(self, repository: str, digest: str) -> bytes:
        """A blob's bytes (an image config: small)."""
        name = self.registry.api_name(repository)
        resp = self.request("GET", f"/v2/{name}/blobs/{digest}", pull_scope(name))
        self._expect(resp, 200, f"blob {name}@{digest}")
        return resp.content

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
        if digest:
            return digest
        found = self.manifest(repository, reference)
        return found.digest if found else None

    def _expect(self, resp: requests.Response, status: int, what: str) -> None:
        if resp.status_code != status:
            detail = _error_code(resp)
            raise RegistryError(
                f"registry {self.registry.name}: {what} answered HTTP {resp.status_code}{detail}",
                "check the repository name and the registry's status page",
            )


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


def _error_code(resp: requests.Response) -> str:
    """The registry's own error codes (``MANIFEST_INVALID``…), never its free text: short and
    free of anything a request carried."""
    try:
        errors = resp.json().get("errors") or []
        codes = sorted(
            {str(e.get("code")) for e in errors if isinstance(e, dict) and e.get("code")}
        )
    except (ValueError, AttributeError):
        return ""
    return f" ({', '.join(codes)})" if codes else ""
