"""Case 5, a fresh CI runner: `invoke ci` on an empty engine pulls the previous release as
its build cache, against a cold build."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import testbed
from benchmarks.commands import TRAVIS_MASTER_PUSH, invoke_ci, master_release
from benchmarks.harness import METADATA_START, ROOT, Bench, base_images, built_commands, log
from benchmarks.registries import distinct_bytes, registry_blobs, registry_layers
from benchmarks.report import (
    Measure,
    Row,
    format_bytes,
    median,
)
from buildtools.errors import BuildToolsError


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


def case_fresh_runner(bench: Bench, runs: int) -> tuple[list[Row], str]:
    repo = bench.project("ci-project")
    env = {
        **TRAVIS_MASTER_PUSH,
        "INVOKE_BUILDTOOLS_APP_REPOSITORY": f"{bench.prefix}/app",
        "INVOKE_BUILDTOOLS_NGINX_REPOSITORY": f"{bench.prefix}/nginx",
    }
    # The previous commit's release (sha-…, master, edge), made on the main engine.
    seed = testbed.LocalRegistry(bench.work / "registry-5-seed").start()
    try:
        seed_seconds, seeded, _ = master_release(repo, env, seed)
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
        f"master, as in tests/engine/test_cache.py) from the main engine to a local htpasswd "
        f"registry (testbed.LocalRegistry: tags {', '.join(tags)}; {seed_seconds:.0f} s, not "
        "counted). "
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
