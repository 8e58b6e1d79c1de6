"""Case 1, metadata-only rebuild: a new commit that changes nothing in the build context
rebuilds only the metadata layer, in a fraction of a cold build's time."""

from __future__ import annotations

from benchmarks.harness import Bench, StepRecorder, log, short
from benchmarks.report import (
    Measure,
    Row,
    median,
)


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
        "build_all(only='app', nocache=True) of the commit's example/ tree "
        "(= invoke build --only app --no-cache)"
    )
    rebuild_cmd = (
        "git commit (no change to example/) in a temp repo, then build_all of the commit's tree "
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
        "first commit runs, uncounted, between the cold builds and the rebuilds. Every build "
        "is `invoke build`'s: its context is the commit's own tree, read from git (a release "
        "reuses only such a build)."
    )
    return rows, note
