"""wrk, the HTTP load generator of case 3: its command, its report, and a small image to run
it inside the servers' Docker network."""

from __future__ import annotations

import io
import re
import subprocess
from typing import Any

import docker
import docker.errors

from benchmarks.harness import Bench
from buildtools.errors import BuildToolsError

WRK_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
WRK_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
WRK_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


def parse_wrk(output: str) -> float:
    """Requests/s from wrk's report; raises when any response was not 2xx or a socket failed."""
    rate = WRK_RATE.search(output)
    if not rate:
        raise BuildToolsError(f"wrk printed no Requests/sec: {output.strip()[-300:]}", "see wrk")
    bad = WRK_NON_2XX.search(output)
    if bad and int(bad[1]):
        raise BuildToolsError(f"wrk got {bad[1]} non-2xx responses", "check the target URL")
    errors = WRK_ERRORS.search(output)
    if errors and any(int(e) for e in errors.groups()[:3]):
        raise BuildToolsError(f"wrk socket errors: {errors[0]}", "check the target")
    return float(rate[1])


def wrk_command(url: str, duration: int, threads: int = 2, connections: int = 32) -> list[str]:
    return ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", url]


def wrk(url: str, duration: int) -> float:
    """wrk on the host: to a published port, so through docker-proxy."""
    cmd = wrk_command(url, duration)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    if done.returncode != 0:
        raise BuildToolsError(f"wrk failed: {done.stderr.strip()[-300:]}", "see wrk's message")
    return parse_wrk(done.stdout)


def wrk_inside(container: Any, url: str, duration: int) -> float:
    """wrk in a container on the servers' Docker network: no docker-proxy in the path."""
    code, out = container.exec_run(wrk_command(url, duration))
    text = out.decode(errors="replace")
    if code != 0:
        raise BuildToolsError(f"wrk in {container.name} failed: {text.strip()[-300:]}", "")
    return parse_wrk(text)


WRK_DOCKERFILE = """\
# `invoke bench`: Debian's wrk, to load the servers from inside their Docker network.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update && apt-get install -y --no-install-recommends wrk \\
    && rm -rf /var/lib/apt/lists/*
"""


def wrk_image(bench: Bench) -> str:
    """A small image FROM the local base with Debian's wrk (the host's wrk is the same package)."""
    try:
        image, _ = bench.client.images.build(
            fileobj=io.BytesIO(WRK_DOCKERFILE.encode()),
            tag=f"{bench.prefix}/wrk:bench",
            buildargs={"BASE_IMAGE": bench.settings.app.base_image},
            rm=True,
            forcerm=True,
        )
    except docker.errors.BuildError as exc:
        raise BuildToolsError(f"the wrk image did not build: {exc.msg}", "") from exc
    bench.built.append(image.id)
    return image.id
