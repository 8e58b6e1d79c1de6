"""One registry's HTTP API as a session: each request authenticated, retried, and made on
our terms.

Authentication is :mod:`buildtools.registry.auth`, retries :mod:`buildtools.registry.retry`,
the exchange itself :mod:`buildtools.registry.transport` (credentials only to the configured
scheme, host and port; answers within size limits; a TLS failure named, not retried). Every
error raised here has the password redacted. :class:`buildtools.registry.client.RegistryClient`
builds the registry's operations on it.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable

from buildtools.config.registry_address import Registry
from buildtools.errors import BuildToolsError
from buildtools.registry import checks
from buildtools.registry.auth import RegistryLogin
from buildtools.registry.credentials import Credentials
from buildtools.registry.failures import AuthError, RegistryError
from buildtools.registry.retry import RetryPolicy, raise_if_transient
from buildtools.registry.transport import ANSWER_LIMIT, Answer, Exchange, Session, origin

# Short: it goes with every request (a signed promotion makes about seventy); it is what
# a registry's access log tells our requests from the engine's (``docker/…``) by.
USER_AGENT = "lara-buildtools"


class RegistrySession:
    """Requests to one registry, with its credentials (None: anonymous)."""

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
        self._session = Session()
        self._session.headers["User-Agent"] = USER_AGENT
        # HTTP/1.1 defaults, sent by requests on every request: the connection is kept alive
        # and anything is accepted without them (a promotion makes two dozen requests).
        for default in ("Connection", "Accept"):
            self._session.headers.pop(default, None)
        self._login = RegistryLogin(registry, credentials, self._exchange)

    @property
    def _exchange(self) -> Exchange:
        return Exchange(
            self._session, self.registry.name, self.registry.scheme == "https", self.timeout
        )

    def _url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.registry.url + path

    def credentials_go_to(self) -> list[str]:
        """Where this client has sent (or will send) the credentials: the registry itself for
        Basic auth, each token server for bearer tokens; empty before a login."""
        return self._login.sent_to()

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
        limit: int | None = ANSWER_LIMIT,
        subject: str = "",
        sink: Callable[[bytes], None] | None = None,
    ) -> Answer:
        url = self._url(path)
        # Credentials only ever go to the registry itself (its scheme, host and port),
        # whatever a Location or Link header or a redirect points at.
        own = origin(self.registry.url)
        for answered in (False, True):  # again once after answering an auth challenge
            resp = self._exchange.send(
                method,
                url,
                credentials_for=own,
                credentials=self._login.header(scope),
                headers=headers,
                data=data,
                limit=limit,
                subject=subject,
                sink=sink,
            )
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
        *,
        limit: int | None = ANSWER_LIMIT,
        subject: str = "",
        sink: Callable[[], Callable[[bytes], None]] | None = None,
    ) -> Answer:
        """One API request, authenticated and retried; 401/403 raise, other statuses return.

        ``data`` is sent whole with every attempt: only requests that may be repeated (a blob
        or manifest named by its digest, a fresh upload session) carry one. The answer is read
        up to ``limit`` bytes (``subject`` names it in errors), or a 200's body is streamed to
        ``sink()``, called anew for each attempt."""
        url = self._url(path)
        what = f"{method} {url.split('?')[0]}"
        try:
            return self.retry.run(
                lambda: self._send(
                    method,
                    path,
                    scope,
                    headers or {},
                    data,
                    limit,
                    subject,
                    sink() if sink else None,
                ),
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

    def _probe(self) -> Answer:
        """``GET /v2/`` without credentials: 200 (open) or 401 with the auth challenge."""

        def ping() -> Answer:
            resp = self._exchange.send(
                "GET",
                self.registry.url + "/v2/",
                credentials_for=None,
                credentials={},
                headers={},
                subject="/v2/",
            )
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

    def _expect(self, resp: Answer, status: int, what: str) -> None:
        if resp.status_code != status:
            detail = checks.error_code(resp)
            raise RegistryError(
                f"registry {self.registry.name}: {what} answered HTTP {resp.status_code}{detail}",
                "check the repository name and the registry's status page",
            )
