"""The runner of `invoke bench`: runs the chosen cases, merges their rows into
``benchmarks/results.json`` and renders ``benchmarks/RESULTS.md``.

Each case is a module of its own (``case1_rebuild`` … ``case8_promotion``) with one function
that returns its rows and a note; the shared parts are ``harness`` (the temporary repository,
image names and clean-up), ``commands``, ``registries`` and ``wrk``.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from pathlib import Path

import docker
import docker.errors
import requests

import testbed
from benchmarks.case1_rebuild import case_rebuild
from benchmarks.case2_push import case_push
from benchmarks.case3_throughput import case_throughput
from benchmarks.case4_overhead import case_overhead
from benchmarks.case5_fresh_runner import case_fresh_runner
from benchmarks.case6_sizes import case_sizes
from benchmarks.case7_no_op import case_no_op
from benchmarks.case8_promotion import case_promotion
from benchmarks.case9_tidy import case_tidy
from benchmarks.harness import Bench, log, machine
from benchmarks.report import (
    Results,
    Row,
    render_results,
    render_table,
)
from buildtools.config.schema import Settings
from buildtools.engine import images
from buildtools.errors import BuildToolsError

HERE = Path(__file__).resolve().parent
RESULTS_MD = HERE / "RESULTS.md"
RESULTS_JSON = HERE / "results.json"
# Case number -> what it measures, as --only names it.
CASES = {
    1: "rebuild",
    2: "re-release",
    3: "sidecar throughput",
    4: "overhead",
    5: "fresh runner",
    6: "image sizes",
    7: "the no-op's cost",
    8: "promotion",
    9: "registry tidy",
}


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
            "use --only " + ", ".join(f"{n} ({what})" for n, what in CASES.items()),
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
        9: lambda b: case_tidy(b, runs),
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
