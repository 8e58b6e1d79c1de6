"""Run the built pair (app + nginx sidecar) as it runs in production, for people and smoke tests.

The two containers share a user-defined network, so the sidecar finds the app by name through
Docker's DNS; only the sidecar publishes a port, on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
import requests

from buildtools.errors import BuildToolsError

APP_PORT = 3000
SIDECAR_PORT = 80
# Set on everything `invoke up` starts: it removes only what carries it.
OWNER_LABEL = "org.concord.lara.buildtools.stack"
FINGERPRINTED = re.compile(r'href="(/assets/[^"]+-[0-9a-f]{64}\.css)"')


@dataclass(frozen=True)
class Stack:
    name: str
    url: str

    @property
    def network(self) -> str:
        return f"{self.name}-net"

    @property
    def app(self) -> str:
        return f"{self.name}-app"

    @property
    def sidecar(self) -> str:
        return f"{self.name}-nginx"


def _not_ours(kind: str, name: str, stack: str) -> BuildToolsError:
    return BuildToolsError(
        f"a {kind} named {name} exists and was not started by invoke up: leaving it alone",
        f"remove it yourself (docker {kind} rm {name}) or pass --name with another prefix "
        f"than {stack!r}",
    )


def _owned(labels: dict[str, str] | None, name: str) -> bool:
    return (labels or {}).get(OWNER_LABEL) == name


def down(client: docker.DockerClient, name: str) -> None:
    """Remove the stack's containers and network; absent parts are fine, foreign ones (same
    name, not started by us) are refused before anything is removed."""
    stack = Stack(name, "")
    containers = []
    for container_name in (stack.sidecar, stack.app):
        with contextlib.suppress(docker.errors.NotFound):
            container = client.containers.get(container_name)
            if not _owned(container.labels, name):
                raise _not_ours("container", container_name, name)
            containers.append(container)
    networks = [n for n in client.networks.list(names=[stack.network]) if n.name == stack.network]
    for network in networks:
        if not _owned(network.attrs.get("Labels"), name):
            raise _not_ours("network", stack.network, name)
    for container in containers:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)
    for network in networks:
        network.remove()


def up(
    client: docker.DockerClient, app_image: str, nginx_image: str, name: str = "lara", port: int = 0
) -> Stack:
    """Start app and sidecar (replacing an earlier stack of that name); wait until both answer."""
    down(client, name)
    stack = Stack(name, "")
    owner = {OWNER_LABEL: name}
    client.networks.create(stack.network, driver="bridge", labels=owner)
    try:
        client.containers.run(
            app_image, name=stack.app, network=stack.network, detach=True, labels=owner
        )
        sidecar = client.containers.run(
            nginx_image,
            name=stack.sidecar,
            network=stack.network,
            labels=owner,
            environment={"APP_UPSTREAM": f"{stack.app}:{APP_PORT}"},
            ports={f"{SIDECAR_PORT}/tcp": ("127.0.0.1", port or None)},
            detach=True,
        )
        sidecar.reload()
        host_port = sidecar.attrs["NetworkSettings"]["Ports"][f"{SIDECAR_PORT}/tcp"][0]["HostPort"]
        stack = Stack(name, f"http://127.0.0.1:{host_port}")
        wait_for(f"{stack.url}/version.json", client, stack)
    except BuildToolsError:
        down(client, name)
        raise
    except docker.errors.APIError as exc:
        down(client, name)
        raise BuildToolsError(
            f"could not start {name}: {exc.explanation or exc}",
            "free the port (or pass --port), or check `docker ps` for a conflicting container",
        ) from None
    return stack


def wait_for(url: str, client: docker.DockerClient, stack: Stack, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            resp = requests.get(url, timeout=2)
            if resp.status_code == 200:
                return
            last = f"HTTP {resp.status_code}"
        except requests.exceptions.RequestException as exc:
            last = type(exc).__name__
        time.sleep(0.3)
    raise BuildToolsError(
        f"{url} did not answer 200 within {seconds:.0f}s ({last})",
        f"see `docker logs {stack.app}` and `docker logs {stack.sidecar}`",
    )


def smoke(
    client: docker.DockerClient, app_image: str, nginx_image: str, commit: str, name: str
) -> dict[str, Any]:
    """Start the pair, check through the sidecar that the app reports ``commit`` and that a
    fingerprinted asset is served from the sidecar's disk; always clean up."""
    stack = up(client, app_image, nginx_image, name)
    try:
        version = requests.get(f"{stack.url}/version.json", timeout=10).json()
        if version.get("commit") != commit:
            raise BuildToolsError(
                f"the app reports commit {version.get('commit')!r}, expected {commit}",
                "rebuild the images for this commit (invoke build)",
            )
        page = requests.get(f"{stack.url}/", timeout=10).text
        match = FINGERPRINTED.search(page)
        if not match:
            raise BuildToolsError(
                "the app page links no fingerprinted stylesheet",
                "check that assets were precompiled into public/assets",
            )
        asset = requests.get(f"{stack.url}{match[1]}", timeout=10)
        cache_control = asset.headers.get("Cache-Control", "")
        if asset.status_code != 200 or "immutable" not in cache_control:
            raise BuildToolsError(
                f"{match[1]} answered HTTP {asset.status_code} with Cache-Control "
                f"{cache_control!r} through the sidecar",
                "check the nginx sidecar image (invoke nginx.config)",
            )
        return {"version": version, "asset": match[1], "url": stack.url}
    finally:
        down(client, name)
