"""The host side of a FreshEngine: its slot (a name and an address range of its own), the network
namespace, bridge and forwarding rules it needs, a TLS engine's certificates, and removing all of
it again, also after a crashed run. Functions of the engine: fresh.py keeps its lifecycle.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from buildtools.errors import BuildToolsError

if TYPE_CHECKING:
    from testbed.fresh import FreshEngine

# Everything a FreshEngine makes is named FRESH_PREFIX<slot>: its bridge, the comment on its
# iptables rules, its directory and its containers' cgroup. A crashed run's leftovers are found
# (and removed) by that name alone. Slots live in FRESH_NETWORK, one /19 each: the default
# bridge's /24, then a /20 pool for user-defined networks.
FRESH_PREFIX = "lbtfresh"
FRESH_NETWORK = ipaddress.IPv4Network("10.213.0.0/16")
FRESH_SLOTS = 8
# A remote FreshEngine: where `ip netns add` puts its namespace, and its API ports (dind's:
# plain TCP, and TLS with client certificates).
NETNS_DIR = Path("/var/run/netns")
REMOTE_PORT = 2375
REMOTE_TLS_PORT = 2376
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


def run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """A host command (ip, iptables, openssl); a failure is one line saying what it needs."""
    done = subprocess.run(cmd, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise BuildToolsError(
            f"{' '.join(cmd)} failed: {(done.stderr or done.stdout).strip()}",
            "run as root on a Linux host with iproute2 and iptables (bash scripts/setup)",
        )
    return done


def cmdline(pid: int) -> list[str]:
    """A process's arguments, or none once it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def remote_network(engine: FreshEngine) -> list[str]:
    """The namespace, the veth pair and the host's forwarding rules for a remote engine;
    returns how to start dockerd in that namespace.

    ``nsenter --net``, not ``ip netns exec``: the latter also remounts /sys, and dockerd
    then finds no devices cgroup. Inside, the engine keeps its own iptables rules and
    docker0, so nothing clashes with the host's engine; the host only forwards and
    masquerades the /30, so its containers reach the Debian mirror."""
    peer, link = f"{engine.name}n", f"/{engine.link.prefixlen}"
    run("ip", "netns", "add", engine.name)
    run("ip", "link", "add", engine.veth, "type", "veth", "peer", "name", peer)
    run("ip", "link", "set", peer, "netns", engine.name)
    run("ip", "addr", "add", engine.host_address + link, "dev", engine.veth)
    run("ip", "link", "set", engine.veth, "up")
    inside = ("ip", "-n", engine.name)
    run(*inside, "addr", "add", engine.engine_address + link, "dev", peer)
    run(*inside, "link", "set", peer, "up")
    run(*inside, "link", "set", "lo", "up")
    run(*inside, "route", "add", "default", "via", engine.host_address)
    forward(engine, str(engine.link))
    return [
        "nsenter",
        f"--net={engine.netns}",
        "dockerd",
        f"--host={engine.host}",
        *tls_flags(engine),
        # Any port on the host's end: the test's registry picks its port after we start.
        f"--insecure-registry={engine.host_address}/32",
    ]


def tls_flags(engine: FreshEngine) -> list[str]:
    """dockerd's TLS flags: plain TCP as dind with DOCKER_TLS_CERTDIR="" (said explicitly:
    no TLS warning wait), or client certificates required, from a CA made for this run."""
    if not engine.tls:
        return ["--tls=false"]
    server = make_certificates(engine)
    return [
        "--tlsverify",
        f"--tlscacert={server / 'ca.pem'}",
        f"--tlscert={server / 'cert.pem'}",
        f"--tlskey={server / 'key.pem'}",
    ]


def make_certificates(engine: FreshEngine) -> Path:
    """A CA, a server certificate for the engine's address and a client certificate, as
    dind makes them at start (``certs/server``, ``certs/client``); returns the server's."""
    certs = engine.dir / "certs"
    server, client = certs / "server", engine.cert_path
    for path in (certs, server, client):
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    ca_key, ca = certs / "ca-key.pem", certs / "ca.pem"
    run("openssl", "req", "-x509", "-new", *ec, "-keyout", str(ca_key), "-out", str(ca),
        "-days", "2", "-subj", f"/CN={engine.name} test CA")  # fmt: skip
    for where, name, usage in (
        (
            server,
            "docker",
            [f"subjectAltName=IP:{engine.engine_address}", "extendedKeyUsage=serverAuth"],
        ),
        (client, "client", ["extendedKeyUsage=clientAuth"]),
    ):
        (where / "ext.cnf").write_text("".join(f"{line}\n" for line in usage))
        run("openssl", "req", "-new", *ec, "-keyout", str(where / "key.pem"),
            "-out", str(where / "req.pem"), "-subj", f"/CN={name}")  # fmt: skip
        run("openssl", "x509", "-req", "-in", str(where / "req.pem"), "-CA", str(ca),
            "-CAkey", str(ca_key), "-CAcreateserial", "-days", "2",
            "-extfile", str(where / "ext.cnf"), "-out", str(where / "cert.pem"))  # fmt: skip
        shutil.copy(ca, where / "ca.pem")
    return server


def local_network(engine: FreshEngine) -> list[str]:
    """The bridge and the host's forwarding rules for a local engine; returns how to start
    dockerd on them."""
    run("ip", "link", "add", engine.name, "type", "bridge")
    run("ip", "addr", "add", engine.bridge_address, "dev", engine.name)
    run("ip", "link", "set", engine.name, "up")
    # The whole slot, not only the bridge: user-defined networks get bridges of their own.
    forward(engine, str(engine.network))
    return [
        "dockerd",
        f"--host={engine.host}",
        f"--bridge={engine.name}",
        "--iptables=false",
        "--ip-masq=false",
        f"--default-address-pool=base={engine.pool},size=24",
    ]


def forward(engine: FreshEngine, net: str) -> None:
    """Forward and masquerade ``net`` on the host, each rule carrying the slot's name."""
    mark = ["-m", "comment", "--comment", engine.name]
    run("iptables", "-I", "FORWARD", "-s", net, *mark, "-j", "ACCEPT")
    run(
        "iptables", "-I", "FORWARD", "-d", net, "-m", "conntrack",
        "--ctstate", "RELATED,ESTABLISHED", *mark, "-j", "ACCEPT",
    )  # fmt: skip
    run(
        "iptables", "-t", "nat", "-I", "POSTROUTING", "-s", net, "!", "-d", net,
        *mark, "-j", "MASQUERADE",
    )  # fmt: skip


def cleanup(engine: FreshEngine) -> None:
    """Remove what an engine in this slot left: processes, mounts, host network, files."""
    dockerd = engine.dir / "dockerd.pid"
    pid = int(dockerd.read_text() or 0) if dockerd.exists() else 0
    if pid and f"{engine.dir}/" in " ".join(cmdline(pid)):
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
        args = cmdline(int(entry.name))
        program = Path(args[0]).name if args else ""
        ours = program in ENGINE_PROGRAMS and any(f"{engine.dir}/" in arg for arg in args)
        if not ours and program == "docker-proxy" and "-container-ip" in args:
            ip = args[args.index("-container-ip") + 1]
            ours = ipaddress.ip_address(ip) in engine.network
        if not ours:
            with contextlib.suppress(OSError):
                ours = f"/{engine.name}/" in (entry / "cgroup").read_text()
        if ours:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)
    # A remote engine's namespace: whatever still runs in it (docker-proxy, a dockerd whose
    # pid file is gone), then the namespace itself and the veth pair (one end deletes both).
    if engine.netns.exists():
        for pid in run("ip", "netns", "pids", engine.name, check=False).stdout.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        run("ip", "netns", "del", engine.name, check=False)
    if Path(f"/sys/class/net/{engine.veth}").exists():
        run("ip", "link", "del", engine.veth, check=False)
    for mount in sorted(mounts(engine), reverse=True):
        run("umount", "-l", mount, check=False)
    if mounts(engine):  # rmtree below would delete through them
        raise BuildToolsError(
            f"mounts under {engine.dir} do not go away", f"unmount them: umount -R {engine.dir}"
        )
    for table, chain in (("filter", "FORWARD"), ("nat", "POSTROUTING")):
        for rule in run("iptables", "-t", table, "-S", chain).stdout.splitlines():
            if f"--comment {engine.name} " in f"{rule} " and rule.startswith("-A "):
                run("iptables", "-t", table, "-D", *shlex.split(rule)[1:])
    # Ours by address: the engine's user-defined networks have bridges of their own.
    for link in json.loads(run("ip", "-j", "-4", "addr", "show", "type", "bridge").stdout):
        addresses = [a["local"] for a in link.get("addr_info", []) if "local" in a]
        if any(ipaddress.ip_address(a) in engine.network for a in addresses):
            run("ip", "link", "del", link["ifname"], check=False)
    if Path(f"/sys/class/net/{engine.name}").exists():  # ours by name, with or without address
        run("ip", "link", "del", engine.name)
    shutil.rmtree(engine.dir, ignore_errors=True)
    cgroups = Path("/sys/fs/cgroup")  # v2: one tree; v1: one per controller
    for cgroup in [cgroups / engine.name, *cgroups.glob(f"*/{engine.name}")]:
        if not cgroup.is_dir():
            continue
        for sub in sorted(cgroup.rglob("*"), reverse=True):
            if sub.is_dir():
                with contextlib.suppress(OSError):
                    sub.rmdir()
        with contextlib.suppress(OSError):
            cgroup.rmdir()


def mounts(engine: FreshEngine) -> list[str]:
    """What is mounted at or under the engine's directory."""
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    return [
        mount
        for mount in (line.split()[4] for line in lines)
        if mount == str(engine.dir) or mount.startswith(f"{engine.dir}/")
    ]
