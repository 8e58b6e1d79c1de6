"""Case 2, re-release push: releasing commit N+1 after N (metadata only) uploads only the
changed layer, counted in the registry's own storage."""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from pathlib import Path
from typing import Any

import testbed
from benchmarks.harness import Bench, log
from benchmarks.registries import manifest_digests, registry_blobs
from benchmarks.report import (
    Measure,
    Row,
)
from buildtools.config.schema import Settings
from buildtools.errors import BuildToolsError
from buildtools.facts import buildinfo
from buildtools.plan import push_order
from buildtools.release import identity, pipeline
from buildtools.release.prepare import Options, roles
from buildtools.release.steps import Session


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
    rebuilt = [image.name for image in done.plan.local if image.image_id is None]
    if rebuilt:  # the release would then time a build too, not the push alone
        raise BuildToolsError(
            f"the release rebuilt {', '.join(rebuilt)}: the bench's build was not this commit's",
            "check Bench.build (a release reuses only the commit-tree build of its commit)",
        )
    meta = done.plan.meta
    store = done.plan.store  # the build records that made the released images this build's
    records = store.load if store is not None else (lambda image_id: None)
    local, _ = identity.local_images(bench.client, roles(settings), meta, records)
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
