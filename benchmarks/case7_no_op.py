"""Case 7, the no-op's cost: a fully cached `invoke build` against the Docker CLI given the
same arguments, and `invoke version` against invoke's own start-up."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from benchmarks.commands import invoke_command, timed, timed_with_cpu
from benchmarks.harness import ROOT, Bench, log
from benchmarks.report import (
    TIMES,
    Measure,
    Row,
)
from buildtools.errors import BuildToolsError


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
        # The app committed in that repository: a build of the commit's own tree, as users run.
        "INVOKE_BUILDTOOLS_APP_CONTEXT": str(bench.settings.app.context),
        "DOCKER_BUILDKIT": "0",
    }


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
