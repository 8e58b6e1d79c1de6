"""Case 8, a tag on a released commit: promoting the released images through the registry API
against building them again, in bytes on the wire and wall time."""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
from pathlib import Path
from typing import Any

import testbed
from benchmarks.commands import invoke_ci, master_release
from benchmarks.harness import Bench, base_images, built_commands, log
from benchmarks.report import (
    Measure,
    Row,
    format_bytes,
    median,
)
from buildtools.errors import BuildToolsError

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
            "signed": len(released.get("signatures", [])),
            "signed_sent": sum(int(s["bytes_sent"]) for s in released.get("signatures", [])),
        }
    finally:
        relay.stop()
        engine.stop()
        reg.stop()
        shutil.rmtree(root, ignore_errors=True)


def case_promotion(bench: Bench, runs: int) -> tuple[list[Row], str]:
    repo = bench.project("promote-project")
    env = {
        "INVOKE_BUILDTOOLS_APP_REPOSITORY": f"{bench.prefix}/app",
        "INVOKE_BUILDTOOLS_NGINX_REPOSITORY": f"{bench.prefix}/nginx",
    }
    seed = testbed.LocalRegistry(bench.work / "registry-8-seed").start()
    try:
        seed_seconds, seeded, _ = master_release(repo, env, seed)
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
