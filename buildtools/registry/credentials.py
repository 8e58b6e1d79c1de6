"""Registry credentials from the environment, kept out of every log, error and file.

Variables, looked up per registry in this order (empty values count as unset, since CI
services export empty strings):

1. ``DOCKER_USERNAME_<KEY>`` and ``DOCKER_PASSWORD_<KEY>``, where ``<KEY>`` is the registry's
   host (and port) upper-cased, with every run of characters other than ``A-Z`` and ``0-9``
   written as one ``_``:

   * ``ghcr.io``: ``DOCKER_USERNAME_GHCR_IO`` and ``DOCKER_PASSWORD_GHCR_IO``
   * ``registry.example.org:5000``: ``DOCKER_USERNAME_REGISTRY_EXAMPLE_ORG_5000``, ...
   * ``127.0.0.1:5000``: ``DOCKER_USERNAME_127_0_0_1_5000``, ...
   * Docker Hub (``docker.io``): ``DOCKER_USERNAME_DOCKER_IO``, ``DOCKER_PASSWORD_DOCKER_IO``

   Two hosts that differ only in punctuation (``my-reg.io``, ``my.reg.io``) share a key.

2. ``DOCKER_USERNAME`` and ``DOCKER_PASSWORD`` (the usual Travis-style names), for
   every *release* registry (``release.registries``, Docker Hub when none) that has no pair of
   its own. With several registries, give each its own pair so one registry's password is
   never sent to another. A registry named only in ``cache.registries`` never gets this pair:
   it may be someone else's mirror, so it gets its own pair or no login at all.

A pair is all or nothing: a username without a password (or the reverse) is an error that
names the missing variable. The password is only ever handed to the Docker Engine as a push's
``auth_config`` (an HTTP header on its socket) and to the registry's own HTTP API; it is never
written to disk, put on a command line, logged, or shown by ``repr``/``str``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from buildtools.errors import MASK, BuildToolsError, redact_text

GENERIC = ("DOCKER_USERNAME", "DOCKER_PASSWORD")
_NOT_KEY = re.compile(r"[^A-Z0-9]+")


def env_key(registry: str) -> str:
    """``ghcr.io`` → ``GHCR_IO``; ``127.0.0.1:5000`` → ``127_0_0_1_5000``."""
    return _NOT_KEY.sub("_", registry.upper()).strip("_")


def variable_names(registry: str) -> tuple[str, str]:
    """The per-registry (username, password) variable names for ``registry``."""
    key = env_key(registry)
    return f"{GENERIC[0]}_{key}", f"{GENERIC[1]}_{key}"


@dataclass(frozen=True)
class Credentials:
    """A username and password for one registry; the password never shows in repr or str."""

    username: str
    password: str = field(repr=False)
    source: str = ""

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password={MASK!r}, source={self.source!r})"

    __str__ = __repr__

    def auth_config(self) -> dict[str, str]:
        """The ``auth_config`` for one docker-py push (sent as a header, never stored)."""
        return {"username": self.username, "password": self.password}


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "")
    return value if value.strip() else None


def _pair(env: Mapping[str, str], user_var: str, pass_var: str) -> Credentials | None:
    username, password = _get(env, user_var), _get(env, pass_var)
    if username is None and password is None:
        return None
    if username is None or password is None:
        missing = user_var if username is None else pass_var
        given = pass_var if username is None else user_var
        raise BuildToolsError(
            f"{given} is set but {missing} is not",
            f"set both {user_var} and {pass_var}, or neither",
        )
    return Credentials(username.strip(), password, f"{user_var}/{pass_var}")


def for_registry(
    registry: str, env: Mapping[str, str], *, release: bool = True
) -> Credentials | None:
    """The credentials for ``registry`` (host[:port]; ``docker.io`` for Docker Hub), or None.

    ``release`` False (a registry named only for cache lookups): its own pair only, never the
    release registry's ``DOCKER_USERNAME``/``DOCKER_PASSWORD``, which are not its to receive."""
    own = _pair(env, *variable_names(registry))
    return own if own or not release else _pair(env, *GENERIC)


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret (also URL-encoded) replaced by ``***``: for foreign messages."""
    return redact_text(text, secrets)
