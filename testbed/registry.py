"""A real docker-registry with htpasswd auth, for tests and benchmarks of releases."""

from __future__ import annotations

import contextlib
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
import yaml

from buildtools.engine.bases import apt_install
from buildtools.engine.ports import free_port
from buildtools.errors import BuildToolsError


@dataclass
class LocalRegistry:
    """Debian's docker-registry (CNCF distribution) on 127.0.0.1 with htpasswd auth.

    The password is generated per run and only ever stored as a bcrypt hash on disk.
    ``address`` puts it elsewhere on this machine: a remote test engine cannot reach the
    host's loopback, so its registry listens on the host's end of that engine's link
    (:attr:`testbed.FreshEngine.host_address`), which the tests reach too.
    """

    root: Path
    address: str = "127.0.0.1"
    port: int = 0  # 0: a free one on ``address``
    username: str = field(default_factory=lambda: "ci-" + secrets.token_hex(4))
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    process: subprocess.Popen | None = None
    chosen_port: bool = False  # the port was free_port's: another may be tried
    # storage.delete.enabled: False makes a registry that refuses deletes (405 UNSUPPORTED).
    delete: bool = True

    def __post_init__(self) -> None:
        if not self.port:
            self.port, self.chosen_port = free_port(self.address), True

    @property
    def realm(self) -> str:
        return f"lara-buildtools-{self.username}"

    @property
    def host(self) -> str:
        return f"{self.address}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self, wait: float = 30.0) -> LocalRegistry:
        """Start it; a port of free_port's that someone else bound first (a registry of a
        parallel test, between free_port and our bind) is given up for another."""
        for _ in range(3):
            if self._start(wait):
                return self
            if not self.chosen_port or self.process is None or self.process.poll() is None:
                break
            self.port = free_port(self.address)
        self.stop()
        raise BuildToolsError(
            f"docker-registry did not start on {self.host}",
            f"see its log in {self.root / 'registry.log'}",
        )

    def _start(self, wait: float) -> bool:
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
                "delete": {"enabled": self.delete},
            },
            "http": {"addr": self.host, "secret": secrets.token_hex(16)},
            # A realm of its own: a 401 naming it is this registry answering on the port, not
            # another one that bound it first.
            "auth": {"htpasswd": {"realm": self.realm, "path": str(htpasswd)}},
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
        log.close()
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and self.process.poll() is None:
            with contextlib.suppress(requests.exceptions.ConnectionError):
                answer = requests.get(f"{self.url}/v2/", timeout=2)
                if self.realm in answer.headers.get("WWW-Authenticate", ""):
                    return True
            time.sleep(0.05)
        return False

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
