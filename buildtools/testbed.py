"""Real parts for tests, benchmarks and the quickstart: a Docker Engine, base images, a registry.

Docker Hub is not reachable on our CI machines, so base images are made locally from a
debootstrapped Debian, using the mirror the machine's own apt already uses. Run by hand with
``python -m buildtools.testbed engine|bases|registry``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
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


def ensure_base_image(
    client: docker.DockerClient, repository: str, suite: str | None = None
) -> str:
    """A minimal Debian image, debootstrapped once per machine, tagged ``repository:suite``
    and ``repository:latest``; returns the former."""
    mirror, host_suite = apt_mirror()
    suite = suite or host_suite
    ref = f"{repository}:{suite}"
    try:
        image = client.images.get(ref)
    except docker.errors.ImageNotFound:
        image = client.images.get(_debootstrap(client, repository, suite, mirror))
    # `:latest` is what invoke.yaml names, whatever the host's suite (bookworm, trixie, ...).
    image.tag(repository, "latest")
    return ref


def _debootstrap(client: docker.DockerClient, repository: str, suite: str, mirror: str) -> str:
    ref = f"{repository}:{suite}"
    if not shutil.which("debootstrap"):
        apt_install("debootstrap")
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
        tarball = Path(tmp, "rootfs.tar")
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], check=True)
        client.api.import_image_from_file(
            str(tarball),
            repository=repository,
            tag=suite,
            changes=['CMD ["bash"]', f'LABEL org.opencontainers.image.source="{mirror}"'],
        )
    return ref


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


def main(argv: list[str]) -> int:
    what = argv[0] if argv else "bases"
    try:
        client = ensure_engine()
        if what == "engine":
            print(f"Docker Engine {client.version()['Version']} answers")
        elif what == "bases":
            print(ensure_base_image(client, argv[1] if len(argv) > 1 else "lara-buildtools/debian"))
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
            print("usage: python -m buildtools.testbed engine|bases [REPOSITORY]|registry")
            return 2
    except BuildToolsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
