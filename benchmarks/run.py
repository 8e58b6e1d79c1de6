"""The cases of `invoke bench`, against the real Docker Engine, registry, nginx and git.

Each case returns :class:`~benchmarks.report.Row` objects; :func:`main` runs the chosen cases,
merges them into ``benchmarks/results.json`` and renders ``benchmarks/RESULTS.md``.

Everything made here is named ``lara-bench-<run id>…`` (images, containers, network) or lives
in one temporary directory (git repositories, registries, nginx config), and is removed at the
end, including the image layers the builds made.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import io
import json
import os
import platform
import re
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests

import testbed
from benchmarks.report import (
    TIMES,
    Measure,
    Results,
    Row,
    format_bytes,
    median,
    render_results,
    render_table,
)
from buildtools.config.schema import Settings
from buildtools.engine import build_spec, images
from buildtools.errors import BuildToolsError
from buildtools.facts import buildinfo, read
from buildtools.plan import metadata, push_order
from buildtools.plan.manifests import DOCKER_MANIFEST
from buildtools.release import build as builder
from buildtools.release import pipeline, publish
from buildtools.release.prepare import Options, roles
from buildtools.release.steps import Session

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
RESULTS_MD = HERE / "RESULTS.md"
RESULTS_JSON = HERE / "results.json"
CASES = (1, 2, 3, 4, 5, 6, 7, 8)
LAYER_INSTRUCTIONS = ("RUN", "COPY", "ADD")
METADATA_START = "ARG LARA_VERSION"

if str(ROOT) not in sys.path:  # tests.fixtures.git, when run as a script
    sys.path.insert(0, str(ROOT))


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


# --- the machine -----------------------------------------------------------------------------


def machine(client: docker.DockerClient) -> tuple[str, str]:
    """(short label for the table, full description) of this machine."""
    cpus = os.cpu_count() or 0
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_gib = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        first = Path("/proc/meminfo").read_text().splitlines()[0]
        mem_gib = int(first.split()[1]) / 1024 / 1024
    engine = client.version().get("Version", "?")
    debian = ""
    with contextlib.suppress(OSError):
        debian = f"Debian {Path('/etc/debian_version').read_text().strip()}, "
    wrk = shutil.which("wrk")
    wrk_version = ""
    if wrk:
        done = subprocess.run([wrk, "--version"], capture_output=True, text=True)
        wrk_version = (done.stdout + done.stderr).split("Copyright")[0].strip()
    label = f"{cpus} CPU, {mem_gib:.0f} GiB, Docker {engine.split('+')[0]}"
    full = (
        f"{cpus} x {model}, {mem_gib:.1f} GiB RAM, {debian}Linux {platform.release()}, "
        f"Docker Engine {engine} (classic builder, storage {client.info().get('Driver', '?')}), "
        f"Python {platform.python_version()}, {wrk_version or 'wrk not installed'}"
    )
    return label, full


# --- builds ----------------------------------------------------------------------------------


@dataclasses.dataclass
class Step:
    number: int
    instruction: str
    cached: bool = False
    seconds: float = 0.0
    # FROM, and ARG before the first FROM, make no image: the builder never says "Using cache".
    setup: bool = False

    @property
    def makes_layer(self) -> bool:
        return self.instruction.split(" ", 1)[0].upper() in LAYER_INSTRUCTIONS


class StepRecorder:
    """A BuildReporter that keeps every step of every image: instruction, cache hit, time."""

    def __init__(self) -> None:
        self.steps: dict[str, dict[int, Step]] = {}
        self._in_stage: set[str] = set()

    def step(self, image: str, number: int, total: int, instruction: str) -> None:
        keyword = instruction.split(" ", 1)[0].upper()
        setup = keyword == "FROM" or (keyword == "ARG" and image not in self._in_stage)
        if keyword == "FROM":
            self._in_stage.add(image)
        self.steps.setdefault(image, {})[number] = Step(number, instruction, setup=setup)

    def step_done(self, image: str, number: int, cached: bool, seconds: float) -> None:
        self.steps[image][number].cached = cached
        self.steps[image][number].seconds = seconds

    def output(self, image: str, line: str) -> None:
        pass

    def of(self, image: str) -> list[Step]:
        return [s for _, s in sorted(self.steps.get(image, {}).items())]

    def rebuilt(self, image: str) -> list[Step]:
        return [s for s in self.of(image) if not s.cached and not s.setup]

    def timing(self, image: str, total: float) -> str:
        """Where a build's time went: steps not from cache (LABEL ones apart), cached steps,
        and the rest (sending the context, tagging)."""
        steps = self.of(image)
        rebuilt = self.rebuilt(image)
        labels = [s for s in rebuilt if s.instruction.upper().startswith("LABEL")]
        others = [s for s in rebuilt if s not in labels]
        in_steps = sum(s.seconds for s in steps)
        slowest = max(others, key=lambda s: s.seconds, default=None)
        parts = [
            f"{len(others)} steps not from cache {sum(s.seconds for s in others):.2f} s"
            + (
                f" (slowest: `{short(slowest.instruction, 32)}` {slowest.seconds:.2f} s)"
                if slowest
                else ""
            ),
            f"{len(labels)} LABEL steps the builder adds, one per label, "
            f"{sum(s.seconds for s in labels):.2f} s",
            f"{len(steps) - len(rebuilt)} other steps (cached or FROM/ARG) "
            f"{in_steps - sum(s.seconds for s in rebuilt):.2f} s",
            f"outside the steps (context upload, image inspect, tagging) {total - in_steps:.2f} s",
        ]
        return "; ".join(parts)

    def metadata_from(self, image: str) -> int:
        """Number of the first metadata step (``ARG LARA_VERSION``); the builder's LABEL
        step for images without one (the sidecar)."""
        steps = self.of(image)
        for s in steps:
            if s.instruction.startswith(METADATA_START):
                return s.number
        return steps[-1].number if steps else 0


def short(instruction: str, width: int = 48) -> str:
    text = " ".join(instruction.split())
    return text if len(text) <= width else text[: width - 1] + "…"


class Bench:
    """A temporary git repository whose commits are the builds' metadata, and image names
    of this run; ``close()`` removes every image and layer the run made."""

    def __init__(self, client: docker.DockerClient, settings: Settings) -> None:
        from tests.fixtures.git import git_env, init_repo

        self.client = client
        self.run_id = secrets.token_hex(4)
        self.prefix = f"lara-bench-{self.run_id}"
        self.work = Path(tempfile.mkdtemp(prefix="lara-bench-"))
        self.git_env = git_env(self.work / "home")
        self.repo = init_repo(self.work / "lara", dict(self.git_env), branch="master")
        self.settings = dataclasses.replace(
            settings,
            repo=self.repo.path,
            app=dataclasses.replace(settings.app, repository=f"{self.prefix}/app"),
            # Case 3 measures the sidecar's proxy cache for assets only the app has, so the
            # sidecar fetches missing assets from the app (the example's auto would say 404).
            nginx=dataclasses.replace(
                settings.nginx,
                image=dataclasses.replace(settings.nginx.image, repository=f"{self.prefix}/nginx"),
                asset_fallback="proxy",
            ),
        )
        self.before = {image.id for image in client.images.list(all=True)}
        self.built: list[str] = []

    def commit(self, message: str) -> metadata.Metadata:
        """A new commit that changes nothing in the build context: only the metadata.

        The run id makes every commit (and so every build's metadata) new to the engine."""
        self.repo.commit(f"{message} ({self.run_id})")
        return self.meta()

    def meta(self, settings: Settings | None = None) -> metadata.Metadata:
        # No CI environment: the metadata comes from the temporary repository alone.
        run = read.Run.read(settings or self.settings, {}, buildinfo.Overrides())
        return metadata.of_run(run)

    def build(
        self,
        meta: metadata.Metadata,
        *,
        only: str = "",
        nocache: bool = False,
        reporter: StepRecorder | None = None,
    ) -> dict[str, build_spec.BuiltImage]:
        built = builder.build_all(
            self.client, self.settings, meta, only=only, nocache=nocache, reporter=reporter
        )
        self.built += [b.id for b in built]
        return {b.name: b for b in built}

    def chain(self, image_id: str) -> list[str]:
        """The image and its parents, newest first, that did not exist before this run."""
        found = []
        current = image_id
        while current and current not in self.before:
            found.append(current)
            try:
                current = self.client.api.inspect_image(current).get("Parent") or ""
            except docker.errors.NotFound:
                break
        return found

    def close(self) -> None:
        """Remove this run's tags, then the images and layers it made (never older ones)."""
        # The chains first: removing an image's last tag deletes it, and its parent with it.
        depth: dict[str, int] = {}  # steps below the newest image: children before parents
        for image_id in self.built:
            chain = self.chain(image_id)
            for position, node in enumerate(chain):
                depth[node] = len(chain) - position
        for image in self.client.images.list():
            for tag in image.tags:
                if tag.split("/")[0] == self.prefix or f"/{self.prefix}/" in tag:
                    with contextlib.suppress(docker.errors.APIError):
                        self.client.images.remove(tag, noprune=True)
        for image_id in sorted(depth, key=depth.__getitem__, reverse=True):
            with contextlib.suppress(docker.errors.APIError):  # in use, or a child of ours
                self.client.images.remove(image_id, noprune=True)
        shutil.rmtree(self.work, ignore_errors=True)


# --- case 1: metadata-only rebuild -----------------------------------------------------------


def case_rebuild(bench: Bench, runs: int, cold_runs: int) -> tuple[list[Row], str]:
    meta = bench.commit("cold build")
    cold_seconds: list[float] = []
    cold_layers: list[float] = []
    cold_steps = 0
    for n in range(cold_runs):
        rec = StepRecorder()
        app = bench.build(meta, only="app", nocache=True, reporter=rec)["app"]
        cold_seconds.append(app.seconds)
        cold_layers.append(sum(1 for s in rec.rebuilt("app") if s.makes_layer))
        cold_steps = app.steps
        log(f"1: cold app build {n + 1}/{cold_runs}: {app.seconds:.1f} s, {app.steps} steps")
    # Not counted: builds the sidecar for the current app (its nginx layer may be missing).
    bench.build(meta)
    seconds: list[float] = []
    app_layers: list[float] = []
    nginx_layers: list[float] = []
    nginx_seconds: list[float] = []
    outside_metadata: list[str] = []
    rebuilt_app: list[str] = []
    rebuilt_nginx: list[str] = []
    nginx_total_layers = 0
    timings: list[str] = []
    for n in range(runs):
        meta = bench.commit(f"metadata-only change {n + 1}")
        rec = StepRecorder()
        built = bench.build(meta, reporter=rec)
        seconds.append(built["app"].seconds)
        nginx_seconds.append(built["nginx"].seconds)
        timings.append(rec.timing("app", built["app"].seconds))
        for name, counts, names in (
            ("app", app_layers, rebuilt_app),
            ("nginx", nginx_layers, rebuilt_nginx),
        ):
            rebuilt = rec.rebuilt(name)
            counts.append(sum(1 for s in rebuilt if s.makes_layer))
            start = rec.metadata_from(name)
            outside_metadata += [
                f"{name} step {s.number} `{short(s.instruction)}`"
                for s in rebuilt
                if s.makes_layer and s.number < start
            ]
            if n == 0:
                names += [f"{s.number} `{short(s.instruction, 40)}`" for s in rebuilt]
        nginx_total_layers = sum(1 for s in rec.of("nginx") if s.makes_layer)
        log(
            f"1: metadata-only rebuild {n + 1}/{runs}: app {built['app'].seconds:.2f} s "
            f"({app_layers[-1]:.0f} layer steps rebuilt), sidecar {built['nginx'].seconds:.2f} s "
            f"({nginx_layers[-1]:.0f} layer steps rebuilt)"
        )
    app_outside = [o for o in outside_metadata if o.startswith("app")]
    nginx_outside = [o for o in outside_metadata if o.startswith("nginx")]
    cold_cmd = (
        "buildtools.build.build_all(only='app', nocache=True) of example/ "
        "(= invoke build --only app --no-cache)"
    )
    rebuild_cmd = (
        "git commit (no change to example/) in a temp repo, then buildtools.build.build_all "
        "(= invoke build)"
    )
    rows = [
        Row(
            "1a",
            "Metadata-only rebuild: app layers rebuilt (RUN/COPY/ADD steps not from cache)",
            Measure(app_layers, "layers", rebuild_cmd, "the build stream (`---> Using cache`)"),
            Measure(cold_layers, "layers", cold_cmd, "the build stream"),
            "only the metadata layer (`RUN printf … version.yml`)",
            not app_outside and all(n <= 1 for n in app_layers),
            note=(
                f"steps not from cache in the first rebuild (of {cold_steps}; FROM and the "
                "ARGs before it are never reported as cached and not counted; ENV, USER and "
                f"LABEL make no layer): {', '.join(rebuilt_app)}"
                + (
                    f"; rebuilt before the metadata block: {', '.join(app_outside)}"
                    if app_outside
                    else ""
                )
            ),
        ),
        Row(
            "1b",
            "Metadata-only rebuild time / cold build time (app image)",
            Measure(seconds, "s", rebuild_cmd, "BuiltImage.seconds (wall time of the build call)"),
            Measure(cold_seconds, "s", cold_cmd, "BuiltImage.seconds"),
            "< 5%",
            median(seconds) < 0.05 * median(cold_seconds),
            note="where the median rebuild's time went: "
            + timings[sorted(range(runs), key=seconds.__getitem__)[runs // 2]],
        ),
        Row(
            "1c",
            "Metadata-only rebuild: sidecar layers rebuilt (RUN/COPY/ADD steps not from cache)",
            Measure(nginx_layers, "layers", rebuild_cmd, "the build stream"),
            Measure(
                [float(nginx_total_layers)],
                "layers",
                "count of RUN/COPY/ADD steps in the sidecar Dockerfile (all rebuilt without cache)",
            ),
            "no layer (public/ did not change)",
            not nginx_outside and all(n == 0 for n in nginx_layers),
            note=(
                "all steps not from cache in the first rebuild: "
                f"{', '.join(rebuilt_nginx) or 'none'}; "
                f"sidecar rebuild time: median {Measure(nginx_seconds, 's', '').text()}"
            ),
        ),
    ]
    note = (
        f"The example app (`example/`, Dockerfile) is built with the configured base image. "
        f"Cold builds (`nocache=True`, apt-get installs Ruby inside the build) run {cold_runs} "
        f"times and rebuilds {runs} times, each after a new commit in a temporary git repository "
        "that changes nothing in the build context, so only the version metadata differs "
        "(branch, commit, build date, version.yml, labels). A cached app+sidecar build of the "
        "first commit runs, uncounted, between the cold builds and the rebuilds."
    )
    return rows, note


# --- case 2: re-release push -----------------------------------------------------------------


class PushRecorder:
    """A release PushReporter that keeps the final status and bytes of every layer pushed."""

    def __init__(self) -> None:
        self.layers: dict[tuple[str, str], dict[str, Any]] = {}

    def start(self, push: push_order.Push) -> None:
        pass

    def layer(
        self, push: push_order.Push, layer: str, status: str, current: int, total: int
    ) -> None:
        entry = self.layers.setdefault((push.reference, layer), {"status": "", "bytes": 0})
        if status not in ("Preparing", "Waiting"):
            entry["status"] = status
        entry["bytes"] = max(entry["bytes"], current)

    def retry(self, what: str, attempt: int, delay: float, reason: str) -> None:
        log(f"2: retry {attempt} of {what}: {reason}")

    def finish(self, push: push_order.Push) -> None:
        pass

    def close(self) -> None:
        pass

    def pushed(self) -> dict[str, int]:
        """Layers the engine uploaded (status ``Pushed``), with the bytes its progress showed."""
        found: dict[str, int] = {}
        for (_, layer), entry in self.layers.items():
            if entry["status"] == "Pushed":
                found[layer] = max(found.get(layer, 0), entry["bytes"])
        return found


def registry_blobs(root: Path) -> dict[str, int]:
    """Every blob a filesystem registry stores (layers, configs, manifests): digest → bytes."""
    blobs = root / "data" / "docker" / "registry" / "v2" / "blobs"
    return {
        f"sha256:{data.parent.name}": data.stat().st_size
        for data in blobs.glob("sha256/*/*/data")
        if data.is_file()
    }


def manifest_digests(root: Path) -> set[str]:
    repos = root / "data" / "docker" / "registry" / "v2" / "repositories"
    return {f"sha256:{p.name}" for p in repos.glob("**/_manifests/revisions/sha256/*")}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a running process has used so far (from /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bcrypt_check_seconds(htpasswd: Path) -> tuple[str, float]:
    """The bcrypt cost of the registry's htpasswd entry and what one check of it takes here."""
    import bcrypt  # test extra, as for testbed.LocalRegistry

    cost = htpasswd.read_text().split("$")[2]
    digest = bcrypt.hashpw(b"bench", bcrypt.gensalt(rounds=int(cost)))
    started = time.perf_counter()
    bcrypt.checkpw(b"bench", digest)
    return cost, time.perf_counter() - started


def release_once(
    bench: Bench, settings: Settings, env: dict[str, str], reg: testbed.LocalRegistry
) -> dict[str, Any]:
    """`invoke release` of the temp repo's HEAD (built first): what reached the registry."""
    meta = bench.meta(settings)
    bench.build(meta)
    rec = PushRecorder()
    before = registry_blobs(reg.root)
    pid = reg.process.pid if reg.process else 0
    cpu_before = cpu_seconds(pid)
    started = time.monotonic()
    session = Session(lambda line: None, rec, build_display=False, engine=bench.client)
    done = pipeline.release(
        settings, env, buildinfo.Overrides(), Options(promote=False), session, warn=False
    )
    result = done.result
    seconds = time.monotonic() - started
    meta = done.plan.meta
    local, _ = publish.local_images(bench.client, roles(settings), meta)
    registry_cpu = cpu_seconds(pid) - cpu_before
    after = registry_blobs(reg.root)
    new = {d: s for d, s in after.items() if d not in before}
    configs = {image.image_id for image in local}
    manifests = manifest_digests(reg.root)
    diff_ids = {
        layer
        for image in local
        for layer in bench.client.images.get(image.image_id).attrs["RootFS"]["Layers"]
    }
    return {
        "seconds": seconds,
        "registry_cpu": registry_cpu,
        "bytes": sum(new.values()),
        "blobs": len(new),
        "layer_blobs": {d: s for d, s in new.items() if d not in configs and d not in manifests},
        "config_blobs": sum(1 for d in new if d in configs),
        "manifest_blobs": sum(1 for d in new if d in manifests),
        "pushed": rec.pushed(),
        "diff_ids": diff_ids,
        "tags": len(result.pushes),
    }


def case_push(bench: Bench, runs: int) -> tuple[list[Row], str]:
    first: list[dict[str, Any]] = []
    second: list[dict[str, Any]] = []
    for n in range(runs):
        reg = testbed.LocalRegistry(bench.work / f"registry-{n}").start()
        try:
            settings = dataclasses.replace(
                bench.settings,
                release=dataclasses.replace(
                    bench.settings.release, registries=(reg.host,), branches=("master",)
                ),
            )
            env = {"DOCKER_USERNAME": reg.username, "DOCKER_PASSWORD": reg.password}
            bench.commit(f"release {n + 1}")
            first.append(release_once(bench, settings, env, reg))
            bench.commit(f"metadata-only change after release {n + 1}")
            second.append(release_once(bench, settings, env, reg))
            second[-1]["changed_layers"] = len(second[-1]["diff_ids"] - first[-1]["diff_ids"])
            bcrypt_cost, bcrypt_seconds = bcrypt_check_seconds(reg.root / "htpasswd")
            log(
                f"2: run {n + 1}/{runs}: first release {first[-1]['bytes'] / 1e6:.1f} MB in "
                f"{first[-1]['blobs']} blobs ({first[-1]['seconds']:.1f} s), second "
                f"{second[-1]['bytes'] / 1e3:.1f} kB in {second[-1]['blobs']} blobs "
                f"({second[-1]['seconds']:.1f} s)"
            )
        finally:
            reg.stop()
            shutil.rmtree(reg.root, ignore_errors=True)
    changed = [s["changed_layers"] for s in second]
    stored_layers = [len(s["layer_blobs"]) for s in second]
    pushed_layers = [len(s["pushed"]) for s in second]
    only_changed = all(
        stored == c and pushed == c
        for stored, pushed, c in zip(stored_layers, pushed_layers, changed, strict=True)
    )
    last = second[-1]
    breakdown = (
        f"second release, last run: {len(last['layer_blobs'])} layer blob(s) of "
        f"{', '.join(str(s) + ' B' for s in last['layer_blobs'].values()) or 'none'}, "
        f"{last['config_blobs']} image configs, {last['manifest_blobs']} manifests; "
        f"layers new to the images (diff IDs not in the first release's images): "
        f"{last['changed_layers']}; layers the push stream reports `Pushed`: "
        f"{len(last['pushed'])} (progress bytes {sum(last['pushed'].values())} B), "
        f"first release: {len(first[-1]['pushed'])} layers `Pushed`"
    )
    cmd_first = (
        "pipeline.release without promotion (= invoke release --no-promote) of commit N "
        "(built before, not timed) to a fresh registry"
    )
    cmd_second = "the same for commit N+1 (metadata only), same registry"
    source = "the registry's storage: blob files new after the release"
    rows = [
        Row(
            "2a",
            "Re-release push: bytes uploaded, second release / first",
            Measure([s["bytes"] for s in second], "B", cmd_second, source),
            Measure([f["bytes"] for f in first], "B", cmd_first, source),
            "only the changed layer's bytes (+ configs, manifests)",
            only_changed,
            note=breakdown,
        ),
        Row(
            "2b",
            "Re-release push: blobs uploaded (layers + configs + manifests)",
            Measure([s["blobs"] for s in second], "blobs", cmd_second, source),
            Measure([f["blobs"] for f in first], "blobs", cmd_first, source),
            "changed layer + 1 config and 1 manifest per image",
            only_changed and all(s["blobs"] == c + 4 for s, c in zip(second, changed, strict=True)),
        ),
        Row(
            "2c",
            "Re-release push: wall time of the release, second / first",
            Measure([s["seconds"] for s in second], "s", cmd_second, "time.monotonic around it"),
            Measure([f["seconds"] for f in first], "s", cmd_first, "time.monotonic around it"),
            "report only",
            None,
            note="CPU time the docker-registry process used during the release: median "
            f"{Measure([f['registry_cpu'] for f in first], 's', '').text()} (first), "
            f"{Measure([s['registry_cpu'] for s in second], 's', '').text()} (second); the "
            f"test registry checks its htpasswd bcrypt hash (cost {bcrypt_cost}: one check "
            f"takes {bcrypt_seconds * 1000:.0f} ms here) on every authenticated request, so a "
            "high cost makes this time count registry requests rather than bytes",
        ),
    ]
    note = (
        f"Each run starts a fresh `docker-registry` (testbed.LocalRegistry, htpasswd) on "
        f"127.0.0.1, releases commit N of the temporary repository (app + sidecar, "
        f"{first[-1]['tags'] // 2} tags each: `sha-…`, `master`, `edge`), commits N+1 (metadata "
        "only), rebuilds and releases again. Bytes and blobs are read from the registry's "
        "storage directory (each new `blobs/sha256/…/data` file, exact sizes, compressed as "
        "pushed); the push stream's per-layer status (`Pushed` vs `Layer already exists`) is "
        "the cross-check."
    )
    return rows, note


# --- case 3: sidecar asset throughput --------------------------------------------------------

BENCH_NGINX_CONF = """\
# Minimal nginx for `invoke bench`: static files (the physical limit) and an uncached proxy.
worker_processes auto;
pid /run/nginx/nginx-bench.pid;
daemon off;
error_log stderr warn;
events {{
    worker_connections 1024;
}}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 75s;
    access_log off;
    server {{
        listen 8081;
        root /lara/public;
    }}
    server {{
        listen 8082;
        location / {{
            proxy_pass http://{app}:3000;
        }}
    }}
}}
"""

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


def wait_ok(url: str, what: str, seconds: float = 60) -> requests.Response:
    deadline = time.monotonic() + seconds
    last: object = "no answer"
    while time.monotonic() < deadline:
        try:
            resp = requests.get(url, timeout=3)
            if resp.status_code == 200:
                return resp
            last = f"HTTP {resp.status_code}"
        except requests.RequestException as exc:
            last = type(exc).__name__
        time.sleep(0.3)
    raise BuildToolsError(f"{what} ({url}) did not answer 200 in {seconds:.0f}s: {last}", "")


def host_port(container: Any, port: str) -> str:
    container.reload()
    return container.attrs["NetworkSettings"]["Ports"][port][0]["HostPort"]


@contextlib.contextmanager
def containers(client: docker.DockerClient, prefix: str) -> Iterator[Callable[..., Any]]:
    """``run(image, name, **kwargs)`` on a network of this run; everything removed after."""
    network = client.networks.create(f"{prefix}-net", driver="bridge")
    started: list[Any] = []

    def run(image: str, name: str, **kwargs: Any) -> Any:
        container = client.containers.run(
            image, name=f"{prefix}-{name}", network=network.name, detach=True, **kwargs
        )
        started.append(container)
        return container

    try:
        yield run
    finally:
        for container in reversed(started):
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)
        with contextlib.suppress(docker.errors.APIError):
            network.remove()


def add_file(container: Any, directory: str, name: str, data: bytes) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
        tar.addfile(info, io.BytesIO(data))
    if not container.put_archive(directory, buffer.getvalue()):
        raise BuildToolsError(f"could not add {name} to {container.name}", "")


def case_throughput(bench: Bench, runs: int, duration: int) -> tuple[list[Row], str]:
    if not shutil.which("wrk"):
        raise BuildToolsError("wrk is not installed", "apt-get install wrk (scripts/setup does)")
    built = bench.build(bench.commit("sidecar throughput"))
    app_image, sidecar_image = built["app"].id, built["nginx"].id
    loader_image = wrk_image(bench)
    conf_dir = bench.work / "nginx-bench"
    conf_dir.mkdir(exist_ok=True)
    app_name = f"{bench.prefix}-app"
    (conf_dir / "nginx.conf").write_text(BENCH_NGINX_CONF.format(app=app_name))
    conf_dir.chmod(0o755)
    (conf_dir / "nginx.conf").chmod(0o644)
    loopback = "127.0.0.1"
    with containers(bench.client, bench.prefix) as run:
        # The example, like LARA, serves public/ only when asked to: case (c) needs it.
        app = run(app_image, "app", environment={"RAILS_SERVE_STATIC_FILES": "1"})
        sidecar = run(
            sidecar_image,
            "nginx",
            environment={"APP_UPSTREAM": f"{app_name}:3000"},
            ports={"80/tcp": (loopback, None)},
        )
        plain = run(
            sidecar_image,
            "plain",
            entrypoint=["nginx", "-c", "/bench/nginx.conf"],
            command=[],
            volumes={str(conf_dir): {"bind": "/bench", "mode": "ro"}},
            ports={"8081/tcp": (loopback, None), "8082/tcp": (loopback, None)},
        )
        # Diagnostic (a'): the sidecar's own config with only its access log switched off.
        sidecar_conf = sidecar.exec_run(["cat", "/etc/nginx/nginx.conf"]).output.decode()
        nolog_conf = re.sub(
            r"(?m)^(\s*)access_log /dev/stdout \w+[^;]*;", r"\1access_log off;", sidecar_conf
        )
        if nolog_conf == sidecar_conf:
            raise BuildToolsError("the sidecar's nginx.conf has no `access_log /dev/stdout`", "")
        (conf_dir / "sidecar-nolog.conf").write_text(nolog_conf)
        (conf_dir / "sidecar-nolog.conf").chmod(0o644)
        nolog = run(
            sidecar_image,
            "nolog",
            environment={"APP_UPSTREAM": f"{app_name}:3000"},
            command=["nginx", "-c", "/bench/sidecar-nolog.conf"],
            volumes={str(conf_dir): {"bind": "/bench", "mode": "ro"}},
            ports={"80/tcp": (loopback, None)},
        )
        side_url = f"http://{loopback}:{host_port(sidecar, '80/tcp')}"
        nolog_url = f"http://{loopback}:{host_port(nolog, '80/tcp')}"
        static_url = f"http://{loopback}:{host_port(plain, '8081/tcp')}"
        proxy_url = f"http://{loopback}:{host_port(plain, '8082/tcp')}"
        listing = sidecar.exec_run(["ls", "/lara/public/assets"]).output.decode()
        names = [n for n in listing.split() if re.fullmatch(r"application-[0-9a-f]{64}\.js", n)]
        if not names:
            raise BuildToolsError(f"no fingerprinted application-*.js in {listing!r}", "")
        asset = f"/assets/{names[0]}"
        wait_ok(f"{side_url}/nginx-health", "the sidecar")
        wait_ok(f"{nolog_url}/nginx-health", "the sidecar without access log")
        body = wait_ok(f"{static_url}{asset}", "the minimal nginx").content
        wait_ok(f"{proxy_url}/health", "the app through the minimal proxy")
        proxied = wait_ok(f"{proxy_url}{asset}", "the asset through the minimal proxy")
        from_disk = wait_ok(f"{side_url}{asset}", "the asset from the sidecar")
        if not (proxied.content == body == from_disk.content):
            raise BuildToolsError("the three servers answer the asset with different bytes", "")
        # (d): a fingerprinted asset only the app has (a newer app in a rolling deploy).
        only_app = f"bench-only-{hashlib.sha256(body).hexdigest()}.js"
        add_file(app, "/lara/public/assets", only_app, body)
        cached = f"/assets/{only_app}"
        statuses = [
            requests.get(f"{side_url}{cached}", timeout=10).headers.get("X-Cache-Status")
            for _ in range(2)
        ]
        if statuses != ["MISS", "HIT"]:
            raise BuildToolsError(f"app-only asset cache status {statuses}, not MISS then HIT", "")
        published = {
            "a": f"{side_url}{asset}",
            "b": f"{static_url}{asset}",
            "c": f"{proxy_url}{asset}",
            "d": f"{side_url}{cached}",
            "a'": f"{nolog_url}{asset}",
        }
        # The same servers by container name, from a wrk container on their network. Ports
        # always written out: the slim base has no /etc/services for wrk to read "http" from.
        inside = {
            "a": f"http://{sidecar.name}:80{asset}",
            "b": f"http://{plain.name}:8081{asset}",
            "c": f"http://{plain.name}:8082{asset}",
            "d": f"http://{sidecar.name}:80{cached}",
            "a'": f"http://{nolog.name}:80{asset}",
        }
        loader = run(loader_image, "wrk", entrypoint=["sleep"], command=["infinity"])
        loads: dict[str, Callable[[str, int], float]] = {
            "port": wrk,
            "net": lambda url, seconds: wrk_inside(loader, url, seconds),
        }
        paths = {"port": published, "net": inside}
        samples: dict[str, dict[str, list[float]]] = {p: {k: [] for k in published} for p in paths}
        for path, targets in paths.items():  # warm-up, not counted
            for url in targets.values():
                loads[path](url, 1)
        for n in range(runs):
            for key in published:
                for path, targets in paths.items():
                    samples[path][key].append(loads[path](targets[key], duration))
            log(
                f"3: run {n + 1}/{runs}: "
                + ", ".join(
                    f"({k}) {samples['port'][k][-1]:,.0f} / {samples['net'][k][-1]:,.0f} req/s"
                    for k in published
                )
                + " (published port / Docker network)"
            )
        after = requests.get(f"{side_url}{cached}", timeout=10).headers.get("X-Cache-Status")
        nginx_version = plain.exec_run(["nginx", "-v"]).output.decode().strip()
        loader_wrk = loader.exec_run(["wrk", "--version"]).output.decode()
        loader_wrk = loader_wrk.split("Copyright")[0].strip()
    wrk_cmd = f"wrk -t2 -c32 -d{duration}s"
    where = {
        "port": ("on the host", "127.0.0.1:<published port>"),
        "net": ("in a container on the Docker network", "<container>:<port>"),
    }
    servers = {
        "a": ("<sidecar>", asset, ""),
        "b": ("<minimal nginx :8081>", asset, ""),
        "c": ("<minimal nginx :8082 → app:3000>", asset, ""),
        "d": ("<sidecar>", cached, " (after MISS, HIT)"),
        "a'": ("<sidecar image, its nginx.conf with access_log off>", asset, ""),
    }

    def measures(path: str) -> dict[str, Measure]:
        runner, address = where[path]
        return {
            key: Measure(
                samples[path][key],
                "req/s",
                f"{wrk_cmd} {server}{url}{after_text} — wrk {runner}, to {address}",
                "wrk Requests/sec",
            )
            for key, (server, url, after_text) in servers.items()
        }

    many = 5.0

    def rows_for(path: str, letters: str, label: str) -> list[Row]:
        m = measures(path)
        return [
            Row(
                f"3{letters[0]}",
                f"Sidecar{label}: fingerprinted asset from disk (a) / same nginx, minimal static "
                "config (b)",
                m["a"],
                m["b"],
                "≥ 90%",
                m["a"].median >= 0.9 * m["b"].median,
            ),
            Row(
                f"3{letters[1]}",
                f"Sidecar{label}: asset from disk (a) / the asset proxied uncached to the app (c)",
                m["a"],
                m["c"],
                f"many times (read as ≥ {many:.0f}x)",
                m["a"].median >= many * m["c"].median,
                ratio_style=TIMES,
            ),
            Row(
                f"3{letters[2]}",
                f"Sidecar{label}: app-only asset from its proxy cache, HIT (d) / proxied "
                "uncached (c)",
                m["d"],
                m["c"],
                f"many times (read as ≥ {many:.0f}x)",
                m["d"].median >= many * m["c"].median,
                ratio_style=TIMES,
                note=f"X-Cache-Status of (d): MISS, HIT before the runs, {after} after them",
            ),
            Row(
                f"3{letters[3]}",
                f"Diagnostic{label}: sidecar config without its access log (a') / minimal "
                "static config (b)",
                m["a'"],
                m["b"],
                f"none (explains 3{letters[0]})",
                None,
                note="the sidecar's rendered nginx.conf with only its `access_log /dev/stdout "
                "lara buffer=… flush=1s;` line replaced by `access_log off;`, in a container of "
                f"the same image: the difference to 3{letters[0]} is what the (buffered) access "
                "log costs",
            ),
        ]

    rows = [
        *rows_for("port", "abcd", ""),
        *rows_for("net", "efgh", ", no docker-proxy"),
        Row(
            "3i",
            "Diagnostic: minimal static nginx (b) through a published port / on the Docker network",
            measures("port")["b"],
            measures("net")["b"],
            "none (what docker-proxy costs)",
            None,
            note="the same server and file; only the path differs: host wrk → 127.0.0.1 → "
            "docker-proxy → container, or wrk container → bridge → container",
        ),
    ]
    note = (
        f"All servers run in containers on one Docker network. Each figure is measured twice: "
        f"by wrk on the host against ports published on 127.0.0.1 (3a to 3d: loopback traffic to "
        f"a published port passes docker-proxy, a userland copy of every byte, for every "
        f"target alike), and by wrk in a container on the same network against the servers' "
        f"own addresses (3e to 3h: no docker-proxy, no published port; the container is "
        f"`FROM {bench.settings.app.base_image}` plus Debian's wrk, {loader_wrk}). Both use "
        f"HTTP/1.1 keep-alive, 2 threads, 32 connections, {duration} s per run, no "
        f"Accept-Encoding, so the plain file is sent. The asset is `{asset}` ({len(body):,} "
        f"bytes). (b) and (c) are one container of the *sidecar image* "
        f"started with a minimal config mounted (`nginx -c /bench/nginx.conf`: `sendfile`, "
        f"keep-alive, no access log; :8081 serves /lara/public, :8082 `proxy_pass`es to the app, "
        f"no cache), so all servers are the same binary ({nginx_version}). (a) and (d) use the "
        "sidecar's own config (access log to stdout, headers, `open_file_cache`). (c)'s "
        "upstream is the example app: unicorn with 2 workers serving public/ through "
        "Rack::Files. (d)'s file is added to the running app container only, so the sidecar "
        "must fetch it once (MISS) "
        f"and then serves it from its cache. Each target gets a 1 s wrk warm-up on each path; "
        f"the {runs} runs interleave the targets and the paths (a by port, a on the network, "
        "b by port, …). On 2 cores wrk and nginx share the CPUs on either path."
    )
    return rows, note


# --- case 4: tool overhead -------------------------------------------------------------------


def invoke_command() -> list[str]:
    script = Path(sys.executable).with_name("invoke")
    return [str(script)] if script.exists() else [sys.executable, "-m", "invoke"]


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise BuildToolsError(
            f"`{' '.join(cmd)}` failed: {(done.stderr or done.stdout).strip()[-300:]}", ""
        )
    return seconds


def case_overhead(bench: Bench, runs: int) -> tuple[list[Row], str]:
    from tests.fixtures.git import fast_import_repo

    commits, tag_every = 5000, 10
    made = time.monotonic()
    repo = fast_import_repo(bench.work / "big", dict(bench.git_env), commits, tag_every)
    repo.commit("one past the last release")  # the usual CI build: not exactly on a tag
    log(f"4: made a repository of {commits + 1} commits in {time.monotonic() - made:.1f} s")
    env = {k: v for k, v in bench.git_env.items() if not k.startswith(("TRAVIS", "GITHUB", "CI"))}
    env["INVOKE_BUILDTOOLS_REPO"] = str(repo.path)
    invoke = invoke_command()
    commands = {
        "describe": (["git", "describe", "--tags"], repo.path),
        "list": ([*invoke, "--list"], ROOT),
        "version": ([*invoke, "version"], ROOT),
        "dry-run": ([*invoke, "build", "--dry-run"], ROOT),
    }
    n = max(runs, 5)
    samples: dict[str, list[float]] = {k: [] for k in commands}
    for cmd, cwd in commands.values():  # warm-up (page cache, .pyc), not counted
        timed(cmd, cwd, env)
    for _ in range(n):
        for key, (cmd, cwd) in commands.items():
            samples[key].append(timed(cmd, cwd, env))
    log("4: medians " + ", ".join(f"{k} {Measure(v, 's', '').text()}" for k, v in samples.items()))
    prefix = "INVOKE_BUILDTOOLS_REPO=<repo> .venv/bin/invoke"
    describe = Measure(samples["describe"], "s", "git describe --tags (in <repo>)", "wall time")
    startup = Measure(samples["list"], "s", "")
    rows = [
        Row(
            "4a",
            f"Tool overhead: `invoke version` / `git describe --tags` ({commits + 1:,} commits, "
            f"{commits // tag_every} tags)",
            Measure(samples["version"], "s", f"{prefix} version", "wall time"),
            describe,
            "report only",
            None,
            ratio_style=TIMES,
            note=f"`{prefix} --list` (Python and invoke start-up, no git) takes {startup.text()} "
            f"(median of {startup.runs})",
        ),
        Row(
            "4b",
            "Tool overhead: `invoke build --dry-run` / `git describe --tags` (same repository)",
            Measure(samples["dry-run"], "s", f"{prefix} build --dry-run", "wall time"),
            describe,
            "report only",
            None,
            ratio_style=TIMES,
        ),
    ]
    note = (
        f"`<repo>` is made with tests/fixtures/git.py `fast_import_repo` ({commits:,} commits, a "
        f"lightweight tag `v0.N.0` on every {tag_every}th), plus one commit on top so that HEAD is "
        f"not exactly on a tag. Each command runs once as a warm-up, then {n} times interleaved "
        "(at least 5 runs, since each takes under a few seconds); wall time of the whole process "
        "(time.perf_counter around subprocess.run), without any CI environment variables. "
        "The issue sets no goal for this case: it shows what the tool costs per call."
    )
    return rows, note


# --- registry manifests (cases 5 and 6) ------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Layer:
    """One layer as a registry stores it: its compressed size and the step that made it."""

    digest: str
    size: int
    created_by: str = ""


def manifest_layers(manifest: dict[str, Any], config: dict[str, Any]) -> list[Layer]:
    """A schema 2 manifest's layers, each with its build step: the image config's history
    entries that are not ``empty_layer`` are the layers, in the same order."""
    layers = manifest.get("layers") or []
    steps = [
        str(h.get("created_by", ""))
        for h in config.get("history") or []
        if not h.get("empty_layer")
    ]
    if len(steps) != len(layers):  # an image without history: sizes still count
        steps = [""] * len(layers)
    return [
        Layer(str(layer["digest"]), int(layer["size"]), step)
        for layer, step in zip(layers, steps, strict=True)
    ]


def history_step(created_by: str) -> str:
    """A history entry as the Dockerfile instruction it came from (the classic builder records
    ``/bin/sh -c #(nop) COPY …`` for instructions and ``/bin/sh -c …`` for RUN)."""
    shell = "/bin/sh -c "
    if shell not in created_by:
        return created_by
    command = created_by.split(shell, 1)[1]
    return (
        command.removeprefix("#(nop) ").strip()
        if command.startswith("#(nop)")
        else f"RUN {command}"
    )


def own_layers(image: list[Layer], *others: list[Layer]) -> list[Layer]:
    """The image's layers that none of ``others`` has: what a host holding those must pull."""
    have = {layer.digest for other in others for layer in other}
    return [layer for layer in image if layer.digest not in have]


def distinct_bytes(*image_layers: list[Layer]) -> int:
    """Compressed bytes of the distinct layers of these images (a shared layer counts once)."""
    return sum({layer.digest: layer.size for group in image_layers for layer in group}.values())


def registry_layers(reg: testbed.LocalRegistry, repository: str, tag: str) -> list[Layer]:
    """The layers of ``repository:tag`` read from the registry's manifest and image config."""
    auth = (reg.username, reg.password)
    resp = requests.get(
        f"{reg.url}/v2/{repository}/manifests/{tag}",
        headers={"Accept": DOCKER_MANIFEST},
        auth=auth,
        timeout=30,
    )
    resp.raise_for_status()
    manifest = resp.json()
    config = requests.get(
        f"{reg.url}/v2/{repository}/blobs/{manifest['config']['digest']}", auth=auth, timeout=30
    )
    config.raise_for_status()
    return manifest_layers(manifest, config.json())


def push_image(
    client: docker.DockerClient, image: str, reg: testbed.LocalRegistry, repository: str, tag: str
) -> None:
    """Tag ``image`` into the registry and push it, reading the stream to the end for errors."""
    ref = f"{reg.host}/{repository}"
    client.api.tag(image, ref, tag)
    auth = {"username": reg.username, "password": reg.password}
    for line in client.api.push(ref, tag=tag, stream=True, decode=True, auth_config=auth):
        if "error" in line or "errorDetail" in line:
            raise BuildToolsError(f"push of {ref}:{tag} failed: {line.get('error')}", "")


# --- case 5: a fresh CI runner ---------------------------------------------------------------

# A Travis push build of master (as tests/test_cache.py): a release branch, so `invoke ci`
# builds, smoke-tests and releases.
TRAVIS_MASTER_PUSH = {
    "CI": "true",
    "TRAVIS": "true",
    "TRAVIS_BRANCH": "master",
    "TRAVIS_PULL_REQUEST": "false",
    "TRAVIS_EVENT_TYPE": "push",
}
# What the bench's own environment must not pass to `invoke ci`: it would change the build.
FOREIGN_ENV = ("TRAVIS", "GITHUB_", "GITLAB_", "CI_", "INVOKE_", "DOCKER_")


def dockerfile_steps_from(text: str, first: str = METADATA_START) -> int:
    """Instructions of a Dockerfile from the first one that starts with ``first`` to the end
    (continuation lines joined, comments skipped); 0 when there is none."""
    instructions: list[str] = []
    continued = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):  # also inside a continuation, as Docker's parser
            continue
        if continued:
            instructions[-1] += " " + line
        else:
            instructions.append(line)
        continued = line.endswith("\\")
    for number, instruction in enumerate(instructions):
        if instruction.startswith(first):
            return len(instructions) - number
    return 0


def invoke_ci(repo: Any, env: dict[str, str], *args: str) -> tuple[float, dict[str, Any], str]:
    """`invoke ci --json [args]` in ``repo``: wall time, its JSON result and its stderr."""
    base = {k: v for k, v in {**os.environ, **repo.env}.items() if not k.startswith(FOREIGN_ENV)}
    started = time.perf_counter()
    done = subprocess.run(
        [*invoke_command(), "ci", "--json", *args],
        cwd=repo.path,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise BuildToolsError(f"invoke ci failed: {done.stderr.strip()[-600:]}", "see above")
    return seconds, json.loads(done.stdout), done.stderr


def fresh_ci(
    bench: Bench, repo: Any, seed: Path, env: dict[str, str], *, pull: bool, label: str
) -> dict[str, Any]:
    """`invoke ci` on a new FreshEngine (only the base image) against a copy of the seed
    registry (the previous release): what it rebuilt, pulled and pushed, and how long it took."""
    root = bench.work / f"registry-5-{label}"
    shutil.copytree(seed / "data", root / "data")
    reg = testbed.LocalRegistry(root).start()
    engine = testbed.FreshEngine()
    try:
        started = time.monotonic()
        engine.start()
        # The smoke test's services (MariaDB) as a runner would pull them: before the timing.
        services = [service.image for service in bench.settings.smoke.services]
        engine.load(*base_images(bench.settings), *services, source=bench.client)
        setup = time.monotonic() - started
        before = registry_blobs(root)
        run_env = {
            **env,
            "TRAVIS_COMMIT": repo.head(),
            "INVOKE_BUILDTOOLS_RELEASE_REGISTRIES": reg.host,
            "DOCKER_USERNAME": reg.username,
            "DOCKER_PASSWORD": reg.password,
            "DOCKER_HOST": engine.host,
        }
        if not pull:
            run_env["INVOKE_BUILDTOOLS_CACHE_PULL"] = "false"
        try:
            seconds, result, stderr = invoke_ci(repo, run_env)
        except BuildToolsError as exc:  # what the fresh engine built says more than the CLI
            raise BuildToolsError(f"{exc.problem}; {built_commands(engine, bench)}", "") from exc
        if not result.get("released"):
            raise BuildToolsError(f"invoke ci did not release: {result.get('decision')}", "")
        pushed = {d: s for d, s in registry_blobs(root).items() if d not in before}
        client = engine.client()
        images: dict[str, dict[str, Any]] = {}
        for image in result["images"]:
            layers = client.images.get(image["id"]).attrs["RootFS"]["Layers"]
            source = image["cache"][0]["ref"] if image["cache"] else ""
            theirs = client.images.get(source).attrs["RootFS"]["Layers"] if source else []
            images[image["name"]] = {
                "rebuilt": image["steps"] - image["cached_steps"],
                "steps": image["steps"],
                "seconds": image["seconds"],
                "source": source,
                "new_layers": len([d for d in layers if d not in theirs]),
            }
        return {
            "seconds": seconds,
            "setup": setup,
            "images": images,
            "pulled": sum(int(c.get("bytes_pulled", 0)) for c in result.get("cache_sources", [])),
            "pushed": sum(pushed.values()),
            "warnings": [line for line in stderr.splitlines() if "warning" in line.lower()],
        }
    finally:
        engine.stop()
        reg.stop()
        shutil.rmtree(root, ignore_errors=True)


def built_commands(engine: testbed.FreshEngine, bench: Bench) -> str:
    """ENTRYPOINT and CMD of this run's images on the fresh engine (the cache sources too):
    a failed smoke test is most often a container that exits at start."""
    found = []
    with contextlib.suppress(docker.errors.DockerException, requests.RequestException):
        for image in engine.client().images.list():
            config = image.attrs["Config"]
            found += [
                f"{tag}: Entrypoint {config.get('Entrypoint')} Cmd {config.get('Cmd')}"
                for tag in image.tags
                if f"{bench.prefix}/" in tag
                and tag.rsplit(":", 1)[1].startswith(("sha-", "master"))
            ]
    return "images on the fresh engine: " + ("; ".join(sorted(found)) or "none")


def base_images(settings: Settings) -> list[str]:
    return list(dict.fromkeys([settings.app.base_image, settings.nginx.image.base_image]))


def case_fresh_runner(bench: Bench, runs: int) -> tuple[list[Row], str]:
    from tests.fixtures.git import init_repo
    from tests.fixtures.project import copy_into

    repo = init_repo(bench.work / "ci-project", dict(bench.git_env), branch="master")
    copy_into(repo)
    repo.commit(f"import lara-buildtools ({bench.run_id})")
    env = {
        **TRAVIS_MASTER_PUSH,
        "INVOKE_BUILDTOOLS_APP_REPOSITORY": f"{bench.prefix}/app",
        "INVOKE_BUILDTOOLS_NGINX_REPOSITORY": f"{bench.prefix}/nginx",
    }
    # The previous commit's release (sha-…, master, edge), made on the main engine.
    seed = testbed.LocalRegistry(bench.work / "registry-5-seed").start()
    try:
        seed_env = {
            **env,
            "TRAVIS_COMMIT": repo.head(),
            "INVOKE_BUILDTOOLS_RELEASE_REGISTRIES": seed.host,
            "DOCKER_USERNAME": seed.username,
            "DOCKER_PASSWORD": seed.password,
        }
        seed_seconds, seeded, _ = invoke_ci(repo, seed_env)
        bench.built += [image["id"] for image in seeded["images"]]
        previous = {
            name: registry_layers(seed, f"{bench.prefix}/{name}", "master")
            for name in ("app", "nginx")
        }
        tags = seed.tags(f"{bench.prefix}/app")
    finally:
        seed.stop()
    log(f"5: released the previous commit ({', '.join(tags)}) in {seed_seconds:.0f} s")
    repo.commit(f"metadata-only change ({bench.run_id})")
    warm: list[dict[str, Any]] = []
    cold: list[dict[str, Any]] = []
    for n in range(runs):
        # Alternate which goes first, so that a drift in the machine's load favours neither.
        order = [(True, warm), (False, cold)] if n % 2 == 0 else [(False, cold), (True, warm)]
        for pull, samples in order:
            label = f"{n + 1}-{'warm' if pull else 'cold'}"
            samples.append(fresh_ci(bench, repo, seed.root, env, pull=pull, label=label))
            done = samples[-1]
            log(
                f"5: run {n + 1}/{runs} {'cache pull' if pull else 'cold'}: invoke ci "
                f"{done['seconds']:.1f} s, rebuilt app {done['images']['app']['rebuilt']} / "
                f"sidecar {done['images']['nginx']['rebuilt']} steps, pulled "
                f"{done['pulled'] / 1e6:.1f} MB, pushed {done['pushed'] / 1e6:.1f} MB"
            )
    metadata = dockerfile_steps_from((ROOT / bench.settings.app.dockerfile).read_text()) + 1
    release_bytes = distinct_bytes(*previous.values())
    ci_warm = "invoke ci --json (Travis push build of master) on a fresh engine, cache.pull true"
    ci_cold = "the same with INVOKE_BUILDTOOLS_CACHE_PULL=false, on another fresh engine"
    stream = "`invoke ci --json`: images[].steps - cached_steps (the build stream)"

    def steps(samples: list[dict[str, Any]], name: str) -> list[float]:
        return [float(s["images"][name]["rebuilt"]) for s in samples]

    def layers(samples: list[dict[str, Any]], name: str) -> str:
        return ", ".join(str(s["images"][name]["new_layers"]) for s in samples)

    def build_seconds(samples: list[dict[str, Any]], name: str) -> str:
        return Measure([s["images"][name]["seconds"] for s in samples], "s", "").text()

    sources = sorted({s["images"][k]["source"] for s in warm for k in ("app", "nginx")})
    warnings = sorted({w for s in warm + cold for w in s["warnings"]})
    rows = [
        Row(
            "5a",
            "Fresh runner: app steps rebuilt, cache pulled from the registry / cold",
            Measure(steps(warm, "app"), "steps", ci_warm, stream),
            Measure(steps(cold, "app"), "steps", ci_cold, stream),
            f"≤ the metadata steps ({metadata}: `ARG LARA_VERSION` to the end, + LABEL)",
            all(n <= metadata for n in steps(warm, "app")),
            note=f"layers not in the cache source (diff IDs), per run: {layers(warm, 'app')} "
            f"(cold: {layers(cold, 'app')}); cache sources used: {', '.join(sources) or 'none'}",
        ),
        Row(
            "5b",
            "Fresh runner: sidecar steps rebuilt, cache pulled from the registry / cold",
            Measure(steps(warm, "nginx"), "steps", ci_warm, stream),
            Measure(steps(cold, "nginx"), "steps", ci_cold, stream),
            "0 apart from its LABEL step (≤ 1)",
            all(n <= 1 for n in steps(warm, "nginx")),
            note=f"layers not in the cache source (diff IDs), per run: {layers(warm, 'nginx')} "
            f"(cold: {layers(cold, 'nginx')})",
        ),
        Row(
            "5c",
            "Fresh runner: wall time of `invoke ci`, cache pulled / cold",
            Measure([s["seconds"] for s in warm], "s", ci_warm, "time.perf_counter around it"),
            Measure([s["seconds"] for s in cold], "s", ci_cold, "time.perf_counter around it"),
            "≤ 30%",
            median(s["seconds"] for s in warm) <= 0.3 * median(s["seconds"] for s in cold),
            note=f"build time alone (images[].seconds, median): app {build_seconds(warm, 'app')} "
            f"vs {build_seconds(cold, 'app')} cold, sidecar {build_seconds(warm, 'nginx')} vs "
            f"{build_seconds(cold, 'nginx')}; the rest is pulling (cache pull only), the smoke "
            "test, pushing and verifying the release, and Python start-up",
        ),
        Row(
            "5d",
            "Fresh runner: bytes pulled for the cache / the previous release's two images",
            Measure(
                [s["pulled"] for s in warm],
                "B",
                ci_warm,
                "`invoke ci --json`: cache_sources[].bytes_pulled (the pull stream's "
                "`Downloading` totals, compressed)",
            ),
            Measure(
                [float(release_bytes)],
                "B",
                "the previous release's `master` manifests of app and sidecar in the registry",
                "sum of the distinct layers' compressed sizes",
            ),
            "report only",
            None,
            note=f"the cold runs pulled {', '.join(format_bytes(s['pulled']) for s in cold)}; "
            "the previous release's layers (compressed): "
            + "; ".join(
                f"{name}: {', '.join(format_bytes(layer.size) for layer in found)}"
                for name, found in previous.items()
            ),
        ),
        Row(
            "5e",
            "Fresh runner: bytes its release pushed, cache pulled / cold",
            Measure([s["pushed"] for s in warm], "B", ci_warm, "blob files new in the registry"),
            Measure([s["pushed"] for s in cold], "B", ci_cold, "blob files new in the registry"),
            "report only",
            None,
        ),
    ]
    setup = [s["setup"] for s in warm + cold]
    note = (
        f"A temporary git repository holds a copy of this checkout (tests/fixtures/project.py "
        f"`copy_into`). Its first commit is released by `invoke ci` (a Travis push build of "
        f"master, as in tests/test_cache.py) from the main engine to a local htpasswd registry "
        f"(testbed.LocalRegistry: tags {', '.join(tags)}; {seed_seconds:.0f} s, not counted). "
        "A second commit changes only a file outside both build contexts. Each measured run "
        "copies that registry's storage into a new registry, starts a new testbed.FreshEngine "
        "(an empty dockerd) and loads only the base image into it "
        f"(median {Measure(setup, 's', '').text()}, not counted), then runs `invoke ci --json` "
        "of the second commit as the same Travis build with DOCKER_HOST set to it: with "
        "`cache.pull` (the default: it pulls `master` of both images) or with "
        f"INVOKE_BUILDTOOLS_CACHE_PULL=false. {runs} runs of each, alternating which goes first; "
        "each run builds, smoke-tests and releases (`sha-…`, `master`, `edge`). Steps rebuilt "
        "count every step not from cache (ENV, USER and the builder's LABEL step included); "
        "FROM and the ARG before it count as cached."
        + (f" Warnings seen: {'; '.join(warnings)}." if warnings else "")
    )
    return rows, note


# --- case 8: a tag on a released commit, promoted -----------------------------------------

# A Travis build of the tag v1.2.3 on the commit master released.
TRAVIS_TAG_PUSH = {
    "CI": "true",
    "TRAVIS": "true",
    "TRAVIS_BRANCH": "v1.2.3",
    "TRAVIS_TAG": "v1.2.3",
    "TRAVIS_PULL_REQUEST": "false",
    "TRAVIS_EVENT_TYPE": "push",
}


class ByteCounter:
    """A TCP relay on 127.0.0.1 in front of a registry that counts the bytes each way: every
    byte on the wire between the registry and whoever talks to it (our client or an engine).
    Bytes are forwarded unchanged, Host included, so upload URLs point back at the relay."""

    def __init__(self, upstream: str) -> None:
        host, _, port = upstream.rpartition(":")
        self.upstream = (host, int(port))
        self.sent = 0  # to the registry
        self.received = 0  # from it
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self._open = True
        self._threads: list[threading.Thread] = []

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.getsockname()[1]}"

    def start(self) -> ByteCounter:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        return self

    def _accept(self) -> None:
        while self._open:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            for src, dst, up in ((client, upstream, True), (upstream, client, False)):
                thread = threading.Thread(target=self._pump, args=(src, dst, up), daemon=True)
                thread.start()

    def _pump(self, src: Any, dst: Any, up: bool) -> None:
        try:
            while data := src.recv(65536):
                with self._lock:
                    if up:
                        self.sent += len(data)
                    else:
                        self.received += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def stop(self) -> None:
        self._open = False
        self._server.close()


def tag_ci(
    bench: Bench, repo: Any, seed: Path, env: dict[str, str], *, promote: bool, label: str
) -> dict[str, Any]:
    """`invoke ci` of the tag on a new FreshEngine (base and service images only) against a copy
    of the seed registry behind a :class:`ByteCounter`: wall time and bytes each way."""
    root = bench.work / f"registry-8-{label}"
    shutil.copytree(seed / "data", root / "data")
    reg = testbed.LocalRegistry(root).start()
    relay = ByteCounter(reg.host).start()
    engine = testbed.FreshEngine()
    try:
        engine.start()
        services = [service.image for service in bench.settings.smoke.services]
        engine.load(*base_images(bench.settings), *services, source=bench.client)
        run_env = {
            **env,
            "TRAVIS_COMMIT": repo.head(),
            "INVOKE_BUILDTOOLS_RELEASE_REGISTRIES": relay.host,
            "DOCKER_USERNAME": reg.username,
            "DOCKER_PASSWORD": reg.password,
            "DOCKER_HOST": engine.host,
        }
        try:
            seconds, result, _ = invoke_ci(repo, run_env, *([] if promote else ["--no-promote"]))
        except BuildToolsError as exc:
            raise BuildToolsError(f"{exc.problem}; {built_commands(engine, bench)}", "") from exc
        released = result.get("released") or {}
        if not released:
            raise BuildToolsError(f"invoke ci did not release: {result.get('decision')}", "")
        if bool(released.get("promoted")) != promote:
            raise BuildToolsError(f"invoke ci {'did not promote' if promote else 'promoted'}", "")
        return {
            "seconds": seconds,
            "up": relay.sent,
            "down": relay.received,
            "pulled": sum(int(c.get("bytes_pulled", 0)) for c in result.get("cache_sources", [])),
            "tags": len(released.get("pushes", [])),
            "promoted_sent": sum(int(p["bytes_sent"]) for p in released.get("promoted", [])),
        }
    finally:
        relay.stop()
        engine.stop()
        reg.stop()
        shutil.rmtree(root, ignore_errors=True)


def case_promotion(bench: Bench, runs: int) -> tuple[list[Row], str]:
    from tests.fixtures.git import init_repo
    from tests.fixtures.project import copy_into

    repo = init_repo(bench.work / "promote-project", dict(bench.git_env), branch="master")
    copy_into(repo)
    repo.commit(f"import lara-buildtools ({bench.run_id})")
    env = {
        "INVOKE_BUILDTOOLS_APP_REPOSITORY": f"{bench.prefix}/app",
        "INVOKE_BUILDTOOLS_NGINX_REPOSITORY": f"{bench.prefix}/nginx",
    }
    seed = testbed.LocalRegistry(bench.work / "registry-8-seed").start()
    try:
        seed_env = {
            **env,
            **TRAVIS_MASTER_PUSH,
            "TRAVIS_COMMIT": repo.head(),
            "INVOKE_BUILDTOOLS_RELEASE_REGISTRIES": seed.host,
            "DOCKER_USERNAME": seed.username,
            "DOCKER_PASSWORD": seed.password,
        }
        seed_seconds, seeded, _ = invoke_ci(repo, seed_env)
        bench.built += [image["id"] for image in seeded["images"]]
        tags = seed.tags(f"{bench.prefix}/app")
    finally:
        seed.stop()
    log(f"8: master released ({', '.join(tags)}) in {seed_seconds:.0f} s; tagging v1.2.3")
    repo.tag("v1.2.3", annotated=True)
    tag_env = {**env, **TRAVIS_TAG_PUSH}
    ours: list[dict[str, Any]] = []
    today: list[dict[str, Any]] = []
    for n in range(runs):
        order = [(True, ours), (False, today)] if n % 2 == 0 else [(False, today), (True, ours)]
        for promote, samples in order:
            label = f"{n + 1}-{'promote' if promote else 'build'}"
            samples.append(tag_ci(bench, repo, seed.root, tag_env, promote=promote, label=label))
            done = samples[-1]
            log(
                f"8: run {n + 1}/{runs} {'promotion' if promote else 'today (--no-promote)'}: "
                f"invoke ci {done['seconds']:.1f} s, {done['up'] / 1e3:.1f} kB up, "
                f"{done['down'] / 1e3:.1f} kB down"
            )
    promoted = "invoke ci --json (Travis build of tag v1.2.3) on a fresh engine: promotion"
    built = "the same with --no-promote (pull + build + smoke test + push), on another fresh engine"
    wire = "a TCP relay in front of the registry (bytes both ways, every connection)"
    rows = [
        Row(
            "8a",
            "Tag on a released commit: bytes on the wire both ways, promoted / built",
            Measure([s["up"] + s["down"] for s in ours], "B", promoted, wire),
            Measure([s["up"] + s["down"] for s in today], "B", built, wire),
            "≤ 64 kB per registry (one here)",
            all(s["up"] + s["down"] <= 64_000 for s in ours),
            note="promoted, per run: "
            + "; ".join(
                f"{format_bytes(s['up'])} up, {format_bytes(s['down'])} down "
                f"({format_bytes(s['promoted_sent'])} of blobs and manifests sent, "
                f"{s['tags']} tags)"
                for s in ours
            )
            + "; built: "
            + "; ".join(
                f"{format_bytes(s['up'])} up, {format_bytes(s['down'])} down "
                f"(cache pulled {format_bytes(s['pulled'])})"
                for s in today
            ),
        ),
        Row(
            "8b",
            "Tag on a released commit: wall time of `invoke ci`, promoted / built",
            Measure([s["seconds"] for s in ours], "s", promoted, "time.perf_counter around it"),
            Measure([s["seconds"] for s in today], "s", built, "time.perf_counter around it"),
            "≤ 10%",
            median(s["seconds"] for s in ours) <= 0.1 * median(s["seconds"] for s in today),
        ),
    ]
    note = (
        "A temporary git repository holds a copy of this checkout; its commit is released by "
        "`invoke ci` (a Travis push build of master) from the main engine to a local htpasswd "
        f"registry (tags {', '.join(tags)}; {seed_seconds:.0f} s, not counted), then tagged "
        "v1.2.3. Each measured run copies that registry's storage into a new registry behind a "
        "byte-counting TCP relay, starts a new testbed.FreshEngine loaded with the base and "
        "service images only (not counted) and runs `invoke ci --json` of the tag as a Travis "
        "build with DOCKER_HOST set to it: by default (promotion: the registry API only, the "
        "engine untouched) or with --no-promote (today's path: pull the sha- images as cache, "
        f"build, smoke-test, push). {runs} run(s) of each, alternating which goes first."
    )
    return rows, note


# --- case 6: image sizes ---------------------------------------------------------------------

# Debian's official slim image, `debian:bookworm-slim` on Docker Hub (linux/amd64): `docker image
# ls` shows 74.8 MB for the Debian 12 point releases (about 28 MB compressed on the Hub). Docker
# Hub is not reachable from our machines, so this is a constant, rounded up as the issue does.
SLIM_REFERENCE_BYTES = 75_000_000
SIDECAR_OWN_BUDGET = 5_000_000  # the sidecar's own layers, public/ apart
BASE_BUDGET = 90_000_000
PUBLIC_STEP = " in /lara/public"  # the history of `COPY --from=app /lara/public /lara/public`


def case_sizes(bench: Bench) -> tuple[list[Row], str]:
    built = bench.build(bench.commit("image sizes"))
    app_base, nginx_base = bench.settings.app.base_image, bench.settings.nginx.image.base_image
    images = {"base": app_base, "nginx-base": nginx_base}
    images.update(app=built["app"].id, nginx=built["nginx"].id)
    reg = testbed.LocalRegistry(bench.work / "registry-6").start()
    try:
        found: dict[str, list[Layer]] = {}
        for name, image in images.items():
            if name == "nginx-base" and nginx_base == app_base:
                found[name] = found["base"]
                continue
            push_image(bench.client, image, reg, f"{bench.prefix}/{name}", "sizes")
            found[name] = registry_layers(reg, f"{bench.prefix}/{name}", "sizes")
    finally:
        reg.stop()
        shutil.rmtree(reg.root, ignore_errors=True)
    sidecar_own = own_layers(found["nginx"], found["nginx-base"])
    public = [layer for layer in sidecar_own if PUBLIC_STEP in layer.created_by]
    rest = [layer for layer in sidecar_own if layer not in public]
    own_bytes, public_bytes = sum(x.size for x in sidecar_own), sum(x.size for x in public)
    app_bytes = distinct_bytes(found["app"])
    base_bytes = distinct_bytes(found["base"])
    beyond_app = own_layers(found["nginx"], found["base"], found["app"])
    app_own = own_layers(found["app"], found["base"])
    on_disk = {name: bench.client.images.get(image).attrs["Size"] for name, image in images.items()}
    pushed = "docker push {} to a local registry; GET its manifest and image config"
    sizes = "the manifest's compressed layer sizes"
    rows = [
        Row(
            "6a",
            "Sidecar: its own layers (not the base image's), compressed / the app image",
            Measure([float(own_bytes)], "B", pushed.format("<sidecar>"), f"{sizes}, base's apart"),
            Measure([float(app_bytes)], "B", pushed.format("<app>"), f"{sizes}, all layers"),
            f"own layers ≤ {format_bytes(SIDECAR_OWN_BUDGET)} + public/",
            own_bytes - public_bytes <= SIDECAR_OWN_BUDGET,
            note=f"public/ is {format_bytes(public_bytes)}, the other own layers "
            f"{format_bytes(own_bytes - public_bytes)}: "
            + ", ".join(
                f"`{short(history_step(x.created_by), 44)}` {format_bytes(x.size)}" for x in rest
            )
            + f"; a host that has the base and the app image pulls "
            f"{format_bytes(sum(x.size for x in beyond_app))} for the sidecar; the app's own "
            f"layers are {format_bytes(sum(x.size for x in app_own))}"
            f"; on disk (uncompressed): sidecar {format_bytes(on_disk['nginx'])}, app "
            f"{format_bytes(on_disk['app'])}",
        ),
        Row(
            "6b",
            "Base image, on disk / Debian's official slim image (`debian:bookworm-slim`)",
            Measure(
                [float(on_disk["base"])],
                "B",
                f"docker image inspect {app_base} (Size)",
                "the engine, uncompressed",
            ),
            Measure(
                [float(SLIM_REFERENCE_BYTES)],
                "B",
                "constant: docker image ls size of Docker Hub's debian:bookworm-slim (amd64)",
            ),
            f"≤ {format_bytes(BASE_BUDGET)}",
            on_disk["base"] <= BASE_BUDGET,
            note=f"compressed as pushed: {format_bytes(base_bytes)} "
            f"({len(found['base'])} layer); Debian's slim image is about 28 MB compressed on "
            "Docker Hub",
        ),
    ]
    note = (
        "The example app and its sidecar are built (cached) for a new commit, then the base "
        "image, the app and the sidecar are pushed to a fresh local registry (testbed."
        "LocalRegistry) and their sizes read from the registry: the manifest's layer sizes "
        "(compressed as pushed), each layer matched to its build step by the image config's "
        "history. The sidecar is built FROM the base image, so its own layers are its layers "
        "that the base does not have. Sizes are exact and the same on every run: one sample."
    )
    return rows, note


# --- case 7: the no-op's cost ---------------------------------------------------------------


def docker_cli() -> str:
    """Debian's docker CLI (the baseline the issue names) when installed, else the one on PATH."""
    return "/usr/bin/docker" if Path("/usr/bin/docker").is_file() else "docker"


def cli_build(plan: dict[str, Any], context: Path) -> list[str]:
    """``docker build`` with the plan's build args, labels and tags; the Dockerfile in the
    context, as a user of the CLI would keep it."""
    cmd = [docker_cli(), "build"]
    for key, value in plan["buildargs"].items():
        cmd += ["--build-arg", f"{key}={value}"]
    for key, value in plan["labels"].items():
        cmd += ["--label", f"{key}={value}"]
    for tag in plan["tags"]:
        cmd += ["-t", tag]
    return [*cmd, "-f", str(context / "Dockerfile"), str(context)]


def no_op_env(bench: Bench) -> dict[str, str]:
    """The caller's environment without CI or buildtools variables, on the bench's own
    repository and image names; the classic builder for the CLI too (invoke uses it)."""
    drop = ("TRAVIS", "GITHUB", "GITLAB", "CI", "INVOKE_", "SOURCE_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    return {
        **env,
        **bench.git_env,
        "INVOKE_BUILDTOOLS_REPO": str(bench.repo.path),
        "INVOKE_BUILDTOOLS_APP_REPOSITORY": bench.settings.app.repository,
        "DOCKER_BUILDKIT": "0",
    }


def timed_with_cpu(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall time of the process, and the CPU time (user + system) it and its children used:
    on a busy machine the wall time waits for the CPU, the CPU time says what the tool did."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = timed(cmd, cwd, env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def case_no_op(bench: Bench, runs: int) -> tuple[list[Row], str]:
    bench.commit("no-op")
    env = no_op_env(bench)
    invoke = invoke_command()
    plan_run = subprocess.run(
        [*invoke, "build", "--only", "app", "--dry-run", "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if plan_run.returncode != 0:
        raise BuildToolsError(f"invoke build --dry-run failed: {plan_run.stderr[-300:]}", "")
    (plan,) = json.loads(plan_run.stdout)
    context = bench.work / "cli-context"
    shutil.copytree(plan["context"], context, symlinks=True)
    shutil.copy2(plan["dockerfile"], context / "Dockerfile")
    commands = {
        "build": ([*invoke, "build", "--only", "app"], ROOT),
        "cli": (cli_build(plan, context), context),
        "version": ([*invoke, "version"], ROOT),
        "--version": ([*invoke, "--version"], ROOT),
    }
    made = time.monotonic()
    for key, (cmd, cwd) in commands.items():  # warm-up: builds the cache, not counted
        timed(cmd, cwd, env)
        if key in ("build", "cli"):
            bench.built.append(bench.client.images.get(plan["tags"][0]).id)
    log(f"7: warm-up builds took {time.monotonic() - made:.1f} s")
    n = max(runs, 7)
    samples: dict[str, list[float]] = {k: [] for k in commands}
    cpu: dict[str, list[float]] = {k: [] for k in commands}
    for _ in range(n):  # alternating pairs: ours, then its baseline
        for key, (cmd, cwd) in commands.items():
            wall, used = timed_with_cpu(cmd, cwd, env)
            samples[key].append(wall)
            cpu[key].append(used)
    load = os.getloadavg()[0]
    check = subprocess.run(
        [*invoke, "build", "--only", "app", "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    (built,) = json.loads(check.stdout) if check.returncode == 0 else [{}]
    cached = f"{built.get('cached_steps', '?')} of {built.get('steps', '?')}"
    log("7: medians " + ", ".join(f"{k} {Measure(v, 's', '').text()}" for k, v in samples.items()))
    build = Measure(samples["build"], "s", "invoke build --only app", "wall time")
    cli = Measure(
        samples["cli"],
        "s",
        f"DOCKER_BUILDKIT=0 {docker_cli()} build --build-arg … --label … -t … "
        "-f <context>/Dockerfile <context>",
        "wall time",
    )
    version = Measure(samples["version"], "s", "invoke version", "wall time")
    startup = Measure(samples["--version"], "s", "invoke --version", "wall time")
    rows = [
        Row(
            "7a",
            "No-op build: fully cached `invoke build --only app` / the Docker CLI's `docker build` "
            "(same build args, labels and tags)",
            build,
            cli,
            "≤ 5x",
            build.median <= 5 * cli.median,
            ratio_style=TIMES,
            note=f"the build after the runs, with --json: {cached} steps from cache; CPU time "
            f"(user + system, median): ours {Measure(cpu['build'], 's', '').text()}, the CLI "
            f"{Measure(cpu['cli'], 's', '').text()} (the engine's work is in neither)",
        ),
        Row(
            "7b",
            "No-op version: `invoke version` / `invoke --version` (Python and invoke start-up)",
            version,
            startup,
            "≤ 2x",
            version.median <= 2 * startup.median,
            ratio_style=TIMES,
            note=f"CPU time (user + system, median): ours {Measure(cpu['version'], 's', '').text()}"
            f", invoke --version {Measure(cpu['--version'], 's', '').text()}",
        ),
    ]
    bytecode = os.environ.get("PYTHONDONTWRITEBYTECODE")
    note = (
        "The example app (this repository's invoke.yaml) built from a temporary git repository "
        "(INVOKE_BUILDTOOLS_REPO) under the bench's image name, with no CI variables and no "
        "registry configured, as a developer runs it. The baseline is the CLI given the build "
        "args, labels and tags of `invoke build --only app --dry-run --json`, on a copy of the "
        "example context with the Dockerfile inside it; DOCKER_BUILDKIT=0 makes it use the classic "
        "builder invoke uses. One warm-up of each command builds the cache (not counted), then "
        f"{n} interleaved rounds of the four commands; wall time of the whole process. "
        f"The 1-minute load average at the end was {load:.1f} on {os.cpu_count()} CPUs. "
        f"PYTHONDONTWRITEBYTECODE was {'set' if bytecode else 'not set'}: with it set, only "
        "bytecode compiled at install (scripts/venv) is used."
    )
    return rows, note


# --- everything ------------------------------------------------------------------------------


def load_results(path: Path = RESULTS_JSON) -> Results:
    if not path.is_file():
        return Results()
    try:
        return Results.from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError):
        log(f"ignoring unreadable {path}")
        return Results()


def main(
    settings: Settings,
    *,
    only: int = 0,
    runs: int = 3,
    cold_runs: int = 2,
    duration: int = 5,
    output: Path = RESULTS_MD,
) -> Results:
    """Run the cases (all, or ``only``), merge them into results.json, write RESULTS.md."""
    if only and only not in CASES:
        raise BuildToolsError(
            f"there is no benchmark case {only}",
            "use --only 1 (rebuild), 2 (re-release), 3 (sidecar throughput), 4 (overhead), "
            "5 (fresh runner), 6 (image sizes), 7 (the no-op's cost) or 8 (promotion)",
        )
    if runs < 1 or cold_runs < 1 or duration < 1:
        raise BuildToolsError("--runs, --cold-runs and --duration must be at least 1", "")
    started = time.monotonic()
    client = testbed.ensure_engine()
    images.ensure_base(client, settings.app.base_image, "buildtools.app.base_image")
    images.ensure_base(client, settings.nginx.image.base_image, "buildtools.nginx.base_image")
    label, full = machine(client)
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    cases: dict[int, Callable[[Bench], tuple[list[Row], str]]] = {
        1: lambda b: case_rebuild(b, runs, cold_runs),
        2: lambda b: case_push(b, runs),
        3: lambda b: case_throughput(b, runs, duration),
        4: lambda b: case_overhead(b, runs),
        5: lambda b: case_fresh_runner(b, runs),
        6: case_sizes,
        7: lambda b: case_no_op(b, runs),
        8: lambda b: case_promotion(b, runs),
    }
    measured = Results(machines={label: full})
    failed: list[str] = []
    bench = Bench(client, settings)
    try:
        for number in [only] if only else CASES:
            log(f"case {number} …")
            case_started = time.monotonic()
            try:
                rows, note = cases[number](bench)
            except (BuildToolsError, docker.errors.APIError, requests.RequestException) as exc:
                failed.append(f"case {number}: {exc}")
                log(f"case {number} failed: {exc}")
                continue
            took = time.monotonic() - case_started
            for row in rows:
                row.machine, row.date = label, today
            measured.rows += rows
            measured.notes[str(number)] = f"{note} This case took {took:.0f} s."
    finally:
        bench.close()
    results = load_results().merge(measured) if only else measured
    if measured.rows:
        RESULTS_JSON.write_text(json.dumps(results.as_dict(), indent=2) + "\n")
        output.write_text(render_results(results))
    print(render_table(results.rows), end="")
    log(f"wrote {output} ({time.monotonic() - started:.0f} s in all)")
    if failed:
        raise BuildToolsError("; ".join(failed), "see the messages above")
    return results
