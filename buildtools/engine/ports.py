"""Ports on the engine's host: where its published ports are reached from here, where ``invoke
up`` binds the sidecar's, and a free one to ask for.

Apart from the stack because the test harness (fresh engines, registries) needs free ports too,
and the engine's address is a fact of ``DOCKER_HOST``, not of any stack.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import docker
import docker.errors
import requests

from buildtools.config.registry_address import is_loopback

LOCAL_SCHEMES = ("", "unix", "npipe", "fd")


def engine_host(docker_host: str | None) -> str:
    """The host name (or address) under which the engine's published ports are reached from
    here: the host of a ``tcp://`` or ``ssh://`` DOCKER_HOST, ``127.0.0.1`` for a local engine
    (unset, ``unix://``, ``npipe://``). An IPv6 address comes in brackets, ready for a URL."""
    parts = urlsplit(docker_host or "")
    if parts.scheme in LOCAL_SCHEMES or not parts.hostname:
        return "127.0.0.1"
    return f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname


# Where this machine's own engine answers when DOCKER_HOST names none.
DEFAULT_SOCKET = "unix:///var/run/docker.sock"


def engine_is_here(
    client: docker.DockerClient, docker_host: str | None, local: str = DEFAULT_SOCKET
) -> bool:
    """Whether the ports the engine publishes on its loopback are this machine's loopback.

    The text of DOCKER_HOST alone cannot tell: ``tcp://127.0.0.1:2375`` may be an SSH tunnel
    or a forwarded port to another machine's engine. A unix socket's engine is taken as here
    (as the Docker CLI does), one at another host's address as elsewhere; one at a loopback
    address is here only when it is the very engine this machine's own socket (``local``)
    answers: the same ID (the machine's engine key) and the same data root."""
    if urlsplit(docker_host or "").scheme in LOCAL_SCHEMES:
        return True
    if not is_loopback(engine_host(docker_host)):
        return False
    try:
        mine = _identity(docker.DockerClient(base_url=local, timeout=10))
        theirs = _identity(client)
    except (docker.errors.DockerException, requests.RequestException, OSError):
        return False
    return all(mine) and mine == theirs


def _identity(client: docker.DockerClient) -> tuple[str, str]:
    info = client.info()
    return str(info.get("ID") or ""), str(info.get("DockerRootDir") or "")


def publish_address(docker_host: str | None) -> str:
    """Where ``invoke up`` binds the sidecar's port on the engine's host: its loopback when that
    is this machine (nobody else should reach a test stack), else every address, since the
    engine's loopback is not reachable from here (GitLab's dind, an ``ssh://`` build host)."""
    return "127.0.0.1" if is_loopback(engine_host(docker_host)) else "0.0.0.0"


def free_port(address: str = "127.0.0.1") -> int:
    """A port free on ``address`` now. Chosen here, not by the engine: two engines on one host
    (a CI runner's and a test's) each hand out the same ports, unaware of the other."""
    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])
