"""FreshEngine: a second, empty dockerd beside the main one, started in a slot of its own and
stopped leaving nothing behind (its host network and clean-up are in fresh_host.py)."""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests

from buildtools.engine.connect import CertPathClient
from buildtools.errors import BuildToolsError
from testbed.engines import ensure_engine
from testbed.fresh_host import (
    FRESH_NETWORK,
    FRESH_PREFIX,
    NETNS_DIR,
    REMOTE_PORT,
    REMOTE_TLS_PORT,
    cleanup,
    local_network,
    remote_network,
    run,
    slot_order,
)


@dataclass
class FreshEngine:
    """A second, empty ``dockerd`` beside the main one, for tests and benchmarks that need an
    engine that has never built anything, without touching the main engine's images or networks.

    Privileged containers cannot start on our CI machines, so this is a host process with its own
    data root, socket, bridge and address pool, and ``--iptables=false``; we add the only host
    rules it needs (forward and masquerade its range) and remove them in ``stop()``.

    ``remote=True`` makes it an engine elsewhere, the way GitLab's ``docker:dind`` service is
    for a job: dockerd runs in a network namespace of its own (named like the slot), joined to
    the host by a veth pair on a /30, and answers only at ``tcp://<its address>:2375``. A port
    it publishes on its loopback is then unreachable from here, as from a job container; what
    it pushes goes to a registry on :attr:`host_address` (an insecure registry for it).
    ``tls=True`` (remote only) makes it answer as dind does with ``DOCKER_TLS_CERTDIR`` set: at
    ``tcp://<its address>:2376``, TLS with client certificates from its own CA, which a client
    finds through :meth:`env` (``DOCKER_TLS_VERIFY``, ``DOCKER_CERT_PATH``).
    """

    root: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "lbt-fresh")
    slot: int = -1
    process: subprocess.Popen | None = None
    remote: bool = False
    tls: bool = False
    _lock: Any = None

    @property
    def name(self) -> str:
        return f"{FRESH_PREFIX}{self.slot}"

    @property
    def dir(self) -> Path:
        return self.root / self.name

    @property
    def host(self) -> str:
        """The DOCKER_HOST value of this engine."""
        if self.remote:
            port = REMOTE_TLS_PORT if self.tls else REMOTE_PORT
            return f"tcp://{self.engine_address}:{port}"
        return f"unix://{self.dir}/docker.sock"

    @property
    def cert_path(self) -> Path:
        """A client's certificates for a TLS engine, laid out as DOCKER_CERT_PATH wants them
        (ca.pem, cert.pem, key.pem), as dind writes them to ``$DOCKER_TLS_CERTDIR/client``."""
        return self.dir / "certs" / "client"

    def env(self) -> dict[str, str]:
        """The environment a Docker client (ours, the CLI, docker-py) needs for this engine."""
        if not self.tls:
            return {"DOCKER_HOST": self.host}
        return {
            "DOCKER_HOST": self.host,
            "DOCKER_TLS_VERIFY": "1",
            "DOCKER_CERT_PATH": str(self.cert_path),
        }

    @property
    def link(self) -> ipaddress.IPv4Network:
        """The /30 between the host and a remote engine's namespace (inside the slot's range,
        beside the bridge address a local engine would use)."""
        return list(self.network.subnets(new_prefix=30))[1]

    @property
    def host_address(self) -> str:
        """The host's end of the link: where a remote engine reaches this machine (a registry)."""
        return str(self.link.network_address + 1)

    @property
    def engine_address(self) -> str:
        """The namespace's end of the link: the only address a remote engine answers on."""
        return str(self.link.network_address + 2)

    @property
    def veth(self) -> str:
        """The host's end of the veth pair (``…n`` is the namespace's end)."""
        return f"{self.name}h"

    @property
    def netns(self) -> Path:
        return NETNS_DIR / self.name

    @property
    def network(self) -> ipaddress.IPv4Network:
        return list(FRESH_NETWORK.subnets(new_prefix=19))[self.slot]

    @property
    def bridge_address(self) -> str:
        return f"{self.network.network_address + 1}/24"

    @property
    def pool(self) -> ipaddress.IPv4Network:
        return list(self.network.subnets(new_prefix=20))[1]

    def client(self, timeout: int = 300) -> docker.DockerClient:
        if not self.tls:
            return docker.DockerClient(base_url=self.host, timeout=timeout)
        c = self.cert_path
        tls = docker.tls.TLSConfig(
            client_cert=(str(c / "cert.pem"), str(c / "key.pem")),
            ca_cert=str(c / "ca.pem"),
            verify=True,
        )
        return CertPathClient(base_url=self.host, tls=tls, timeout=timeout)

    def start(self, wait: float = 60.0) -> FreshEngine:
        """Take a free slot (cleaning up after a crashed owner), then start dockerd in it."""
        for tool in ("dockerd", "ip", "iptables", *(["nsenter"] if self.remote else [])):
            if not shutil.which(tool):
                raise BuildToolsError(
                    f"a fresh Docker Engine needs {tool}, which is not installed",
                    "bash scripts/setup installs docker.io, iproute2, iptables (and util-linux)",
                )
        if os.geteuid() != 0:
            raise BuildToolsError("a fresh Docker Engine needs root", "run as root or with sudo")
        if self.tls and not self.remote:
            raise BuildToolsError("tls=True is for a remote FreshEngine", "pass remote=True too")
        if self.tls and not shutil.which("openssl"):
            raise BuildToolsError(
                "a TLS engine's certificates are made with openssl, which is not installed",
                "bash scripts/setup installs openssl",
            )
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._take_slot()
        try:
            self._start(wait)
        except BaseException:
            self.stop()
            raise
        return self

    def _take_slot(self) -> None:
        """The first free slot of :func:`slot_order`, or the one asked for (``slot=``): what a
        crashed owner of it left is removed first either way."""
        asked = [self.slot] if self.slot >= 0 else []
        for slot in asked or slot_order():
            lock = (self.root / f"{FRESH_PREFIX}{slot}.lock").open("a")
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # a live FreshEngine (in any process) holds this slot
                lock.close()
                continue
            self.slot, self._lock = slot, lock
            cleanup(self)  # a crashed owner's leftovers, if any
            routes = json.loads(run("ip", "-j", "-4", "route", "show").stdout or "[]")
            taken = [
                ipaddress.ip_network(r["dst"], strict=False)
                for r in routes
                if r.get("dst", "default") != "default"
            ]
            if not any(self.network.overlaps(net) for net in taken):
                return
            self._release()
        raise BuildToolsError(
            f"fresh Docker Engine slot {FRESH_PREFIX}{asked[0]} is not free"
            if asked
            else f"no free slot for a fresh Docker Engine in {FRESH_NETWORK}",
            "stop other fresh engines, or free routes in that range",
        )

    def _start(self, wait: float) -> None:
        data, execroot = self.dir / "data", self.dir / "x"
        for path in (data, execroot):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        # An empty config: the main engine's daemon.json (hosts, bridge, data-root) is not ours.
        (self.dir / "daemon.json").write_text("{}\n")
        common = [
            f"--config-file={self.dir / 'daemon.json'}",
            f"--data-root={data}",
            f"--exec-root={execroot}",
            f"--pidfile={self.dir / 'dockerd.pid'}",
            # Our own cgroup parent, so a crashed run's containers can be found and killed.
            "--exec-opt=native.cgroupdriver=cgroupfs",
            f"--cgroup-parent=/{self.name}",
            f"--containerd-namespace={self.name}",
            f"--containerd-plugins-namespace={self.name}-plugins",
        ]
        network = remote_network(self) if self.remote else local_network(self)
        command = network + common
        log = (self.dir / "dockerd.log").open("ab")
        self.process = subprocess.Popen(
            command, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and self.process.poll() is None:
            with contextlib.suppress(docker.errors.DockerException, requests.RequestException):
                if self.client(timeout=5).ping():
                    return
            time.sleep(0.2)
        tail = (self.dir / "dockerd.log").read_text(errors="replace").strip().splitlines()[-1:]
        raise BuildToolsError(
            f"the fresh dockerd did not answer within {wait:.0f}s: {(tail or ['no log'])[0]}",
            "read its log line above; `bash scripts/setup` installs what it needs",
        )

    def load(self, *refs: str, source: docker.DockerClient | None = None) -> None:
        """Carry images over from the main engine (docker save | docker load, streamed through
        the API): in practice only the base image, so that builds start from nothing else."""
        source = source or ensure_engine()
        target = self.client()
        for ref in refs:
            try:
                target.images.load(source.api.get_image(ref))
            except docker.errors.ImageNotFound as exc:
                raise BuildToolsError(
                    f"{ref} is not on the main engine", "make it first (invoke bases)"
                ) from exc

    def stop(self) -> None:
        """Stop dockerd (it stops its containers) and remove everything the engine made."""
        if self.slot < 0:
            return
        if self.process and self.process.poll() is None:
            # dockerd would give each container 10 s to stop; they are throwaway.
            with contextlib.suppress(docker.errors.DockerException, requests.RequestException):
                for container in self.client(timeout=30).containers.list():
                    container.kill()
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        cleanup(self)
        self._release()

    def _release(self) -> None:
        if self._lock:
            self._lock.close()
        self._lock, self.slot, self.process = None, -1, None

    def __enter__(self) -> FreshEngine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
