"""Logging in to a registry: its ``WWW-Authenticate`` challenge, and the answer to it.

``Basic`` (htpasswd, most self-hosted registries) sends the credentials with each request;
``Bearer`` (Docker Hub, GHCR, GitLab) fetches a token from the challenge's realm with the
credentials and a repository scope, once per scope: a push token also reads tags and
manifests, so no token is fetched twice. A refused login is an :class:`AuthError` at once,
never retried; the password appears in no message.

The realm is the registry's word, so it is checked before the credentials go there: only an
https realm, or an http one when the registry itself is spoken to over plain HTTP (loopback,
or configured ``http://``). :meth:`RegistryLogin.sent_to` says where they went.
"""

from __future__ import annotations

import base64
import re
import urllib.parse
from collections.abc import Iterable

from buildtools.config.registry_address import Registry
from buildtools.plan import shapes
from buildtools.registry.credentials import Credentials
from buildtools.registry.failures import AuthError, CredentialsMissing, RegistryError
from buildtools.registry.retry import raise_if_transient
from buildtools.registry.transport import Exchange, Refused, origin, show

_CHALLENGE_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^\s,]+))')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="…",service="…"`` → ``("bearer", {"realm": …, "service": …})``."""
    scheme, _, rest = header.strip().partition(" ")
    params = {
        m.group(1).lower(): m.group(2) or m.group(3) or "" for m in _CHALLENGE_PARAM.finditer(rest)
    }
    return scheme.lower(), params


def token_access(token: str) -> list[dict] | None:
    """The ``access`` claim of a JWT bearer token (read, not verified: the registry does that)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = shapes.load(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)), "")
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


class RegistryLogin:
    """The login to one registry (credentials None: anonymous), as the headers it adds.

    Starts knowing nothing; :meth:`answer` learns from each challenge whether to send Basic
    credentials or which bearer token a scope needs.
    """

    def __init__(
        self,
        registry: Registry,
        credentials: Credentials | None,
        exchange: Exchange,
    ) -> None:
        self.registry = registry
        self.credentials = credentials
        self._exchange = exchange
        self._basic = False
        self._tokens: dict[str, str] = {}
        self._realms: set[str] = set()  # token servers the credentials were sent to

    def __repr__(self) -> str:
        return f"RegistryLogin({self.registry.name!r}, credentials={self.credentials!r})"

    def reset(self) -> None:
        """Forget what earlier challenges taught, to log in afresh."""
        self._basic = False
        self._tokens.clear()

    def secrets(self) -> list[str]:
        return [self.credentials.password] if self.credentials else []

    def sent_to(self) -> list[str]:
        """Where the credentials went: the registry with every request (Basic), or each token
        server asked for a token (bearer); empty when anonymous or before a login."""
        if self.credentials is None:
            return []
        found = [f"{self.registry.url} (Basic auth, every request)"] if self._basic else []
        return found + [f"{realm} (bearer token server)" for realm in sorted(self._realms)]

    def _basic_header(self) -> dict[str, str]:
        if self.credentials is None:
            return {}
        raw = f"{self.credentials.username}:{self.credentials.password}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}

    def header(self, scope: str) -> dict[str, str]:
        """The ``Authorization`` header for a request needing ``scope`` (none if not known)."""
        if self._basic and self.credentials is not None:
            return self._basic_header()
        # A copy: another thread of a concurrent read may add a token meanwhile.
        token = self._tokens.get(scope) or next(
            (t for have, t in list(self._tokens.items()) if scope_covers(have, scope)), None
        )
        return {"Authorization": f"Bearer {token}"} if token else {}

    def granted(self, scope: str) -> list[dict] | None:
        """What the bearer token for ``scope`` grants, if it says (None: Basic or opaque)."""
        return token_access(self._tokens[scope]) if scope in self._tokens else None

    def answer(self, challenge: str, scope: str) -> bool:
        """Answer a 401's ``WWW-Authenticate`` (a fresh token for bearer); True if the request
        is worth sending again."""
        scheme, params = parse_challenge(challenge)
        if scheme == "basic":
            if self.credentials is None:
                raise CredentialsMissing(self.registry.name)
            self._basic = True
            return True
        if scheme == "bearer":
            self._tokens[scope] = self._fetch_token(params, scope)
            return True
        return False

    def refused(self) -> AuthError:
        """A 401 after the challenge was answered: no login, or the wrong one."""
        if self.credentials is None:
            return CredentialsMissing(self.registry.name)
        return self.wrong_credentials()

    def wrong_credentials(self) -> AuthError:
        creds = self.credentials
        assert creds is not None
        return AuthError(
            f"registry {self.registry.name} rejected the login of user {creds.username!r} "
            f"(from {creds.source})",
            "check the username and the password or access token in those variables",
        )

    def _realm(self, params: dict[str, str]) -> str:
        """The challenge's realm, if the credentials may go there: https, or http only when
        the registry itself is spoken to over plain HTTP."""
        realm = params.get("realm", "")
        where = origin(realm)
        if where is None:
            raise RegistryError(
                f"registry {self.registry.name} asked for a bearer token from "
                f"{realm[:100]!r}, which is not an http(s) URL",
                "report this registry's WWW-Authenticate header",
            )
        if where[0] == "http" and self.registry.scheme != "http":
            raise Refused(
                f"registry {self.registry.name} asked for a bearer token from {show(where)} "
                "over plain HTTP: the credentials are not sent there",
                "serve the registry's token endpoint over https (or, on a network you trust, "
                f"configure the registry as http://{self.registry.api_host})",
            )
        return urllib.parse.urlsplit(realm)._replace(query="", fragment="").geturl()

    def _fetch_token(self, params: dict[str, str], scope: str) -> str:
        realm = params.get("realm", "")
        checked = self._realm(params)
        query: list[tuple[str, str]] = []
        if params.get("service"):
            query.append(("service", params["service"]))
        query.extend(("scope", s) for s in (scope or params.get("scope", "")).split() if s)
        url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
        if self.credentials is not None:
            self._realms.add(checked)
        resp = self._exchange.send(
            "GET",
            url.rstrip("?"),
            credentials_for=origin(realm),
            credentials=self._basic_header(),
            headers={},
            subject="token answer",
        )
        raise_if_transient(resp, "token request: ")
        if resp.status_code in (401, 403) and self.credentials is not None:
            raise self.wrong_credentials()
        if resp.status_code != 200:
            raise RegistryError(
                f"registry {self.registry.name}: token request answered HTTP {resp.status_code}",
                "check the registry's status page",
            )
        try:
            return shapes.token_of(shapes.load(resp.content, "token answer"))
        except shapes.BadDocument:
            raise RegistryError(
                f"registry {self.registry.name}: token response has no token",
                "check the registry's status page",
            ) from None
