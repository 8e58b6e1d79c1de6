"""The pure parts of `invoke bench`: medians, ratios, the table and RESULTS.md rendering.

No timing is asserted here: the benchmarks themselves run with `invoke bench`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from benchmarks import report
from benchmarks.case5_fresh_runner import dockerfile_steps_from
from benchmarks.case7_no_op import cli_build
from benchmarks.harness import ROOT, StepRecorder
from benchmarks.registries import (
    Layer,
    distinct_bytes,
    history_step,
    manifest_layers,
    own_layers,
    registry_blobs,
)
from benchmarks.report import PERCENT, TIMES, Measure, Results, Row
from benchmarks.wrk import parse_wrk, wrk_command
from buildtools.errors import BuildToolsError


def test_median_of_odd_and_even_counts():
    assert report.median([3.0, 1.0, 2.0]) == 2.0
    assert report.median([4.0, 1.0, 2.0, 3.0]) == 2.5
    with pytest.raises(ValueError):
        report.median([])


def test_ratio_is_ours_over_baseline_and_none_without_a_baseline():
    assert report.ratio(1.0, 20.0) == 0.05
    assert report.ratio(5.0, 0.0) is None


@pytest.mark.parametrize(
    ("value", "style", "text"),
    [
        (0.05, PERCENT, "5.0%"),
        (0.0001, PERCENT, "0.01%"),
        (0.0, PERCENT, "0%"),
        (4.2, TIMES, "4.20x"),
        (36.4, TIMES, "36x"),
        (None, PERCENT, "—"),
    ],
)
def test_format_ratio(value, style, text):
    assert report.format_ratio(value, style) == text


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (0.382, "s", "382 ms"),
        (18.76, "s", "18.8 s"),
        (197_100_000, "B", "197.1 MB"),
        (20_012, "B", "20.0 kB"),
        (512, "B", "512 B"),
        (14103.4, "req/s", "14,103 req/s"),
        (1, "layers", "1 layer"),
        (6, "layers", "6 layers"),
        (2.5, "blobs", "2.5 blobs"),
    ],
)
def test_format_value(value, unit, text):
    assert report.format_value(value, unit) == text


def measure(samples, unit="s", command="cmd --flag", source=""):
    return Measure(list(samples), unit, command, source)


def row(case="1b", ours=(1.0, 2.0, 3.0), baseline=(40.0, 20.0), **kwargs):
    values = {
        "what": f"row {case}",
        "ours": measure(ours, command=f"ours-{case}"),
        "baseline": measure(baseline, command=f"baseline-{case}") if baseline else None,
        "goal": "< 5%",
        "met": False,
        "machine": "2 CPU",
        "date": "2024-01-01",
        **kwargs,
    }
    return Row(case, **values)


def test_measure_method_says_command_runs_median_and_samples():
    text = measure([2.0, 1.0, 3.0], command="invoke build", source="the stream").method()
    assert "`invoke build`" in text
    assert "3 runs" in text
    assert "median 2.0 s" in text
    assert "samples: 2.0 s, 1.0 s, 3.0 s" in text
    assert "read from the stream" in text


def test_row_ratio_uses_the_medians():
    r = row(ours=(1.0, 2.0, 3.0), baseline=(40.0, 20.0))
    assert r.ratio == pytest.approx(2.0 / 30.0)
    assert r.cells()[4] == "6.7%"
    assert row(baseline=None).ratio is None
    assert row(baseline=None).cells()[2] == "—"


def test_table_has_the_header_and_one_line_per_row_with_pipes_escaped():
    rows = [row("1a", what="a | b", met=True), row("1b", met=None)]
    table = report.render_table(rows)
    lines = table.splitlines()
    assert lines[0] == "| " + " | ".join(report.TABLE_HEADER) + " |"
    assert len(lines) == 4
    assert "a \\| b" in lines[2]
    assert "| yes |" in lines[2]
    assert "| — |" in lines[3]
    for column in ("what", "baseline", "ours", "ratio", "goal", "machine", "date"):
        assert column in lines[0]


def test_results_md_gives_the_method_of_every_row():
    rows = [row("1a"), row("1b", note="where the time went"), row("3a", baseline=None)]
    results = Results(rows, {"2 CPU": "2 x Xeon, 24 GiB"}, {"1": "Case one setup.", "3": "wrk."})
    text = report.render_results(results)
    assert report.render_table(rows) in text
    assert "2 x Xeon, 24 GiB" in text
    for r in rows:
        assert f"**{r.case}. {r.what}**" in text
        assert f"`ours-{r.case}`" in text
        assert f"median {r.ours.text()}" in text
    assert "`baseline-1a`" in text and "`baseline-1b`" in text
    assert "where the time went" in text
    assert "### 1. Metadata-only rebuild" in text and "### 3. Sidecar asset throughput" in text
    assert "Case one setup." in text


def test_merge_replaces_the_measured_cases_and_keeps_the_others():
    old = Results([row("1a"), row("1b"), row("4a")], {"2 CPU": "old"}, {"1": "old 1", "4": "4"})
    new_row = row("1a", ours=(9.0,), machine="4 CPU")
    merged = old.merge(Results([new_row], {"4 CPU": "new"}, {"1": "new 1"}))
    assert [r.case for r in merged.rows] == ["1a", "4a"]
    assert merged.rows[0].ours.samples == [9.0]
    assert merged.notes == {"1": "new 1", "4": "4"}
    assert merged.machines == {"2 CPU": "old", "4 CPU": "new"}


def test_results_round_trip_through_dicts():
    results = Results([row("2a", ratio_style=TIMES), row("4a", baseline=None)], {"m": "d"}, {})
    again = Results.from_dict(results.as_dict())
    assert again == results
    assert report.render_results(again) == report.render_results(results)


WRK_OUTPUT = """\
Running 5s test @ http://127.0.0.1:32768/assets/application.js
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.61ms    1.30ms  20.53ms   80.54%
    Req/Sec     6.21k   512.87     7.10k    72.00%
  61797 requests in 5.00s, 1.57GB read
Requests/sec:  12351.52
Transfer/sec:    321.72MB
"""


def test_parse_wrk_reads_requests_per_second():
    assert parse_wrk(WRK_OUTPUT) == pytest.approx(12351.52)


def test_parse_wrk_refuses_errors():
    with pytest.raises(BuildToolsError, match="non-2xx"):
        parse_wrk(WRK_OUTPUT + "  Non-2xx or 3xx responses: 12\n")
    with pytest.raises(BuildToolsError, match="socket errors"):
        parse_wrk(WRK_OUTPUT + "  Socket errors: connect 0, read 3, write 0, timeout 0\n")
    with pytest.raises(BuildToolsError, match="no Requests/sec"):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused")


def test_step_recorder_counts_rebuilt_layers_but_not_setup_steps():
    rec = StepRecorder()
    steps = [
        (1, "ARG BASE_IMAGE=debian", False),
        (2, "FROM ${BASE_IMAGE}", False),
        (3, "RUN apt-get install ruby", True),
        (4, "ARG LARA_VERSION=unknown", True),
        (5, "RUN printf '%s' x > /lara/config/version.yml", False),
        (6, "ENV LARA_VERSION=1", False),
        (7, "LABEL a=b", False),
    ]
    for number, instruction, cached in steps:
        rec.step("app", number, len(steps), instruction)
        rec.step_done("app", number, cached, 0.1)
    rebuilt = rec.rebuilt("app")
    assert [s.number for s in rebuilt] == [5, 6, 7]
    assert [s.number for s in rebuilt if s.makes_layer] == [5]
    assert rec.metadata_from("app") == 4
    assert "1 LABEL steps" in rec.timing("app", 1.0)


def test_registry_blobs_reads_the_storage_directory(tmp_path: Path):
    blobs = tmp_path / "data/docker/registry/v2/blobs/sha256"
    for digest, size in (("ab" + "1" * 62, 10), ("cd" + "2" * 62, 3)):
        folder = blobs / digest[:2] / digest
        folder.mkdir(parents=True)
        (folder / "data").write_bytes(b"x" * size)
    assert registry_blobs(tmp_path) == {
        "sha256:ab" + "1" * 62: 10,
        "sha256:cd" + "2" * 62: 3,
    }
    assert registry_blobs(tmp_path / "missing") == {}


def repository_tasks() -> ModuleType:
    """This checkout's own tasks.py, loaded under a name of its own (``tasks`` is the app's)."""
    spec = importlib.util.spec_from_file_location("repository_tasks", ROOT / "tasks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_is_this_repositorys_task_and_not_the_packages():
    from buildtools.tasks import ns as library

    ns = repository_tasks().ns
    assert "bench" in ns.task_names and "bench" not in library.task_names
    # Every task of the library, with the same defaults: the checkout runs what apps run.
    assert set(library.task_names) | {"bench"} == set(ns.task_names)
    assert ns.configuration() == library.configuration()
    assert ns["version"] is library["version"]


def test_bench_names_the_cases_it_has(monkeypatch: pytest.MonkeyPatch):
    """--only with a case that does not exist is one line naming those that do, before the
    engine is asked for anything."""
    from benchmarks import run
    from buildtools.config import schema

    monkeypatch.setattr(run.testbed, "ensure_engine", lambda: pytest.fail("engine asked"))
    with pytest.raises(BuildToolsError) as caught:
        run.main(schema.load(schema.merged({}), ROOT), only=10)
    assert caught.value.problem == "there is no benchmark case 10"
    assert "1 (rebuild)" in caught.value.fix and "9 (registry tidy)" in caught.value.fix


def test_manifest_layers_match_each_layer_to_its_build_step():
    manifest = {
        "layers": [
            {"digest": "sha256:base", "size": 29_000_000},
            {"digest": "sha256:nginx", "size": 3_200_000},
            {"digest": "sha256:public", "size": 6_000},
        ]
    }
    config = {
        "history": [
            {"created_by": "debootstrap"},
            {"created_by": '/bin/sh -c #(nop)  CMD ["bash"]', "empty_layer": True},
            {"created_by": "/bin/sh -c set -eu; apt-get install nginx"},
            {"created_by": "/bin/sh -c #(nop)  USER nginx", "empty_layer": True},
            {"created_by": "/bin/sh -c #(nop) COPY dir:0abc in /lara/public "},
        ]
    }
    layers = manifest_layers(manifest, config)
    assert [(x.digest, x.size) for x in layers] == [
        ("sha256:base", 29_000_000),
        ("sha256:nginx", 3_200_000),
        ("sha256:public", 6_000),
    ]
    assert layers[2].created_by.endswith("in /lara/public ")
    # Without a usable history the sizes still count.
    assert [x.created_by for x in manifest_layers(manifest, {})] == ["", "", ""]


def test_own_layers_and_distinct_bytes_count_a_shared_layer_once():
    base = [Layer("sha256:base", 100)]
    app = [Layer("sha256:base", 100), Layer("sha256:gems", 40), Layer("sha256:meta", 1)]
    sidecar = [Layer("sha256:base", 100), Layer("sha256:nginx", 30)]
    assert own_layers(sidecar, base) == [Layer("sha256:nginx", 30)]
    assert own_layers(sidecar, base, app) == [Layer("sha256:nginx", 30)]
    assert own_layers(base, app) == []
    assert distinct_bytes(app, sidecar) == 171
    assert distinct_bytes() == 0


@pytest.mark.parametrize(
    ("created_by", "step"),
    [
        (
            "/bin/sh -c #(nop) COPY file:abc in /etc/nginx/nginx.conf ",
            "COPY file:abc in /etc/nginx/nginx.conf",
        ),
        ("|2 A=1 B=2 /bin/sh -c printf '%s' x > /y", "RUN printf '%s' x > /y"),
        ("/bin/sh -c set -eu; apt-get update", "RUN set -eu; apt-get update"),
        ("debootstrap", "debootstrap"),
    ],
)
def test_history_step_reads_the_instruction(created_by, step):
    assert history_step(created_by) == step


def test_dockerfile_steps_from_counts_instructions_to_the_end():
    text = """\
# comment
ARG BASE_IMAGE=debian
FROM ${BASE_IMAGE}
RUN apt-get update \\
    # a comment inside a continuation
    && apt-get install -y ruby

ARG LARA_VERSION=unknown
ARG LARA_COMMIT=""
RUN printf '%s' "${LARA_VERSION}" > /v
ENV LARA_VERSION=${LARA_VERSION} \\
    LARA_COMMIT=${LARA_COMMIT}
USER lara
"""
    assert dockerfile_steps_from(text) == 5
    assert dockerfile_steps_from(text, "FROM") == 7
    assert dockerfile_steps_from(text, "COPY") == 0


def test_the_repository_dockerfile_has_its_metadata_block_last():
    # Case 5's goal for the app: the steps from `ARG LARA_VERSION` on, plus the LABEL step.
    assert dockerfile_steps_from((ROOT / "Dockerfile").read_text()) == 10


def test_wrk_command_is_the_same_on_both_paths():
    assert wrk_command("http://nginx/a.js", 5) == [
        "wrk",
        "-t2",
        "-c32",
        "-d5s",
        "http://nginx/a.js",
    ]


def test_the_cli_baseline_gets_the_plans_args_labels_and_tags(tmp_path: Path):
    """Case 7a's `docker build`: each build arg (multi-line ones whole), label and tag of the
    plan as its own flag, and the Dockerfile inside the context."""
    plan = {
        "buildargs": {"BASE_IMAGE": "lara-buildtools/debian:latest", "LARA_VERSION_YML": "a: 1\n"},
        "labels": {"org.opencontainers.image.revision": "0123abc"},
        "tags": ["lara/app:sha-0123abc", "lara/app:master"],
    }
    cmd = cli_build(plan, tmp_path)
    assert cmd[1] == "build"
    assert cmd[-3:] == ["-f", str(tmp_path / "Dockerfile"), str(tmp_path)]
    assert list(zip(cmd[2:-3:2], cmd[3:-3:2], strict=True)) == [
        ("--build-arg", "BASE_IMAGE=lara-buildtools/debian:latest"),
        ("--build-arg", "LARA_VERSION_YML=a: 1\n"),
        ("--label", "org.opencontainers.image.revision=0123abc"),
        ("-t", "lara/app:sha-0123abc"),
        ("-t", "lara/app:master"),
    ]
