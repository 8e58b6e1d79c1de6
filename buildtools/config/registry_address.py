"""Where a registry is: a config entry (``host[:port]``) as the name users and credentials
know it by, the host its HTTP API answers on, and the scheme to speak to it.

Plain values and pure functions: nothing here talks to a network.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from buildtools.errors import BuildToolsError

DOCKER_HUB = "docker.io"
HUB_API_HOST = "registry-1.docker.io"
_HUB_ALIASES = {
    "",
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "registry.hub.docker.com",
}


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or address, with or without ``:port``; IPv6 in brackets) is
    this machine's loopback."""
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
    return Registry(host, host, scheme or ("http" if is_loopback(host) else "https"))
