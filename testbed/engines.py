"""Docker Engines for tests, benchmarks and ``scripts/setup``: the main engine, started when
none answers, and FreshEngine, a second, empty dockerd for what must start from nothing."""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests

from buildtools.bases import apt_install, can_install
from buildtools.engine import connect
from buildtools.errors import BuildToolsError

DOCKERD_LOG = Path(tempfile.gettempdir()) / "lara-buildtools-dockerd.log"


def ensure_engine(wait: float = 60.0) -> docker.DockerClient:
    """A client for a Docker Engine that answers, starting Debian's dockerd if none does (as
    root on Debian; elsewhere the engine's own one-line error says how to start one)."""
    try:
        return connect(timeout=300)
    except BuildToolsError:
        # Someone else's engine (DOCKER_HOST), or no way to start ours: say so as every task does.
        if os.environ.get("DOCKER_HOST") or not can_install():
            raise
    if not shutil.which("dockerd"):
        apt_install("docker.io")
    with DOCKERD_LOG.open("ab") as log:
        subprocess.Popen(
            ["dockerd"], stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True
        )
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        with contextlib.suppress(BuildToolsError):
            return connect(timeout=300)
        time.sleep(0.5)
    raise BuildToolsError(
        f"dockerd did not answer within {wait:.0f}s", f"see its log in {DOCKERD_LOG}"
    )


# Everything a FreshEngine makes is named FRESH_PREFIX<slot>: its bridge, the comment on its
# iptables rules, its directory and its containers' cgroup. A crashed run's leftovers are found
# (and removed) by that name alone. Slots live in FRESH_NETWORK, one /19 each: the default
# bridge's /24, then a /20 pool for user-defined networks.
FRESH_PREFIX = "lbtfresh"
FRESH_NETWORK = ipaddress.IPv4Network("10.213.0.0/16")
FRESH_SLOTS = 8
# A remote FreshEngine: where `ip netns add` puts its namespace, and its API port (dind's).
NETNS_DIR = Path("/var/run/netns")
REMOTE_PORT = 2375
# The processes of an engine that may outlive a crashed run.
ENGINE_PROGRAMS = {"dockerd", "containerd", "containerd-shim", "containerd-shim-runc-v2"}


def slot_order() -> list[int]:
    """Where an engine looks for a free slot: from 0, or under pytest-xdist from the start of
    this worker's share of the slots (gw1 of 2 from slot 4), wrapping round. A slot is taken
    by a lock either way; the shares keep a worker's engines off another's slots while they
    are free for a moment, such as the slot of an engine a test killed and then asks for."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "").removeprefix("gw")
    count = os.environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    if not (worker.isdigit() and count.isdigit() and int(count) > 0):
        return list(range(FRESH_SLOTS))
    start = int(worker) * FRESH_SLOTS // int(count) % FRESH_SLOTS
    return [*range(start, FRESH_SLOTS), *range(start)]


def _run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise BuildToolsError(
            f"{' '.join(cmd)} failed: {(done.stderr or done.stdout).strip()}",
            "run as root on a Linux host with iproute2 and iptables (bash scripts/setup)",
        )
    return done


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


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
    """

    root: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "lbt-fresh")
    slot: int = -1
    process: subprocess.Popen | None = None
    remote: bool = False
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
            return f"tcp://{self.engine_address}:{REMOTE_PORT}"
        return f"unix://{self.dir}/docker.sock"

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
        return docker.DockerClient(base_url=self.host, timeout=timeout)

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
            self._cleanup()  # a crashed owner's leftovers, if any
            routes = json.loads(_run("ip", "-j", "-4", "route", "show").stdout or "[]")
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
        network = self._remote_network() if self.remote else self._local_network()
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

    def _remote_network(self) -> list[str]:
        """The namespace, the veth pair and the host's forwarding rules for a remote engine;
        returns how to start dockerd in that namespace.

        ``nsenter --net``, not ``ip netns exec``: the latter also remounts /sys, and dockerd
        then finds no devices cgroup. Inside, the engine keeps its own iptables rules and
        docker0, so nothing clashes with the host's engine; the host only forwards and
        masquerades the /30, so its containers reach the Debian mirror."""
        peer, link = f"{self.name}n", f"/{self.link.prefixlen}"
        _run("ip", "netns", "add", self.name)
        _run("ip", "link", "add", self.veth, "type", "veth", "peer", "name", peer)
        _run("ip", "link", "set", peer, "netns", self.name)
        _run("ip", "addr", "add", self.host_address + link, "dev", self.veth)
        _run("ip", "link", "set", self.veth, "up")
        inside = ("ip", "-n", self.name)
        _run(*inside, "addr", "add", self.engine_address + link, "dev", peer)
        _run(*inside, "link", "set", peer, "up")
        _run(*inside, "link", "set", "lo", "up")
        _run(*inside, "route", "add", "default", "via", self.host_address)
        self._forward(str(self.link))
        return [
            "nsenter",
            f"--net={self.netns}",
            "dockerd",
            f"--host={self.host}",
            # Plain TCP as dind with DOCKER_TLS_CERTDIR="" (said explicitly: no TLS warning wait).
            "--tls=false",
            # Any port on the host's end: the test's registry picks its port after we start.
            f"--insecure-registry={self.host_address}/32",
        ]

    def _local_network(self) -> list[str]:
        """The bridge and the host's forwarding rules for a local engine; returns how to start
        dockerd on them."""
        _run("ip", "link", "add", self.name, "type", "bridge")
        _run("ip", "addr", "add", self.bridge_address, "dev", self.name)
        _run("ip", "link", "set", self.name, "up")
        # The whole slot, not only the bridge: user-defined networks get bridges of their own.
        self._forward(str(self.network))
        return [
            "dockerd",
            f"--host={self.host}",
            f"--bridge={self.name}",
            "--iptables=false",
            "--ip-masq=false",
            f"--default-address-pool=base={self.pool},size=24",
        ]

    def _forward(self, net: str) -> None:
        """Forward and masquerade ``net`` on the host, each rule carrying the slot's name."""
        mark = ["-m", "comment", "--comment", self.name]
        _run("iptables", "-I", "FORWARD", "-s", net, *mark, "-j", "ACCEPT")
        _run(
            "iptables", "-I", "FORWARD", "-d", net, "-m", "conntrack",
            "--ctstate", "RELATED,ESTABLISHED", *mark, "-j", "ACCEPT",
        )  # fmt: skip
        _run(
            "iptables", "-t", "nat", "-I", "POSTROUTING", "-s", net, "!", "-d", net,
            *mark, "-j", "MASQUERADE",
        )  # fmt: skip

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
        self._cleanup()
        self._release()

    def _release(self) -> None:
        if self._lock:
            self._lock.close()
        self._lock, self.slot, self.process = None, -1, None

    def _cleanup(self) -> None:
        """Remove what an engine in this slot left: processes, mounts, host network, files."""
        dockerd = self.dir / "dockerd.pid"
        pid = int(dockerd.read_text() or 0) if dockerd.exists() else 0
        if pid and f"{self.dir}/" in " ".join(_cmdline(pid)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 20
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.1)
        # containerd and its shims name our directory; container processes are in our cgroup;
        # docker-proxy names a container address of ours.
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            args = _cmdline(int(entry.name))
            program = Path(args[0]).name if args else ""
            ours = program in ENGINE_PROGRAMS and any(f"{self.dir}/" in arg for arg in args)
            if not ours and program == "docker-proxy" and "-container-ip" in args:
                ip = args[args.index("-container-ip") + 1]
                ours = ipaddress.ip_address(ip) in self.network
            if not ours:
                with contextlib.suppress(OSError):
                    ours = f"/{self.name}/" in (entry / "cgroup").read_text()
            if ours:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(entry.name), signal.SIGKILL)
        # A remote engine's namespace: whatever still runs in it (docker-proxy, a dockerd whose
        # pid file is gone), then the namespace itself and the veth pair (one end deletes both).
        if self.netns.exists():
            for pid in _run("ip", "netns", "pids", self.name, check=False).stdout.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            _run("ip", "netns", "del", self.name, check=False)
        if Path(f"/sys/class/net/{self.veth}").exists():
            _run("ip", "link", "del", self.veth, check=False)
        for mount in sorted(self._mounts(), reverse=True):
            _run("umount", "-l", mount, check=False)
        if self._mounts():  # rmtree below would delete through them
            raise BuildToolsError(
                f"mounts under {self.dir} do not go away", f"unmount them: umount -R {self.dir}"
            )
        for table, chain in (("filter", "FORWARD"), ("nat", "POSTROUTING")):
            for rule in _run("iptables", "-t", table, "-S", chain).stdout.splitlines():
                if f"--comment {self.name} " in f"{rule} " and rule.startswith("-A "):
                    _run("iptables", "-t", table, "-D", *shlex.split(rule)[1:])
        # Ours by address: the engine's user-defined networks have bridges of their own.
        for link in json.loads(_run("ip", "-j", "-4", "addr", "show", "type", "bridge").stdout):
            addresses = [a["local"] for a in link.get("addr_info", []) if "local" in a]
            if any(ipaddress.ip_address(a) in self.network for a in addresses):
                _run("ip", "link", "del", link["ifname"], check=False)
        if Path(f"/sys/class/net/{self.name}").exists():  # ours by name, with or without address
            _run("ip", "link", "del", self.name)
        shutil.rmtree(self.dir, ignore_errors=True)
        cgroups = Path("/sys/fs/cgroup")  # v2: one tree; v1: one per controller
        for cgroup in [cgroups / self.name, *cgroups.glob(f"*/{self.name}")]:
            if not cgroup.is_dir():
                continue
            for sub in sorted(cgroup.rglob("*"), reverse=True):
                if sub.is_dir():
                    with contextlib.suppress(OSError):
                        sub.rmdir()
            with contextlib.suppress(OSError):
                cgroup.rmdir()

    def _mounts(self) -> list[str]:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
        return [
            mount
            for mount in (line.split()[4] for line in lines)
            if mount == str(self.dir) or mount.startswith(f"{self.dir}/")
        ]

    def __enter__(self) -> FreshEngine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
