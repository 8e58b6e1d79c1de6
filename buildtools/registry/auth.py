"""Logging in to a registry: its ``WWW-Authenticate`` challenge, and the answer to it.

``Basic`` (htpasswd, most self-hosted registries) sends the credentials with each request;
``Bearer`` (Docker Hub, GHCR, GitLab) fetches a token from the challenge's realm with the
credentials and a repository scope, once per scope: a push token also reads tags and
manifests, so no token is fetched twice. A refused login is an :class:`AuthError` at once,
never retried; the password appears in no message.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable

import requests

from buildtools.config.registry_address import Registry
from buildtools.registry.credentials import Credentials
from buildtools.registry.failures import AuthError, CredentialsMissing, RegistryError
from buildtools.registry.retry import network_failure, raise_if_transient

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


class RegistryLogin:
    """The login to one registry (credentials None: anonymous), as the headers it adds.

    Starts knowing nothing; :meth:`answer` learns from each challenge whether to send Basic
    credentials or which bearer token a scope needs.
    """

    def __init__(
        self,
        registry: Registry,
        credentials: Credentials | None,
        session: requests.Session,
        timeout: float,
    ) -> None:
        self.registry = registry
        self.credentials = credentials
        self._session = session
        self._timeout = timeout
        self._basic = False
        self._tokens: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"RegistryLogin({self.registry.name!r}, credentials={self.credentials!r})"

    def reset(self) -> None:
        """Forget what earlier challenges taught, to log in afresh."""
        self._basic = False
        self._tokens.clear()

    def secrets(self) -> list[str]:
        return [self.credentials.password] if self.credentials else []

    def header(self, scope: str) -> dict[str, str]:
        """The ``Authorization`` header for a request needing ``scope`` (none if not known)."""
        if self._basic and self.credentials is not None:
            raw = f"{self.credentials.username}:{self.credentials.password}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        token = self._tokens.get(scope) or next(
            (t for have, t in self._tokens.items() if scope_covers(have, scope)), None
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
            resp = self._session.get(realm, params=query, auth=auth, timeout=self._timeout)
        except requests.RequestException as exc:
            raise network_failure(exc, "token request: ") from None
        raise_if_transient(resp, "token request: ")
        if resp.status_code in (401, 403) and self.credentials is not None:
            raise self.wrong_credentials()
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
