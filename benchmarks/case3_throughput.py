"""Case 3, sidecar asset throughput: wrk against the sidecar serving assets from disk and
from its proxy cache, against the same nginx with a minimal config and against the app."""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import shutil
import tarfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import docker
import docker.errors
import requests

from benchmarks.harness import Bench, log
from benchmarks.report import (
    TIMES,
    Measure,
    Row,
)
from benchmarks.wrk import wrk, wrk_image, wrk_inside
from buildtools.errors import BuildToolsError

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
            # X-Cache-Status only where asked (as invoke up asks): (d) checks MISS then HIT.
            environment={"APP_UPSTREAM": f"{app_name}:3000", "LARA_CACHE_STATUS": "on"},
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
