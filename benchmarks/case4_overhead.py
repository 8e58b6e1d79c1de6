"""Case 4, tool overhead: what `invoke version` and `invoke build --dry-run` cost on a
repository of 5,001 commits and 500 tags, against `invoke --list` and `git describe`."""

from __future__ import annotations

import os
import time

from benchmarks.commands import invoke_command, timed, timed_with_cpu
from benchmarks.harness import ROOT, Bench, log
from benchmarks.report import (
    TIMES,
    Measure,
    Row,
)


def case_overhead(bench: Bench, runs: int) -> tuple[list[Row], str]:
    from tests.fixtures.git import fast_import_repo
    from tests.fixtures.project import commit_example

    commits, tag_every = 5000, 10
    made = time.monotonic()
    repo = fast_import_repo(bench.work / "big", dict(bench.git_env), commits, tag_every)
    # One commit past the last release (the usual CI build: not exactly on a tag) holding the
    # app, so the dry run plans a build of the commit's own tree, as a user's does.
    context = commit_example(repo)
    log(f"4: made a repository of {commits + 1} commits in {time.monotonic() - made:.1f} s")
    env = {k: v for k, v in bench.git_env.items() if not k.startswith(("TRAVIS", "GITHUB", "CI"))}
    env["INVOKE_BUILDTOOLS_REPO"] = str(repo.path)
    env["INVOKE_BUILDTOOLS_APP_CONTEXT"] = str(context)
    invoke = invoke_command()
    commands = {
        "describe": (["git", "describe", "--tags"], repo.path),
        "list": ([*invoke, "--list"], ROOT),
        "version": ([*invoke, "version"], ROOT),
        "dry-run": ([*invoke, "build", "--dry-run"], ROOT),
    }
    n = max(runs, 7)
    samples: dict[str, list[float]] = {k: [] for k in commands}
    cpu: dict[str, list[float]] = {k: [] for k in commands}
    for cmd, cwd in commands.values():  # warm-up (page cache, .pyc), not counted
        timed(cmd, cwd, env)
    for _ in range(n):
        for key, (cmd, cwd) in commands.items():
            wall, used = timed_with_cpu(cmd, cwd, env)
            samples[key].append(wall)
            cpu[key].append(used)
    load = os.getloadavg()[0]
    log("4: medians " + ", ".join(f"{k} {Measure(v, 's', '').text()}" for k, v in samples.items()))
    prefix = "INVOKE_BUILDTOOLS_REPO=<repo> .venv/bin/invoke"
    describe = Measure(samples["describe"], "s", "git describe --tags (in <repo>)", "wall time")
    version = Measure(samples["version"], "s", f"{prefix} version", "wall time")
    startup = Measure(samples["list"], "s", f"{prefix} --list", "wall time")

    def cpu_text(key: str) -> str:
        return Measure(cpu[key], "s", "").text()

    rows = [
        Row(
            "4a",
            f"Tool overhead: `invoke version` ({commits + 1:,} commits, {commits // tag_every} "
            "tags) / `invoke --list` (Python and invoke start-up, no git)",
            version,
            startup,
            "≤ 2x",
            version.median <= 2 * startup.median,
            ratio_style=TIMES,
            note=f"`git describe --tags` alone takes {describe.text()} (median of "
            f"{describe.runs}); CPU time (user + system, median): `invoke version` "
            f"{cpu_text('version')}, `invoke --list` {cpu_text('list')}, `git describe` "
            f"{cpu_text('describe')}",
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
        f"lightweight tag `v0.N.0` on every {tag_every}th), plus one commit on top that adds the "
        "example app (so HEAD is not exactly on a tag, and the dry run plans a build of the "
        "commit's own tree, INVOKE_BUILDTOOLS_APP_CONTEXT=<repo>/example, as a user's does). "
        f"Each command runs once as a warm-up, then {n} times interleaved "
        "(at least 7 runs, since each takes under a second and the machine is shared); wall "
        "time of the whole process (time.perf_counter around subprocess.run), without any CI "
        "environment variables. Reading the facts must stay cheap on a big repository: "
        "`invoke version` at most twice invoke's own start-up (4a, issue #25); 4b only shows "
        "what a dry-run build costs per call. invoke runs in this checkout (its tasks.py: the "
        "library's tasks plus `bench`, which imports nothing until it runs) and reads <repo> "
        f"through INVOKE_BUILDTOOLS_REPO. The 1-minute load average at the end was {load:.1f} "
        f"on {os.cpu_count()} CPUs."
    )
    return rows, note
