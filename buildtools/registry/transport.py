"""One HTTP exchange with a registry or its token server, on terms a hostile server cannot
change: where credentials go, how much is read, and what a TLS failure means.

- **Credentials** go only to the origin (scheme, host and port) they are meant for: a
  ``Location`` or ``Link`` header, or a redirect, that points elsewhere is followed without
  them, and one that leaves ``https`` for ``http`` is not followed at all.
- **Sizes**: an answer is read up to a limit (4 MiB for a manifest, as registries themselves
  limit them), or streamed to a file; never held whole when it is larger.
- **TLS**: a failed handshake is not retried (the next one fails the same way); a server that
  answers plain HTTP where HTTPS was asked for is named as such.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests
from requests.structures import CaseInsensitiveDict
from requests.utils import parse_header_links

from buildtools.registry.failures import RegistryError
from buildtools.registry.retry import network_failure

MiB = 1024 * 1024
MANIFEST_LIMIT = 4 * MiB
CONFIG_LIMIT = 8 * MiB
# Tag lists (registries that ignore ?n= answer in one page), error bodies, token answers.
ANSWER_LIMIT = 16 * MiB
MAX_REDIRECTS = 5
_DEFAULT_PORTS = {"http": 80, "https": 443}
_REDIRECTS = (301, 302, 303, 307, 308)
_SSL_REASON = re.compile(r"\[SSL(?:: [A-Z_]+)?\] ([^(')\]]+)")

Origin = tuple[str, str, int]


def origin(url: str) -> Origin | None:
    """``(scheme, host, port)`` of an http(s) URL, the default port filled in; None for any
    other scheme or a malformed port."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        return None
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError:
        return None
    return scheme, (parts.hostname or "").lower(), port


def show(where: Origin) -> str:
    """An origin as a URL prefix (``https://ghcr.io``, ``http://10.0.0.2:5000``)."""
    scheme, host, port = where
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" + ("" if _DEFAULT_PORTS[scheme] == port else f":{port}")


@dataclass(frozen=True)
class Answer:
    """A registry's answer, read within its limit (``content`` is empty when streamed)."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes
    url: str

    @property
    def links(self) -> dict[str, dict[str, str]]:
        """The ``Link`` header by ``rel`` (``links["next"]["url"]`` pages a tag list)."""
        found: dict[str, dict[str, str]] = {}
        for link in parse_header_links(self.headers.get("Link", "")):
            found[link.get("rel") or link.get("url", "")] = link
        return found


class TooLarge(RegistryError):
    """An answer over its size limit."""


class Refused(RegistryError):
    """A URL the registry pointed at that we do not follow (a downgrade to plain HTTP)."""


class Session(requests.Session):
    """A requests session that reads the environment's proxy and CA-bundle settings once
    per origin, not on every request: requests walks the whole environment
    (``getproxies``) for each one, about a millisecond, which on thousands of requests
    (a prune's one ``HEAD`` per tag) was more CPU than the requests themselves. The
    environment does not change during a task, and these settings depend only on the URL's
    origin."""

    def __init__(self) -> None:
        super().__init__()
        self._environment: dict[tuple[Origin | None, Any, Any, Any], dict[str, Any]] = {}

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        if proxies:  # asked for explicitly: nothing to keep
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        key = (origin(str(url)), stream, verify, cert)
        if key not in self._environment:
            self._environment[key] = super().merge_environment_settings(
                url, proxies, stream, verify, cert
            )
        kept = self._environment[key]
        return {**kept, "proxies": dict(kept["proxies"])}


@dataclass(frozen=True)
class Exchange:
    """How to make one request: who the registry is (for messages), where its credentials
    may go, and what limit its answer has."""

    session: requests.Session
    registry: str  # its name, for messages
    secure: bool  # the registry is spoken to over https: never follow http from it
    timeout: float

    def send(
        self,
        method: str,
        url: str,
        *,
        credentials_for: Origin | None,
        credentials: Mapping[str, str],
        headers: Mapping[str, str],
        data: bytes | None = None,
        limit: int | None = ANSWER_LIMIT,
        subject: str = "",
        sink: Callable[[bytes], None] | None = None,
    ) -> Answer:
        """``method url`` and up to five redirects; ``credentials`` (an Authorization header)
        only to ``credentials_for``. A 200's body goes to ``sink`` when given, else (as every
        other answer's) is read up to ``limit`` bytes."""
        for _ in range(MAX_REDIRECTS + 1):
            where = self._check(url, subject)
            sent = {**headers, **(credentials if where == credentials_for else {})}
            try:
                resp = self.session.request(
                    method,
                    url,
                    headers=sent,
                    data=data,
                    timeout=self.timeout,
                    allow_redirects=False,
                    stream=True,
                )
            except requests.exceptions.SSLError as exc:
                raise self.tls_failure(exc, where) from None
            except requests.RequestException as exc:
                raise network_failure(exc) from None
            with resp:
                location = resp.headers.get("Location")
                if resp.status_code in _REDIRECTS and location:
                    url = urllib.parse.urljoin(url, location)
                    if resp.status_code == 303:
                        method, data = "GET", None
                    continue
                # Read to its end even when empty (a HEAD): only a response read through goes
                # back to the pool, so the next request reuses its connection (one TCP
                # connection per HEAD made a prune of 4,000 tags open 4,000).
                streamed = sink is not None and resp.status_code == 200
                body = self._read(
                    resp, None if streamed else limit, subject, sink if streamed else None
                )
                return Answer(resp.status_code, CaseInsensitiveDict(resp.headers), body, url)
        raise RegistryError(
            f"registry {self.registry}: {subject or url} redirected more than "
            f"{MAX_REDIRECTS} times",
            "check the registry's address and its proxy's redirects",
        )

    def _check(self, url: str, subject: str) -> Origin:
        where = origin(url)
        if where is None or (self.secure and where[0] != "https"):
            shown = urllib.parse.urlsplit(url)._replace(query="", fragment="").geturl()
            raise Refused(
                f"registry {self.registry} pointed {subject or 'a request'} at {shown}: "
                "not followed, it leaves https",
                "check the registry's (or its proxy's) external URL: it must be https",
            )
        return where

    def _read(
        self,
        resp: requests.Response,
        limit: int | None,
        subject: str,
        sink: Callable[[bytes], None] | None,
    ) -> bytes:
        length = resp.headers.get("Content-Length", "")
        if limit is not None and length.isdigit() and int(length) > limit:
            raise self._too_large(subject, limit, f"{int(length)} bytes")
        chunks: list[bytes] = []
        total = 0
        try:
            for chunk in resp.iter_content(64 * 1024):
                total += len(chunk)
                if limit is not None and total > limit:
                    raise self._too_large(subject, limit, "more")
                if sink is not None:
                    sink(chunk)
                else:
                    chunks.append(chunk)
        except requests.RequestException as exc:
            raise network_failure(exc, "reading the answer: ") from None
        return b"".join(chunks)

    def _too_large(self, subject: str, limit: int, size: str) -> TooLarge:
        return TooLarge(
            f"registry {self.registry}: {subject or 'an answer'} is {size} bytes, over the "
            f"{limit // MiB} MiB limit; not read",
            "check what the registry serves under that name (no real one is that large)",
        )

    def tls_failure(self, exc: requests.exceptions.SSLError, where: Origin) -> RegistryError:
        """A failed TLS handshake, named for what it is: a certificate not trusted here, or a
        server that answers plain HTTP (asked once, without credentials), else the TLS error."""
        _, host, port = where
        address = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
        reason = _SSL_REASON.search(str(exc))
        detail = reason.group(1).strip() if reason else type(exc).__name__
        if "certificate" in str(exc).lower():
            return RegistryError(
                f"registry {self.registry}: the TLS certificate of {address} is not trusted "
                f"here ({detail})",
                "install the CA that signed it in this machine's trust store (or point "
                "REQUESTS_CA_BUNDLE at it), or check the registry's address",
            )
        plain = show(("http", host, port))
        try:
            probe = self.session.get(
                plain + "/v2/", timeout=self.timeout, allow_redirects=False, stream=True
            )
            probe.close()
        except requests.RequestException:
            return RegistryError(
                f"registry {self.registry}: the TLS handshake with {address} failed ({detail})",
                "check the registry's address and that it serves HTTPS there",
            )
        return RegistryError(
            f"registry {self.registry}: {address} answers plain HTTP, not HTTPS",
            f"if that is intended (e.g. a CI runner's own registry), write it as {plain} in "
            f"buildtools.release.registries and list {address} in the engine's "
            "insecure-registries",
        )
