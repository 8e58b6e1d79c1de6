"""The main Docker Engine for tests, benchmarks and ``scripts/setup``: the one that answers, or
Debian's dockerd started when none does. FreshEngine, a second, empty one, is in fresh.py."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import docker
import docker.errors

from buildtools.engine.bases import apt_install, can_install
from buildtools.engine.connect import connect
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
