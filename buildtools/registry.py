"""A small client for a registry's HTTP API v2: access check, tags, manifest digests, retries.

The Docker Engine pushes; this client checks around the push what the engine cannot tell us:
whether the registry needs a login and accepts ours (before anything is pushed), which
release tags it already has (so a backport does not move ``latest``), and which manifest
each tag points at afterwards (so a reported digest is the one the registry serves).

Authentication follows the registry's ``WWW-Authenticate`` challenge: ``Basic`` (htpasswd,
most self-hosted registries) or ``Bearer`` (Docker Hub, GHCR, GitLab: a token from the
challenge's realm, fetched with the credentials and a repository scope).

Transient failures (connection refused or reset, timeouts, HTTP 5xx and 429) are retried
with exponential backoff and jitter, bounded by :class:`RetryPolicy`; authentication and
permission failures are not.

Manifests are asked for with every modern media type in ``Accept`` (Docker schema 2 and OCI,
images and indexes). Without them a registry may convert to the old schema 1, whose digest
is not the pushed one.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import random
import re
import time
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import requests

from buildtools.credentials import Credentials, variable_names
from buildtools.errors import BuildToolsError
from buildtools.versions import ascending, semver_tags

DOCKER_HUB = "docker.io"
HUB_API_HOST = "registry-1.docker.io"
_HUB_ALIASES = {
    "",
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "registry.hub.docker.com",
}

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST_TYPES = (DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_MANIFEST, OCI_INDEX)
ACCEPT = ", ".join(MANIFEST_TYPES)

USER_AGENT = "lara-buildtools (registry API client)"
TAGS_PAGE = 100

T = TypeVar("T")


class RegistryError(BuildToolsError):
    """A registry answered something we cannot use."""


class AuthError(RegistryError):
    """The registry refused our credentials or our access: never retried."""


class CredentialsMissing(AuthError):
    """The registry needs a login and no credentials are set for it."""

    def __init__(self, registry: str) -> None:
        user_var, pass_var = variable_names(registry)
        self.registry = registry
        super().__init__(
            f"registry {registry} requires a login and no credentials are set for it",
            f"set {user_var} and {pass_var} (or DOCKER_USERNAME and DOCKER_PASSWORD)",
        )


class Unreachable(RegistryError):
    """Transient failures went on after every retry."""


class TransientError(Exception):
    """One failed attempt that may succeed later; ``retry_after`` from the registry if given."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


# --- where a registry is ---------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Registry:
    """One configured registry.

    ``name`` is what users see and what credentials are keyed by (``docker.io`` for Docker
    Hub, else ``host[:port]``); ``api_host`` is where its HTTP API answers.
    """

    name: str
    api_host: str
    scheme: str = "https"

    @property
    def is_hub(self) -> bool:
        return self.name == DOCKER_HUB

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.api_host}"

    def push_name(self, repository: str) -> str:
        """The repository as the Docker Engine names it for a push (``host/repo``)."""
        return repository if self.is_hub else f"{self.name}/{repository}"

    def api_name(self, repository: str) -> str:
        """The repository in API paths (Docker Hub's official images live in ``library/``)."""
        if self.is_hub and "/" not in repository:
            return f"library/{repository}"
        return repository


def parse_registry(entry: str) -> Registry:
    """A config entry (``host[:port]``, optionally ``http://``/``https://``) as a Registry.

    Empty or ``docker.io`` means Docker Hub. Loopback hosts are spoken to over plain HTTP,
    as the Docker Engine does; ``http://`` forces it for other hosts (which the engine must
    then list in its ``insecure-registries``).
    """
    text = entry.strip()
    scheme = None
    for prefix in ("http://", "https://"):
        if text.lower().startswith(prefix):
            scheme, text = prefix[:-3], text[len(prefix) :]
    text = text.rstrip("/")
    if "/" in text or any(ch.isspace() for ch in text) or "@" in text:
        raise BuildToolsError(
            f"registry {entry!r} is not a host[:port]",
            "list registries as host[:port] in buildtools.release.registries, "
            "e.g. ghcr.io,registry.example.org:5000 (the repository is configured per image)",
        )
    if text.lower() in _HUB_ALIASES:
        return Registry(DOCKER_HUB, HUB_API_HOST, "https")
    host = text.lower()
    return Registry(host, host, scheme or ("http" if _is_loopback(host) else "https"))


# --- retries ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: retry ``n`` waits between half and all of
    ``min(max_delay, base_delay * 2**n)``, or the registry's ``Retry-After`` if longer (but
    never more than ``max_delay``). ``retries`` counts the attempts after the first.
    """

    retries: int = 5
    base_delay: float = 1.0
    max_delay: float = 30.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)
    random: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        ceiling = min(self.max_delay, self.base_delay * (2**retry))
        wait = ceiling / 2 + ceiling / 2 * self.random()
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_delay))
        return wait

    def run(
        self,
        action: Callable[[], T],
        what: str,
        on_retry: Callable[[int, float, str], None] | None = None,
        fix: str = "check that the registry is up and reachable from here; "
        "buildtools.release.retries sets how often to retry",
    ) -> T:
        """``action()``, retried on :class:`TransientError`; :class:`Unreachable` at the end."""
        for attempt in range(self.retries + 1):
            try:
                return action()
            except TransientError as exc:
                if attempt >= self.retries:
                    tries = "once" if attempt == 0 else f"{attempt + 1} times"
                    raise Unreachable(f"{what} failed {tries}, last: {exc.reason}", fix) from None
                wait = self.delay(attempt, exc.retry_after)
                if on_retry is not None:
                    on_retry(attempt + 1, wait, exc.reason)
                self.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After", "").strip()
    return float(value) if value.isdigit() else None


_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")


def _network_reason(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.Timeout):
        return "timed out"
    found = _ERRNO.search(str(exc))
    if found:
        return found.group(1).strip().lower()
    for words in ("connection reset", "connection aborted", "remote end closed", "refused"):
        if words in str(exc).lower():
            return words
    return type(exc).__name__


# --- authentication --------------------------------------------------------------------------

_CHALLENGE_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^\s,]+))')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="…",service="…"`` → ``("bearer", {"realm": …, "service": …})``."""
    scheme, _, rest = header.strip().partition(" ")
    params = {
        m.group(1).lower(): m.group(2) or m.group(3) or "" for m in _CHALLENGE_PARAM.finditer(rest)
    }
    return scheme.lower(), params


def _token_access(token: str) -> list[dict] | None:
    """The ``access`` claim of a JWT bearer token (read, not verified: the registry does that)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, TypeError):
        return None
    access = payload.get("access") if isinstance(payload, dict) else None
    return access if isinstance(access, list) else None


def push_scope(api_names: Iterable[str]) -> str:
    return " ".join(f"repository:{name}:pull,push" for name in api_names)


def pull_scope(api_name: str) -> str:
    return f"repository:{api_name}:pull"


def _scope_entries(scope: str) -> dict[tuple[str, str], set[str]]:
    entries: dict[tuple[str, str], set[str]] = {}
    for item in scope.split():
        kind, _, rest = item.partition(":")
        name, _, actions = rest.rpartition(":")
        entries.setdefault((kind, name), set()).update(a for a in actions.split(",") if a)
    return entries


def scope_covers(have: str, want: str) -> bool:
    """Whether a token for scope ``have`` grants every action of ``want``: the push token of
    the preflight also reads tags and manifests, so no token is fetched twice."""
    granted = _scope_entries(have)
    needed = _scope_entries(want)
    return bool(needed) and all(acts <= granted.get(key, set()) for key, acts in needed.items())


@dataclass(frozen=True)
class Manifest:
    digest: str
    media_type: str
    config_digest: str | None  # the image ID for single-platform images; None for indexes
    size: int


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
        self._basic = False
        self._tokens: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"RegistryClient({self.registry.name!r}, credentials={self.credentials!r})"

    # -- one request, authenticated and retried --

    def _auth_header(self, scope: str) -> dict[str, str]:
        if self._basic and self.credentials is not None:
            raw = f"{self.credentials.username}:{self.credentials.password}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        token = self._tokens.get(scope) or next(
            (t for have, t in self._tokens.items() if scope_covers(have, scope)), None
        )
        return {"Authorization": f"Bearer {token}"} if token else {}

    def _secrets(self) -> list[str]:
        return [self.credentials.password] if self.credentials else []

    def _wrong_credentials(self) -> AuthError:
        creds = self.credentials
        assert creds is not None
        return AuthError(
            f"registry {self.registry.name} rejected the login of user {creds.username!r} "
            f"(from {creds.source})",
            "check the username and the password or access token in those variables",
        )

    def _fetch_token(self, params: dict[str, str], scope: str) -> str:
        realm = params.get("realm")
        if not realm:
            raise RegistryError(
                f"registry {self.registry.name} asked for a bearer token without a realm",
                "report this registry's WWW-Authenticate header",
            )
        query: list[tuple[str, str]] = []
        if params.get("service"):
            query.append(("service", params["service"]))
        query.extend(("scope", s) for s in (scope or params.get("scope", "")).split() if s)
        auth = (self.credentials.username, self.credentials.password) if self.credentials else None
        try:
            resp = self._session.get(realm, params=query, auth=auth, timeout=self.timeout)
        except requests.RequestException as exc:
            raise TransientError(f"token request: {_network_reason(exc)}") from None
        if resp.status_code == 429 or resp.status_code >= 500:
            raise TransientError(f"token request: HTTP {resp.status_code}", _retry_after(resp))
        if resp.status_code in (401, 403) and self.credentials is not None:
            raise self._wrong_credentials()
        if resp.status_code != 200:
            raise RegistryError(
                f"registry {self.registry.name}: token request answered HTTP {resp.status_code}",
                "check the registry's status page",
            )
        try:
            body = resp.json()
            return str(body.get("token") or body["access_token"])
        except (ValueError, KeyError, AttributeError):
            raise RegistryError(
                f"registry {self.registry.name}: token response has no token",
                "check the registry's status page",
            ) from None

    def _authenticate(self, resp: requests.Response, scope: str) -> bool:
        """Answer a 401 challenge (a fresh token for bearer); True if worth sending again."""
        scheme, params = parse_challenge(resp.headers.get("WWW-Authenticate", ""))
        if scheme == "basic":
            if self.credentials is None:
                raise CredentialsMissing(self.registry.name)
            self._basic = True
            return True
        if scheme == "bearer":
            self._tokens[scope] = self._fetch_token(params, scope)
            return True
        return False

    def _send(
        self,
        method: str,
        path: str,
        scope: str,
        headers: dict[str, str],
    ) -> requests.Response:
        url = path if path.startswith(("http://", "https://")) else self.registry.url + path
        # Credentials only ever go to the registry itself, whatever a Link header points at.
        own = urllib.parse.urlsplit(url).netloc == self.registry.api_host
        for answered in (False, True):  # again once after answering an auth challenge
            try:
                resp = self._session.request(
                    method,
                    url,
                    headers={**headers, **(self._auth_header(scope) if own else {})},
                    timeout=self.timeout,
                    allow_redirects=True,
                )
            except requests.RequestException as exc:
                raise TransientError(_network_reason(exc)) from None
            if resp.status_code == 429 or resp.status_code >= 500:
                raise TransientError(f"HTTP {resp.status_code}", _retry_after(resp))
            if resp.status_code == 401 and not answered and self._authenticate(resp, scope):
                continue
            break
        if resp.status_code == 401:
            if self.credentials is None:
                raise CredentialsMissing(self.registry.name)
            raise self._wrong_credentials()
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
    ) -> requests.Response:
        """One API request, authenticated and retried; 401/403 raise, other statuses return."""
        url = path if path.startswith(("http://", "https://")) else self.registry.url + path
        what = f"{method} {url.split('?')[0]}"
        try:
            return self.retry.run(
                lambda: self._send(method, path, scope, headers or {}),
                f"registry {self.registry.name} is unreachable: {what}",
                self._notify(what),
            )
        except BuildToolsError as exc:
            raise exc.redact(self._secrets()) from None

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
                raise TransientError(_network_reason(exc)) from None
            if resp.status_code == 429 or resp.status_code >= 500:
                raise TransientError(f"HTTP {resp.status_code}", _retry_after(resp))
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
        self._basic = False
        self._tokens.clear()
        names = [self.registry.api_name(r) for r in repositories]
        scope = push_scope(names)
        # Answer the probe's challenge at once, so the login costs one more request, not two.
        what = f"login to {self.registry.url}"
        try:
            self.retry.run(
                lambda: self._authenticate(probe, scope),
                f"registry {self.registry.name} is unreachable: {what}",
                self._notify(what),
            )
        except BuildToolsError as exc:
            raise exc.redact(self._secrets()) from None
        resp = self.request("GET", "/v2/", scope)
        if resp.status_code != 200:
            raise RegistryError(
                f"{self.registry.url}/v2/ answered HTTP {resp.status_code} after login",
                "check the registry's status page",
            )
        access = _token_access(self._tokens[scope]) if scope in self._tokens else None
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
        name = self.registry.api_name(repository)
        resp = self.request(
            "GET", f"/v2/{name}/manifests/{reference}", pull_scope(name), {"Accept": ACCEPT}
        )
        if resp.status_code == 404:
            return None
        self._expect(resp, 200, f"manifest {name}:{reference}")
        body = resp.content
        media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        config = None
        try:
            parsed = json.loads(body)
            media_type = parsed.get("mediaType") or media_type
            config = (parsed.get("config") or {}).get("digest")
        except (ValueError, AttributeError):
            pass
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        return Manifest(digest, media_type, config, len(body))

    def image_labels(self, repository: str, manifest: Manifest) -> dict[str, str]:
        """The labels in an image's config blob (empty for indexes or a config without any)."""
        if not manifest.config_digest:
            return {}
        name = self.registry.api_name(repository)
        resp = self.request("GET", f"/v2/{name}/blobs/{manifest.config_digest}", pull_scope(name))
        self._expect(resp, 200, f"image config of {name}@{manifest.config_digest}")
        try:
            labels = (resp.json().get("config") or {}).get("Labels") or {}
        except (ValueError, AttributeError):
            return {}
        return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}

    def digest(self, repository: str, reference: str) -> str | None:
        """The manifest digest of a tag, by HEAD (GET if the registry sends no digest)."""
        name = self.registry.api_name(repository)
        resp = self.request(
            "HEAD", f"/v2/{name}/manifests/{reference}", pull_scope(name), {"Accept": ACCEPT}
        )
        if resp.status_code == 404:
            return None
        self._expect(resp, 200, f"manifest {name}:{reference}")
        digest = resp.headers.get("Docker-Content-Digest")
        if digest:
            return digest
        found = self.manifest(repository, reference)
        return found.digest if found else None

    def _expect(self, resp: requests.Response, status: int, what: str) -> None:
        if resp.status_code != status:
            raise RegistryError(
                f"registry {self.registry.name}: {what} answered HTTP {resp.status_code}",
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
