"""Real parts for tests, benchmarks and the quickstart: a Docker Engine, base images, a registry.

Docker Hub is not reachable on our CI machines, so base images are made locally from a
debootstrapped Debian, using the mirror the machine's own apt already uses. A FreshEngine is a
second, empty dockerd for what must start from nothing. Run by hand with
``python -m buildtools.testbed engine|bases|registry|fresh``.
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import ipaddress
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import docker.models.images
import requests
import yaml

from buildtools.errors import BuildToolsError

DOCKERD_LOG = Path(tempfile.gettempdir()) / "lara-buildtools-dockerd.log"


def _can_install() -> bool:
    debian = Path("/etc/debian_version").exists() and bool(shutil.which("apt-get"))
    return os.geteuid() == 0 and debian


def apt_install(*packages: str) -> None:
    """Install Debian packages (root on Debian only); says which packages when it cannot."""
    if not _can_install():
        raise BuildToolsError(
            f"missing Debian packages: {' '.join(packages)}",
            f"run as root on Debian, or install them: sudo apt-get install {' '.join(packages)}",
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *packages]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            tail = done.stderr.strip().splitlines()[-1:] or ["(no output)"]
            raise BuildToolsError(
                f"{' '.join(cmd)} failed: {tail[0]}", "check the apt sources and network"
            )


def _client() -> docker.DockerClient | None:
    """A client whose engine answers, or None (docker.from_env already talks to the engine)."""
    try:
        client = docker.from_env(timeout=300)
        return client if client.ping() else None
    except (docker.errors.DockerException, requests.exceptions.RequestException):
        return None


def ensure_engine(wait: float = 60.0) -> docker.DockerClient:
    """Return a client for a Docker Engine that answers, starting Debian's dockerd if needed."""
    client = _client()
    if client:
        return client
    if os.environ.get("DOCKER_HOST"):
        raise BuildToolsError(
            f"no Docker Engine answers at DOCKER_HOST={os.environ['DOCKER_HOST']}",
            "start that engine, or unset DOCKER_HOST to use a local dockerd",
        )
    if not shutil.which("dockerd"):
        apt_install("docker.io")
    if not _can_install():
        raise BuildToolsError(
            "no Docker Engine answers at /var/run/docker.sock",
            "start one: sudo dockerd & (Debian package docker.io)",
        )
    with DOCKERD_LOG.open("ab") as log:
        subprocess.Popen(
            ["dockerd"], stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True
        )
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        client = _client()
        if client:
            return client
        time.sleep(0.5)
    raise BuildToolsError(
        f"dockerd did not answer within {wait:.0f}s", f"see its log in {DOCKERD_LOG}"
    )


def apt_mirror() -> tuple[str, str]:
    """The (mirror URL, suite) of the machine's main Debian archive, as apt itself sees them."""
    out = subprocess.run(
        ["apt-get", "indextargets", "--format", "$(REPO_URI) $(RELEASE) $(TARGET_OF)"],
        capture_output=True,
        text=True,
    ).stdout
    for line in out.splitlines():
        parts = line.split()
        # The main suite ("bookworm"), not "-updates"/"-security", from a plain deb source.
        if len(parts) == 3 and parts[2] == "deb" and "-" not in parts[1] and "/" not in parts[1]:
            return parts[0].rstrip("/"), parts[1]
    raise BuildToolsError(
        "no Debian mirror found in this machine's apt sources",
        "add a deb line for a Debian mirror to /etc/apt/sources.list, or pass a base image",
    )


# Bump when the recipe below changes: a tagged base without this number is rebuilt and retagged.
BASE_RECIPE = 2
RECIPE_LABEL = "org.concord.lara.bases.recipe"

# Debian's slim images drop documentation, manuals and translations, from the rootfs and from
# every later `apt-get install` (dpkg path-exclude): nothing in a container reads them.
SLIM_EXCLUDES = (
    "/usr/share/doc/*",
    "/usr/share/groff/*",
    "/usr/share/info/*",
    "/usr/share/linda/*",
    "/usr/share/lintian/overrides/*",
    "/usr/share/locale/*",
    "/usr/share/man/*",
)
# Licences must stay, and `locales` needs its alias table if a later image installs it.
SLIM_INCLUDES = ("/usr/share/doc/*/copyright", "/usr/share/locale/locale.alias")

# Files the base adds to the rootfs, with why in each file for whoever finds them in an image.
BASE_FILES = {
    "etc/dpkg/dpkg.cfg.d/lara-slim": (
        "# lara-buildtools: no docs, manuals or translations in images (as Debian's slim images)\n"
        + "".join(f"path-exclude {p}\n" for p in SLIM_EXCLUDES)
        + "".join(f"path-include {p}\n" for p in SLIM_INCLUDES)
    ),
    "etc/dpkg/dpkg.cfg.d/lara-unsafe-io": (
        "# lara-buildtools: image builds are redone from scratch after a crash; skip fsync\n"
        "force-unsafe-io\n"
    ),
    "etc/apt/apt.conf.d/lara-clean": (
        "// lara-buildtools: every build step is a layer, so apt caches would only bloat it.\n"
        'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb '
        '/var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
        'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb '
        '/var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
        'Dir::Cache::pkgcache "";\n'
        'Dir::Cache::srcpkgcache "";\n'
    ),
    "etc/apt/apt.conf.d/lara-lean": (
        "// lara-buildtools: small layers. Compressed indexes, no translations, only what a\n"
        "// Dockerfile names (plus its dependencies), and autoremove takes what it pulled in.\n"
        'Acquire::GzipIndexes "true";\n'
        'Acquire::Languages "none";\n'
        'APT::Install-Recommends "false";\n'
        'APT::Install-Suggests "false";\n'
        'APT::AutoRemove::SuggestsImportant "false";\n'
    ),
    # Services must not start inside `docker build` (nginx, mariadb-server postinst scripts).
    "usr/sbin/policy-rc.d": "#!/bin/sh\n# lara-buildtools: no services in builds\nexit 101\n",
}

# Left by debootstrap and apt, useless (or host-specific) in an image; the directories stay.
ROOTFS_LITTER = (
    "var/lib/apt/lists/*",
    "var/cache/apt/*.bin",
    "var/cache/apt/archives/*.deb",
    "var/cache/apt/archives/partial/*",
    "var/cache/debconf/*-old",
    "var/lib/dpkg/*-old",
    "var/cache/ldconfig/aux-cache",
    "var/log/**/*",
    "run/mount/utab",
    "tmp/*",
    "var/tmp/*",
)


def ensure_base_image(
    client: docker.DockerClient, repository: str, suite: str | None = None
) -> str:
    """A slim Debian image, debootstrapped once per machine, tagged ``repository:suite``
    and ``repository:latest``; returns the former. A base made by an older recipe is remade."""
    mirror, host_suite = apt_mirror()
    suite = suite or host_suite
    ref = f"{repository}:{suite}"
    try:
        image = client.images.get(ref)
        if not base_is_current(image):
            print(
                f"bases: {ref} ({image.id[7:19]}) is from an older recipe, remaking it;"
                " `docker image prune` frees the old one once nothing uses it",
                file=sys.stderr,
            )
            image = client.images.get(_debootstrap(client, repository, suite, mirror))
    except docker.errors.ImageNotFound:
        image = client.images.get(_debootstrap(client, repository, suite, mirror))
    # `:latest` is what invoke.yaml names, whatever the host's suite (bookworm, trixie, ...).
    image.tag(repository, "latest")
    return ref


def base_is_current(image: docker.models.images.Image) -> bool:
    """Whether a tagged base was made by this recipe (older ones lack the label or differ)."""
    return image.labels.get(RECIPE_LABEL) == str(BASE_RECIPE)


def _debootstrap(client: docker.DockerClient, repository: str, suite: str, mirror: str) -> str:
    """debootstrap, slim down and import; prints how long it took (it is the slow part)."""
    ref = f"{repository}:{suite}"
    if not shutil.which("debootstrap"):
        apt_install("debootstrap")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lara-bases-") as tmp:
        rootfs = Path(tmp, "rootfs")
        done = subprocess.run(
            ["debootstrap", "--variant=minbase", suite, str(rootfs), mirror],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).strip().splitlines()[-1:] or ["(no output)"]
            raise BuildToolsError(
                f"debootstrap {suite} from {mirror} failed: {tail[0]}",
                "check that the mirror in the apt sources answers",
            )
        bootstrapped = time.monotonic()
        slimify(rootfs)
        tarball = Path(tmp, "rootfs.tar")
        # /dev, /proc and /sys are the engine's to provide in every container.
        subprocess.run(
            [
                "tar",
                "-C",
                str(rootfs),
                "--numeric-owner",
                "--exclude=./dev/*",
                "--exclude=./proc/*",
                "--exclude=./sys/*",
                "-cf",
                str(tarball),
                ".",
            ],
            check=True,
        )
        client.api.import_image_from_file(
            str(tarball),
            repository=repository,
            tag=suite,
            changes=[
                'CMD ["bash"]',
                f'LABEL org.opencontainers.image.source="{mirror}"',
                f'LABEL {RECIPE_LABEL}="{BASE_RECIPE}"',
            ],
        )
    size = client.images.get(ref).attrs["Size"] / 1e6
    print(
        f"bases: made {ref} ({size:.0f} MB): debootstrap {bootstrapped - started:.0f} s,"
        f" slim and import {time.monotonic() - bootstrapped:.0f} s",
        file=sys.stderr,
    )
    return ref


def _matches(path: str, patterns: tuple[str, ...]) -> bool:
    # dpkg's globs: `*` also matches `/`, which fnmatchcase does too.
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in patterns)


def slimify(rootfs: Path) -> None:
    """Make a debootstrapped rootfs as lean as Debian's slim images, and keep later installs so."""
    for name, text in BASE_FILES.items():
        _replace(rootfs / name, text, 0o755 if name.startswith("usr/sbin/") else 0o644)
    # What dpkg would not have unpacked under the rules above.
    for top in {p.split("/*")[0] for p in SLIM_EXCLUDES}:
        base = rootfs / top.lstrip("/")
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*"), reverse=True):  # children before their directory
            inside = "/" + str(path.relative_to(rootfs))
            if path.is_dir() and not path.is_symlink():
                with contextlib.suppress(OSError):
                    path.rmdir()  # only if it is empty now
            elif _matches(inside, SLIM_EXCLUDES) and not _matches(inside, SLIM_INCLUDES):
                path.unlink()
    for pattern in ROOTFS_LITTER:
        for path in rootfs.glob(pattern):
            if path.is_file() or path.is_symlink():
                path.unlink()
            elif path.is_dir() and pattern in ("tmp/*", "var/tmp/*"):
                shutil.rmtree(path)
    # debootstrap copies the host's; the engine mounts its own into every container.
    for name in ("etc/resolv.conf", "etc/hostname"):
        _replace(rootfs / name, "", 0o644)


def _replace(path: Path, text: str, mode: int) -> None:
    # Never write through a symlink: in a rootfs, an absolute one points into the host.
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    path.write_text(text)
    path.chmod(mode)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LocalRegistry:
    """Debian's docker-registry (CNCF distribution) on 127.0.0.1 with htpasswd auth.

    The password is generated per run and only ever stored as a bcrypt hash on disk.
    """

    root: Path
    port: int = field(default_factory=free_port)
    username: str = field(default_factory=lambda: "ci-" + secrets.token_hex(4))
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    process: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self, wait: float = 30.0) -> LocalRegistry:
        import bcrypt  # test extra: only the testbed makes htpasswd files

        if not shutil.which("docker-registry"):
            apt_install("docker-registry")
        self.root.mkdir(parents=True, exist_ok=True)
        # Cost 4: a throwaway per-run password; the default cost adds ~0.3 s to every request.
        digest = bcrypt.hashpw(self.password.encode(), bcrypt.gensalt(rounds=4)).decode()
        htpasswd = self.root / "htpasswd"
        htpasswd.write_text(f"{self.username}:{digest}\n")
        config = {
            "version": 0.1,
            "log": {"level": "warn"},
            "storage": {
                "filesystem": {"rootdirectory": str(self.root / "data")},
                "delete": {"enabled": True},
            },
            "http": {"addr": self.host, "secret": secrets.token_hex(16)},
            "auth": {"htpasswd": {"realm": "lara-buildtools", "path": str(htpasswd)}},
        }
        config_file = self.root / "config.yml"
        config_file.write_text(yaml.safe_dump(config))
        log = (self.root / "registry.log").open("ab")
        self.process = subprocess.Popen(
            ["docker-registry", "serve", str(config_file)],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if requests.get(f"{self.url}/v2/", timeout=2).status_code == 401:
                    return self
            except requests.exceptions.ConnectionError:
                time.sleep(0.2)
        self.stop()
        raise BuildToolsError(
            f"docker-registry did not start on {self.host}",
            f"see its log in {self.root / 'registry.log'}",
        )

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def tags(self, repository: str) -> list[str]:
        """Tags of a repository, read through the registry's HTTP API."""
        resp = requests.get(
            f"{self.url}/v2/{repository}/tags/list",
            auth=(self.username, self.password),
            timeout=10,
        )
        if resp.status_code == 404:
            return []
        resp.raise_for_status()
        return sorted(resp.json().get("tags") or [])


# Everything a FreshEngine makes is named FRESH_PREFIX<slot>: its bridge, the comment on its
# iptables rules, its directory and its containers' cgroup. A crashed run's leftovers are found
# (and removed) by that name alone. Slots live in FRESH_NETWORK, one /19 each: the default
# bridge's /24, then a /20 pool for user-defined networks.
FRESH_PREFIX = "lbtfresh"
FRESH_NETWORK = ipaddress.IPv4Network("10.213.0.0/16")
FRESH_SLOTS = 8
# The processes of an engine that may outlive a crashed run.
ENGINE_PROGRAMS = {"dockerd", "containerd", "containerd-shim", "containerd-shim-runc-v2"}


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
    """

    root: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "lbt-fresh")
    slot: int = -1
    process: subprocess.Popen | None = None
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
        return f"unix://{self.dir}/docker.sock"

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
        for tool in ("dockerd", "ip", "iptables"):
            if not shutil.which(tool):
                raise BuildToolsError(
                    f"a fresh Docker Engine needs {tool}, which is not installed",
                    "bash scripts/setup installs docker.io, iproute2 and iptables",
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
        for slot in range(FRESH_SLOTS):
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
            f"no free slot for a fresh Docker Engine in {FRESH_NETWORK}",
            "stop other fresh engines, or free routes in that range",
        )

    def _start(self, wait: float) -> None:
        data, execroot = self.dir / "data", self.dir / "x"
        for path in (data, execroot):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        # An empty config: the main engine's daemon.json (hosts, bridge, data-root) is not ours.
        (self.dir / "daemon.json").write_text("{}\n")
        _run("ip", "link", "add", self.name, "type", "bridge")
        _run("ip", "addr", "add", self.bridge_address, "dev", self.name)
        _run("ip", "link", "set", self.name, "up")
        # The whole slot, not only the bridge: user-defined networks get bridges of their own.
        net, mark = str(self.network), ["-m", "comment", "--comment", self.name]
        _run("iptables", "-I", "FORWARD", "-s", net, *mark, "-j", "ACCEPT")
        _run(
            "iptables", "-I", "FORWARD", "-d", net, "-m", "conntrack",
            "--ctstate", "RELATED,ESTABLISHED", *mark, "-j", "ACCEPT",
        )  # fmt: skip
        _run(
            "iptables", "-t", "nat", "-I", "POSTROUTING", "-s", net, "!", "-d", net,
            *mark, "-j", "MASQUERADE",
        )  # fmt: skip
        log = (self.dir / "dockerd.log").open("ab")
        self.process = subprocess.Popen(
            [
                "dockerd",
                f"--config-file={self.dir / 'daemon.json'}",
                f"--data-root={data}",
                f"--exec-root={execroot}",
                f"--pidfile={self.dir / 'dockerd.pid'}",
                f"--host={self.host}",
                f"--bridge={self.name}",
                "--iptables=false",
                "--ip-masq=false",
                f"--default-address-pool=base={self.pool},size=24",
                # Our own cgroup parent, so a crashed run's containers can be found and killed.
                "--exec-opt=native.cgroupdriver=cgroupfs",
                f"--cgroup-parent=/{self.name}",
                f"--containerd-namespace={self.name}",
                f"--containerd-plugins-namespace={self.name}-plugins",
            ],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
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


SERVICES_DIR = Path(__file__).resolve().parents[1] / "testbed"
SERVICE_REPOSITORY = "lara-buildtools"


def ensure_service_image(client: docker.DockerClient, name: str, base: str) -> str:
    """A service image the example's smoke test needs (``mariadb``), built from
    ``testbed/<name>`` on the local base; cached by the engine, so cheap once built."""
    context = SERVICES_DIR / name
    if not (context / "Dockerfile").is_file():
        raise BuildToolsError(
            f"no service {name!r} in {SERVICES_DIR}", "run this from a lara-buildtools checkout"
        )
    ref = f"{SERVICE_REPOSITORY}/{name}:latest"
    try:
        client.images.build(
            path=str(context), tag=ref, buildargs={"BASE_IMAGE": base}, rm=True, forcerm=True
        )
    except (docker.errors.BuildError, docker.errors.APIError) as exc:
        reason = str(getattr(exc, "msg", None) or exc).splitlines()[-1][:200]
        raise BuildToolsError(
            f"building the {name} service image failed: {reason}",
            f"docker build testbed/{name} by hand to see the whole log",
        ) from None
    return ref


def main(argv: list[str]) -> int:
    what = argv[0] if argv else "bases"
    try:
        client = ensure_engine()
        if what == "engine":
            print(f"Docker Engine {client.version()['Version']} answers")
        elif what == "bases":
            print(ensure_base_image(client, argv[1] if len(argv) > 1 else "lara-buildtools/debian"))
        elif what == "services":
            base = ensure_base_image(client, "lara-buildtools/debian")
            print(ensure_service_image(client, "mariadb", base))
        elif what == "fresh":
            base = ensure_base_image(client, argv[1] if len(argv) > 1 else "lara-buildtools/debian")
            # SIGTERM too must clean up: bridge, iptables rules and files outlive the process;
            # and SIGINT even when started in the background (where it is ignored by default).
            stops = (signal.SIGINT, signal.SIGTERM)
            previous = {sig: signal.signal(sig, signal.default_int_handler) for sig in stops}
            try:
                with FreshEngine() as engine:
                    engine.load(base, source=client)
                    print(f"a fresh engine with only {base}; Ctrl-C stops it", file=sys.stderr)
                    print(f"DOCKER_HOST={engine.host}", flush=True)
                    if engine.process:
                        engine.process.wait()
            except KeyboardInterrupt:
                print("fresh engine stopped and removed", file=sys.stderr)
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
        elif what == "registry":
            reg = LocalRegistry(Path(tempfile.mkdtemp(prefix="lara-registry-"))).start()
            print(f"registry on {reg.url}, user {reg.username}; Ctrl-C stops it")
            print(f"password in {reg.root / 'password'} (mode 600)")
            secret = reg.root / "password"
            secret.touch(mode=0o600)
            secret.write_text(reg.password)
            try:
                reg.process.wait()
            except KeyboardInterrupt:
                reg.stop()
        else:
            print(
                "usage: python -m buildtools.testbed engine|bases [REPOSITORY]|services|registry"
                "|fresh [BASES_REPOSITORY]"
            )
            return 2
    except BuildToolsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
