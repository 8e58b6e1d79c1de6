"""The nginx sidecar image with real containers: the example app behind it on a user network.

Each check is what an operator would look at: response headers, bodies, and the app's own
request log (``docker logs`` of the app container, one line per request it served).
"""

from __future__ import annotations

import dataclasses
import io
import re
import secrets
import socket
import tarfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import docker
import docker.errors
import pytest
import requests
from docker.models.containers import Container

from buildtools import nginx_checks, nginx_config
from buildtools.errors import BuildToolsError
from tests.fixtures.sidecar import (
    Stack,
    app_log,
    app_requests,
    render_nginx_conf,
    wait_for,
)


def access_log_of(sidecar) -> str:
    return sidecar.container.logs(stdout=True, stderr=False).decode()


IMMUTABLE = "public, max-age=31536000, immutable"

# A stand-in upstream that answers every request with the request head it received, so the
# headers the sidecar sends to the app can be read back. It sets its own X-Frame-Options.
ECHO_SERVER = r"""
require "socket"
$stdout.sync = true
server = TCPServer.new("0.0.0.0", 3000)
loop do
  client = server.accept
  head = []
  while (line = client.gets) && line != "\r\n"
    head << line.chomp
  end
  puts head.first
  body = head.join("\n") + "\n"
  client.write("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Frame-Options: DENY\r\n" \
               "Content-Length: #{body.bytesize}\r\nConnection: close\r\n\r\n#{body}")
  client.close
rescue StandardError => e
  warn e.message
end
"""


class Deployment:
    """The sidecars under test and the upstreams behind them, on one network."""

    def __init__(self, stack: Stack, app_image: str, sidecar_image: str) -> None:
        self.stack = stack
        self.sidecar_image = sidecar_image
        # The apps stand in for a newer app whose assets the sidecar lacks, so they serve their
        # own public/ (the example, like LARA, does not unless RAILS_SERVE_STATIC_FILES is set).
        serve_public = {"RAILS_SERVE_STATIC_FILES": "1"}
        self.app = stack.run(app_image, "app", aliases=("app",), environment=serve_public)
        self.cookie_app = stack.run(
            app_image,
            "cookie-app",
            aliases=("cookie-app",),
            environment={**serve_public, "LARA_EXAMPLE_SET_COOKIE": "1"},
        )
        self.echo = stack.run(
            app_image, "echo", aliases=("echo",), command=["ruby", "-e", ECHO_SERVER]
        )
        self.sidecar = stack.sidecar(sidecar_image)
        self.cookie_sidecar = stack.sidecar(
            sidecar_image, "cookie-nginx", environment={"APP_UPSTREAM": "cookie-app:3000"}
        )
        self.echo_sidecar = stack.sidecar(
            sidecar_image, "echo-nginx", environment={"APP_UPSTREAM": "echo:3000"}
        )
        for sidecar in (self.sidecar, self.cookie_sidecar):
            wait_for(lambda s=sidecar: s.get("/health").status_code == 200, "the app behind nginx")
        wait_for(lambda: self.echo_sidecar.get("/").status_code == 200, "the echo server")


@pytest.fixture(scope="module")
def deployment(
    docker_client: docker.DockerClient, app_image: str, sidecar_image: str
) -> Iterator[Deployment]:
    stack = Stack(docker_client)
    try:
        yield Deployment(stack, app_image, sidecar_image)
    finally:
        stack.close()


def run_in_image(client: docker.DockerClient, image: str, command: list[str], **kwargs) -> str:
    output = client.containers.run(
        image, command, remove=True, stdout=True, stderr=True, network_mode="none", **kwargs
    )
    return output.decode()


def public_files(container: Container, folder: str) -> list[str]:
    code, output = container.exec_run(["ls", "-A", f"/lara/public/{folder}"])
    assert code == 0, output
    return output.decode().split()


def read_file(container: Container, path: str) -> bytes:
    code, output = container.exec_run(["cat", path], stderr=False)
    assert code == 0, output
    return output


def add_asset(app: Container, name: str, body: bytes) -> str:
    """Put a file into the running app's public/assets (what a newer app image would have)."""
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(body), 0o644, int(time.time())
        tar.addfile(info, io.BytesIO(body))
    assert app.put_archive("/lara/public/assets", archive.getvalue())
    return f"/assets/{name}"


def digest_name(stem: str, ext: str = "css") -> str:
    return f"{stem}-{secrets.token_hex(32)}.{ext}"


# ---- the image itself ----


def test_nginx_t_passes_in_image_without_the_app(docker_client, sidecar_image):
    output = run_in_image(docker_client, sidecar_image, ["nginx", "-t"])
    assert "syntax is ok" in output
    assert "test is successful" in output


def test_image_stops_gracefully_and_runs_its_entrypoint(docker_client, sidecar_image):
    config = docker_client.images.get(sidecar_image).attrs["Config"]
    assert config["StopSignal"] == "SIGQUIT"
    assert "APP_UPSTREAM=app:3000" in config["Env"]
    written = run_in_image(
        docker_client,
        sidecar_image,
        ["cat", "/etc/nginx/lara/upstream.conf"],
        environment={"APP_UPSTREAM": "lara-web:8080"},
    )
    assert written == nginx_config.render_upstream("lara-web:8080")


def test_entrypoint_accepts_the_upstreams_buildtools_accepts(docker_client, sidecar_image):
    values = [
        "app:3000",
        "10.0.0.5:3000",
        "[fd00::5]:3000",
        "lara-app.internal:8080",
        "app",
        "app:",
        ":3000",
        "app:3000;",
        'app:3000"',
        "app:3000 x",
        "http://app:3000",
        "-app:3000",
        "app}:3000",
        "app:\u0663\u0660\u0660\u0660",  # Arabic-Indic digits: not a port to nginx
    ]
    script = "".join(
        f"if APP_UPSTREAM='{value}' lara-nginx-entrypoint true 2>/dev/null;"
        f" then echo 'ok {value}'; else echo 'bad {value}'; fi\n"
        for value in values
    )
    output = run_in_image(
        docker_client, sidecar_image, ["-c", script], entrypoint=["sh"], user="root"
    )
    verdicts = dict(line.split(" ", 1)[::-1] for line in output.splitlines())

    def python_accepts(value: str) -> bool:
        try:
            nginx_checks.check_upstream(value)
        except BuildToolsError:
            return False
        return True

    assert verdicts == {v: "ok" if python_accepts(v) else "bad" for v in values}
    assert verdicts["app:3000"] == "ok"
    assert verdicts["app:3000;"] == "bad"


@pytest.mark.parametrize(
    ("upstream", "message"),
    [
        ("app", "lara-nginx: APP_UPSTREAM='app' is not host:port (e.g. app:3000)"),
        (
            "app:99999",
            "lara-nginx: APP_UPSTREAM='app:99999' has port 99999, not 1-65535 (e.g. app:3000)",
        ),
        ("app:0", "lara-nginx: APP_UPSTREAM='app:0' has port 0, not 1-65535 (e.g. app:3000)"),
        # One good line used to carry the others into upstream.conf, as nginx directives.
        (
            "app:3000\ninclude /etc/shadow;",
            "lara-nginx: APP_UPSTREAM has a line break; give one host:port (e.g. app:3000)",
        ),
        (
            "include /etc/shadow;\napp:3000",
            "lara-nginx: APP_UPSTREAM has a line break; give one host:port (e.g. app:3000)",
        ),
        (
            "app:3000\r",
            "lara-nginx: APP_UPSTREAM has a line break; give one host:port (e.g. app:3000)",
        ),
        (
            "app:\u0663\u0660\u0660\u0660",
            "lara-nginx: APP_UPSTREAM='app:\u0663\u0660\u0660\u0660' is not host:port"
            " (e.g. app:3000)",
        ),
    ],
)
def test_bad_app_upstream_stops_the_container_with_one_line(
    docker_client, sidecar_image, upstream, message
):
    # The default command (nginx itself), as `docker run` starts it.
    container = docker_client.containers.run(
        sidecar_image, detach=True, network_mode="none", environment={"APP_UPSTREAM": upstream}
    )
    try:
        assert container.wait(timeout=30)["StatusCode"] == 64
        assert container.logs(stdout=False, stderr=True).decode().splitlines() == [message]
        assert container.logs(stdout=True, stderr=False) == b""
    finally:
        container.remove(force=True)


def test_image_runs_unprivileged_and_reports_its_health(docker_client, sidecar_image, deployment):
    config = docker_client.images.get(sidecar_image).attrs["Config"]
    assert config["User"] == "nginx"
    assert config["Healthcheck"]["Test"] == ["CMD", "/usr/local/bin/lara-nginx-healthcheck"]
    container = deployment.sidecar.container

    def health() -> str:
        container.reload()
        return container.attrs["State"]["Health"]["Status"]

    wait_for(lambda: health() == "healthy", "the sidecar's HEALTHCHECK to pass", 60, 1)
    # Master and workers, read from /proc (the image has no ps): none runs as root.
    code, status = container.exec_run(["sh", "-c", "grep -h -E '^(Name|Uid):' /proc/[0-9]*/status"])
    assert code == 0
    fields = [line.split()[1:3] for line in status.decode().splitlines()]
    nginx_uids = [
        uid[1] for name, uid in zip(fields[::2], fields[1::2], strict=True) if name[0] == "nginx"
    ]
    assert len(nginx_uids) > 1 and "0" not in nginx_uids
    # Everything nginx writes belongs to its user.
    code, owners = container.exec_run(
        [
            "stat",
            "-c",
            "%U %n",
            "/run/nginx/nginx.pid",
            "/etc/nginx/lara/upstream.conf",
            "/var/cache/nginx/lara",
            "/var/cache/nginx/temp",
        ]
    )
    assert code == 0, owners
    assert {line.split()[0] for line in owners.decode().splitlines()} == {"nginx"}


def test_health_check_fails_when_nginx_does_not_answer(docker_client, sidecar_image):
    output = run_in_image(
        docker_client,
        sidecar_image,
        # Both on stdout, so their order is fixed (stderr and stdout interleave by chance).
        ["-c", "lara-nginx-healthcheck 2>&1; echo exit=$?"],
        entrypoint=["sh"],
    )
    assert output.splitlines() == [
        "lara-nginx-healthcheck: nothing listens on 127.0.0.1:80",
        "exit=1",
    ]


# ---- assets from the sidecar's own disk ----


@pytest.mark.parametrize("ext", ["css", "js"])
def test_fingerprinted_asset_is_served_from_disk_gzipped_and_immutable(deployment, ext):
    sidecar, app = deployment.sidecar, deployment.app
    name = next(
        f
        for f in public_files(sidecar.container, "assets")
        if re.fullmatch(rf"application-[0-9a-f]{{64}}\.{ext}", f)
    )
    path = f"/assets/{name}"
    built = read_file(app, f"/lara/public{path}")

    zipped = sidecar.get(path, headers={"Accept-Encoding": "gzip"})
    plain = sidecar.get(path, headers={"Accept-Encoding": "identity"})

    assert zipped.status_code == 200
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert zipped.content == built  # requests unzips
    assert zipped.headers["Cache-Control"] == IMMUTABLE
    assert "Accept-Encoding" in zipped.headers["Vary"]
    assert zipped.headers["X-Content-Type-Options"] == "nosniff"
    assert zipped.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert "X-Cache-Status" not in zipped.headers
    assert "Content-Encoding" not in plain.headers
    assert plain.content == built
    assert plain.headers["Cache-Control"] == IMMUTABLE
    assert app_requests(sidecar, app, path) == 0


def test_other_public_files_get_a_short_max_age_and_never_reach_the_app(deployment):
    sidecar, app = deployment.sidecar, deployment.app
    logo = sidecar.get("/images/lara-logo.svg")
    robots = sidecar.get("/robots.txt")

    assert logo.status_code == 200
    assert logo.content == read_file(app, "/lara/public/images/lara-logo.svg")
    assert logo.headers["Cache-Control"] == "public, max-age=300"
    assert logo.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert robots.status_code == 200
    assert robots.content == read_file(app, "/lara/public/robots.txt")
    assert app_requests(sidecar, app, "/images/lara-logo.svg") == 0
    assert app_requests(sidecar, app, "/robots.txt") == 0


def test_hidden_files_are_not_published(deployment):
    sidecar = deployment.sidecar
    manifest = next(f for f in public_files(sidecar.container, "assets") if f.startswith("."))
    response = sidecar.get(f"/assets/{manifest}")
    assert response.status_code == 404
    assert "application.css" not in response.text


# ---- what goes to the app ----


def seen_by_app(response: requests.Response) -> dict[str, str]:
    """The request headers the echo server received."""
    return dict(line.split(": ", 1) for line in response.text.splitlines()[1:])


# What a client could send to pose as a proxy: another address, scheme, port and host.
SPOOFED = {
    "X-Forwarded-For": "203.0.113.9",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Port": "8443",
    "X-Forwarded-Host": "admin.example.org",
    "X-Forwarded-Ssl": "on",
    "Forwarded": "for=203.0.113.9;proto=https",
    "Client-IP": "203.0.113.9",
    "X-Real-IP": "203.0.113.9",
    "X-Forwarded-Scheme": "https",
}
# Never passed to the app, from a trusted proxy either: Rails needs only For, Proto, Port (and
# Host, checked against nginx.server_names).
DROPPED = ("X-Forwarded-Ssl", "X-Forwarded-Scheme", "Forwarded", "X-Real-IP", "Client-IP")


def test_pages_are_proxied_to_the_app_with_laras_headers(deployment):
    # Changed with nginx.trusted_proxies: a direct client's X-Forwarded-* are no longer passed
    # on (they were); the app gets the connection's address, scheme and port.
    sidecar = deployment.echo_sidecar
    before = time.time()
    response = sidecar.get(
        "/activities/7?x=1",
        headers={"Host": "lara.example.org:8080", "Cookie": "_lara_session=abc", **SPOOFED},
    )

    assert response.status_code == 200
    head = response.text.splitlines()
    headers = seen_by_app(response)
    assert head[0] == "GET /activities/7?x=1 HTTP/1.0"
    assert headers["Host"] == "lara.example.org"  # $host: no port, any Host (no server_names)
    assert re.fullmatch(r"[0-9.]+", headers["X-Forwarded-For"])
    assert headers["X-Forwarded-Proto"] == "http"
    assert headers["X-Forwarded-Port"] == "80"
    for spoofable in ("X-Forwarded-Host", *DROPPED):
        assert spoofable not in headers
    start = re.fullmatch(r"t=(\d+\.\d{3})", headers["X-Request-Start"])
    assert start and before - 5 < float(start.group(1)) < time.time() + 5
    assert headers["Cookie"] == "_lara_session=abc"
    # The app's own X-Frame-Options wins; the sidecar does not add a second one.
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_a_trusted_proxy_passes_only_what_rails_needs(deployment, sidecar_settings, tmp_path):
    # The address this test's requests come from, as the sidecar sees it (Docker's port proxy).
    peer = seen_by_app(deployment.echo_sidecar.get("/who"))["X-Forwarded-For"]
    cfg = dataclasses.replace(sidecar_settings, trusted_proxies=(peer,))
    sidecar = deployment.stack.sidecar(
        deployment.sidecar_image,
        "trusting-nginx",
        nginx_conf=render_nginx_conf(cfg, tmp_path),
        environment={"APP_UPSTREAM": "echo:3000"},
    )
    path = f"/trusted-{secrets.token_hex(4)}"
    headers = seen_by_app(sidecar.get(path, headers=SPOOFED))
    no_port = seen_by_app(sidecar.get("/", headers={"X-Forwarded-Proto": "HTTPS"}))
    bad_proto = seen_by_app(sidecar.get("/", headers={"X-Forwarded-Proto": "gopher"}))
    ports = {
        port: seen_by_app(
            sidecar.get("/", headers={"X-Forwarded-Proto": "https", "X-Forwarded-Port": port})
        )["X-Forwarded-Port"]
        for port in ("1", "65535", "99999", "0", "8443, 80", "08443")
    }

    assert headers["X-Forwarded-For"] == f"203.0.113.9, {peer}"
    assert headers["X-Forwarded-Proto"] == "https"
    assert headers["X-Forwarded-Port"] == "8443"
    # Without nginx.server_names there is nothing to check a forwarded host against.
    assert "X-Forwarded-Host" not in headers
    assert [name for name in DROPPED if name in headers] == []
    assert (no_port["X-Forwarded-Proto"], no_port["X-Forwarded-Port"]) == ("https", "443")
    assert (bad_proto["X-Forwarded-Proto"], bad_proto["X-Forwarded-Port"]) == ("http", "80")
    # A port outside 1-65535 (or not a port) gives way to the forwarded scheme's.
    assert ports == {
        "1": "1",
        "65535": "65535",
        "99999": "443",
        "0": "443",
        "8443, 80": "443",
        "08443": "443",
    }
    # realip: the access log names the client behind the proxy.
    wait_for(
        lambda: re.search(rf'^203\.0\.113\.9 - .*"GET {path} ', access_log_of(sidecar), re.M),
        "the client's address in the access log",
        5,
    )


def test_a_forwarded_host_reaches_the_app_only_if_it_is_a_server_name(
    deployment, sidecar_settings, tmp_path
):
    peer = seen_by_app(deployment.echo_sidecar.get("/who"))["X-Forwarded-For"]
    cfg = dataclasses.replace(
        sidecar_settings, trusted_proxies=(peer,), server_names=("lara.example.org",)
    )
    sidecar = deployment.stack.sidecar(
        deployment.sidecar_image,
        "host-checking-nginx",
        nginx_conf=render_nginx_conf(cfg, tmp_path),
        environment={"APP_UPSTREAM": "echo:3000"},
    )

    def forwarded_host(value: str) -> str | None:
        response = sidecar.get(
            "/", headers={"Host": "lara.example.org", "X-Forwarded-Host": value, **SPOOFED_REST}
        )
        assert response.status_code == 200
        headers = seen_by_app(response)
        assert [name for name in DROPPED if name in headers] == []
        return headers.get("X-Forwarded-Host")

    assert forwarded_host("lara.example.org") == "lara.example.org"
    assert forwarded_host("LARA.example.org:8443") == "LARA.example.org:8443"
    assert forwarded_host("evil.example") is None
    assert forwarded_host("lara.example.org.evil.example") is None
    assert forwarded_host("evil.example, lara.example.org") is None
    assert forwarded_host("lara.example.org:99999") is None
    # From an untrusted peer (the default sidecar): never, even a listed name.
    direct = seen_by_app(
        deployment.echo_sidecar.get("/", headers={"X-Forwarded-Host": "lara.example.org"})
    )
    assert "X-Forwarded-Host" not in direct


SPOOFED_REST = {k: v for k, v in SPOOFED.items() if k != "X-Forwarded-Host"}


# ---- nginx.server_names ----


def test_a_foreign_host_is_refused_when_server_names_are_set(
    deployment, sidecar_settings, tmp_path
):
    cfg = dataclasses.replace(sidecar_settings, server_names=("lara.example.org",))
    sidecar = deployment.stack.sidecar(
        deployment.sidecar_image,
        "named-nginx",
        nginx_conf=render_nginx_conf(cfg, tmp_path),
        environment={"APP_UPSTREAM": "echo:3000"},
    )
    foreign = f"/foreign-{secrets.token_hex(4)}"
    refused = sidecar.get(foreign, headers={"Host": "evil.example"})
    by_address = sidecar.get(foreign)  # Host: 127.0.0.1:<port>
    served = sidecar.get("/named", headers={"Host": "LARA.example.org:8080"})
    health = sidecar.get("/nginx-health", headers={"Host": "evil.example"})

    assert refused.status_code == 421
    assert by_address.status_code == 421
    assert served.status_code == 200
    assert seen_by_app(served)["Host"] == "lara.example.org"
    assert (health.status_code, health.text) == (200, "ok\n")
    # The image's health check (Host: localhost) is answered by the default server.
    code, output = sidecar.container.exec_run(["lara-nginx-healthcheck"])
    assert code == 0, output
    # The echo server logs every request line it gets: the served one, never the foreign ones.
    echo_log = app_log(deployment.echo)
    assert "GET /named HTTP/1.0" in echo_log
    assert foreign not in echo_log


def test_any_host_reaches_the_app_when_server_names_are_unset(deployment):
    path = f"/any-host-{secrets.token_hex(4)}"
    response = deployment.echo_sidecar.get(path, headers={"Host": "anything.example"})
    assert response.status_code == 200
    assert seen_by_app(response)["Host"] == "anything.example"


def test_app_pages_reach_the_app_and_keep_their_cookies(deployment):
    sidecar, app = deployment.cookie_sidecar, deployment.cookie_app
    first = sidecar.get("/version.json")
    second = sidecar.get("/version.json")

    assert first.status_code == 200
    assert "image_version_env" in first.json()
    assert first.cookies["_lara_session"] != second.cookies["_lara_session"]
    assert "X-Cache-Status" not in first.headers
    assert app_requests(sidecar, app, "/version.json") == 2


def test_uploads_larger_than_nginx_default_reach_the_app(deployment):
    sidecar, app = deployment.sidecar, deployment.app
    path = f"/upload-{secrets.token_hex(4)}"
    response = requests.post(sidecar.url + path, data=b"x" * (5 * 1024 * 1024), timeout=30)
    assert response.status_code == 404  # the example app's answer, not nginx's 413
    assert f'"POST {path} ' in wait_for(lambda: path in (log := app_log(app)) and log, "the log")


# ---- assets only the (newer) app has: fetched once, then cached ----


def test_asset_missing_on_disk_is_fetched_from_the_app_once_then_cached(deployment):
    sidecar, app = deployment.sidecar, deployment.app
    body = b"body { color: #123456 }\n"
    path = add_asset(app, digest_name("newer"), body)

    first = sidecar.get(path)
    second = sidecar.get(path)

    assert (first.status_code, first.headers["X-Cache-Status"]) == (200, "MISS")
    assert (second.status_code, second.headers["X-Cache-Status"]) == (200, "HIT")
    assert first.content == second.content == body
    assert first.headers["Cache-Control"] == second.headers["Cache-Control"] == IMMUTABLE
    assert second.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert app_requests(sidecar, app, path) == 1
    # The access log is buffered: its lines reach `docker logs` within the 1 s flush.
    hit = rf'"GET {re.escape(path)} HTTP/1.1" 200 .*cache=HIT'
    access_log = wait_for(
        lambda: re.search(hit, log := access_log_of(sidecar)) and log,
        "the HIT in the sidecar's access log",
        5,
    )
    assert re.search(rf'"GET {re.escape(path)} HTTP/1.1" 200 .*upstream_time=\d', access_log)


def test_non_fingerprinted_asset_from_the_app_gets_the_short_max_age(deployment):
    sidecar, app = deployment.sidecar, deployment.app
    name = f"plain-{secrets.token_hex(4)}.css"
    path = add_asset(app, name, b"p {}\n")
    response = sidecar.get(path)
    assert response.status_code == 200
    assert response.headers["X-Cache-Status"] == "MISS"
    assert response.headers["Cache-Control"] == "public, max-age=300"


def test_concurrent_cold_requests_reach_the_app_once(deployment):
    sidecar, app = deployment.sidecar, deployment.app
    body = b"/* cold */\n" * 100
    path = add_asset(app, digest_name("cold", "js"), body)

    # Occupy both unicorn workers with half-sent requests, so the sidecar's first request for
    # the asset waits in the app's accept queue while the other 49 arrive: they all overlap.
    ip = deployment.stack.ip(app)
    blockers = [socket.create_connection((ip, 3000), timeout=5) for _ in range(2)]
    for blocker in blockers:
        blocker.sendall(b"GET /health HTTP/1.1\r\n")
    time.sleep(0.3)  # let both workers take one

    barrier = threading.Barrier(50)

    def fetch(_: int):
        barrier.wait()
        response = sidecar.get(path, timeout=30)
        return response.status_code, response.headers.get("X-Cache-Status"), response.content

    try:
        with ThreadPoolExecutor(max_workers=50) as pool:
            futures = [pool.submit(fetch, i) for i in range(50)]
            time.sleep(1.5)
            assert not any(f.done() for f in futures), "requests finished while the app was busy"
            for blocker in blockers:
                blocker.close()
            results = [f.result() for f in futures]
    finally:
        for blocker in blockers:
            blocker.close()

    assert {(status, content) for status, _, content in results} == {(200, body)}
    assert sorted(cache for _, cache, _ in results) == ["HIT"] * 49 + ["MISS"]
    assert app_requests(sidecar, app, path) == 1


def test_a_404_from_the_app_is_not_cached(deployment):
    sidecar, app = deployment.sidecar, deployment.app
    name = digest_name("later", "js")
    path = f"/assets/{name}"

    missing = [sidecar.get(path) for _ in range(2)]
    add_asset(app, name, b"later();\n")  # the app gets it a moment later
    found = sidecar.get(path)

    assert [r.status_code for r in missing] == [404, 404]
    assert [r.headers["X-Cache-Status"] for r in missing] == ["MISS", "MISS"]
    assert [r.headers["Cache-Control"] for r in missing] == ["no-store", "no-store"]
    assert (found.status_code, found.content) == (200, b"later();\n")
    assert app_requests(sidecar, app, path) == 3


def test_an_asset_response_with_set_cookie_is_neither_cached_nor_replayed(deployment):
    sidecar, app = deployment.cookie_sidecar, deployment.cookie_app
    path = add_asset(app, digest_name("cookie"), b".c {}\n")

    alice = sidecar.get(path)
    bob = sidecar.get(path)

    for response in (alice, bob):
        assert response.status_code == 200
        assert response.content == b".c {}\n"
        assert "Set-Cookie" not in response.headers
        assert response.headers["X-Cache-Status"] == "MISS"
    assert app_requests(sidecar, app, path) == 2


def test_cached_asset_requests_reach_the_app_without_cookies(deployment):
    sidecar = deployment.echo_sidecar
    path = f"/assets/{digest_name('echoed')}"
    first = sidecar.get(path, headers={"Cookie": "_lara_session=secret"})
    second = sidecar.get(path)

    assert first.headers["X-Cache-Status"] == "MISS"
    assert "Cookie:" not in first.text
    assert f"GET {path} HTTP/1.0" in first.text
    assert second.headers["X-Cache-Status"] == "HIT"
    assert second.headers["X-Frame-Options"] == "DENY"  # the app's, stored; not doubled


def test_an_asset_requested_with_authorization_is_never_stored_nor_served_to_others(deployment):
    sidecar = deployment.echo_sidecar
    for path in (
        f"/assets/{digest_name('private')}",
        f"/assets/private-{secrets.token_hex(4)}.css",
    ):
        authorized = sidecar.get(path, auth=("bob", "s3cret"))
        again = sidecar.get(path, auth=("bob", "s3cret"))
        anonymous = sidecar.get(path)
        anonymous_again = sidecar.get(path)

        # The app gets Authorization (it may guard its files), every time.
        assert "Authorization: Basic " in authorized.text
        assert authorized.headers["X-Cache-Status"] == again.headers["X-Cache-Status"] == "BYPASS"
        assert authorized.headers["Cache-Control"].startswith("private, ")
        # Nothing of it was stored: the anonymous client gets its own answer from the app.
        assert anonymous.headers["X-Cache-Status"] == "MISS"
        assert "Authorization" not in anonymous.text
        assert anonymous.headers["Cache-Control"].startswith("public, ")
        assert anonymous_again.headers["X-Cache-Status"] == "HIT"
        # And a cached answer is not given to an authorized request: it goes to the app.
        third = sidecar.get(path, auth=("bob", "s3cret"))
        assert third.headers["X-Cache-Status"] == "BYPASS"
        assert "Authorization: Basic " in third.text
    assert app_log(deployment.echo).count(f"GET {path} ") == 4


def test_uploads_are_never_cached_and_keep_the_apps_headers(deployment):
    sidecar = deployment.echo_sidecar
    path = f"/system/uploads/1/photo-{secrets.token_hex(32)}.txt"
    first = sidecar.get(path, auth=("bob", "s3cret"))
    second = sidecar.get(path)

    assert "Authorization: Basic " in first.text
    assert "Authorization" not in second.text
    for response in (first, second):
        assert response.status_code == 200
        assert "X-Cache-Status" not in response.headers
        assert "Cache-Control" not in response.headers  # the app's (the echo server sends none)
    assert app_log(deployment.echo).count(f"GET {path} ") == 2


def test_a_proxied_text_asset_is_gzipped_but_an_app_page_is_not(deployment):
    sidecar = deployment.echo_sidecar
    # The echo server answers text/plain, uncompressed, with the request head: padded to 2.7 kB.
    pad = {"X-Pad": "p" * 2700, "Accept-Encoding": "gzip"}
    path = f"/assets/{digest_name('text')}"
    first = sidecar.get(path, headers=pad)
    cached = sidecar.get(path, headers=pad)
    plain = sidecar.get(path, headers={**pad, "Accept-Encoding": "identity"})
    page = sidecar.get(f"/activities/{secrets.token_hex(4)}", headers=pad)
    other = sidecar.get(f"/assets/text-{secrets.token_hex(4)}.txt", headers=pad)

    assert (first.headers["X-Cache-Status"], cached.headers["X-Cache-Status"]) == ("MISS", "HIT")
    for response in (first, cached, other):
        assert response.headers["Content-Type"].startswith("text/plain")
        assert response.headers["Content-Encoding"] == "gzip"
        assert "Accept-Encoding" in response.headers["Vary"]
        assert "X-Pad: ppp" in response.text  # requests unzips
    assert "Content-Encoding" not in plain.headers
    assert "X-Pad: ppp" in plain.text
    # Pages from the app are sent as the app sent them (BREACH).
    assert page.status_code == 200
    assert "Content-Encoding" not in page.headers
    assert len(page.content) > 2700


# ---- nginx.asset_fallback: 404 for apps that never serve assets (LARA) ----


def test_asset_fallback_404_answers_a_missing_asset_without_the_app(
    deployment, sidecar_settings, tmp_path
):
    cfg = dataclasses.replace(sidecar_settings, asset_fallback="404")
    sidecar = deployment.stack.sidecar(
        deployment.sidecar_image, "no-fallback-nginx", nginx_conf=render_nginx_conf(cfg, tmp_path)
    )
    wait_for(lambda: sidecar.get("/health").status_code == 200, "the app behind nginx")
    app = deployment.app
    fingerprinted = add_asset(app, digest_name("only-in-app"), b"b {}\n")
    plain = add_asset(app, f"plain-{secrets.token_hex(4)}.css", b"p {}\n")
    on_disk = next(f for f in public_files(sidecar.container, "assets") if f.endswith(".css"))

    for path in (fingerprinted, plain):
        response = sidecar.get(path)
        assert response.status_code == 404
        assert response.headers["Cache-Control"] == "no-store"
        assert "X-Cache-Status" not in response.headers
        assert app_requests(sidecar, app, path) == 0
    assert sidecar.get(f"/assets/{on_disk}").status_code == 200


# ---- the app goes away and comes back elsewhere ----


def test_sidecar_follows_the_app_to_a_new_address_without_restarting(
    docker_client, app_image, sidecar_image, base_image
):
    stack = Stack(docker_client)
    try:
        # The sidecar comes up first: the app's name does not resolve yet.
        sidecar = stack.sidecar(sidecar_image)
        assert sidecar.get("/health").status_code == 502
        started = sidecar.container.attrs["State"]["StartedAt"]

        app = stack.run(app_image, "app", aliases=("app",))
        wait_for(lambda: sidecar.get("/health").status_code == 200, "the app behind nginx")
        old_ip = stack.ip(app)

        app.stop(timeout=10)
        assert sidecar.get("/nginx-health").text == "ok\n"
        assert sidecar.get("/health").status_code in (502, 504)
        squatter = stack.run(base_image, "squatter", command=["sleep", "600"])
        app.start()
        new_ip = stack.ip(app)
        assert new_ip != old_ip, (
            f"app came back on its old address {old_ip} (squatter: {stack.ip(squatter)})"
        )

        marker = f"/health?after-restart={secrets.token_hex(4)}"
        wait_for(lambda: sidecar.get(marker).status_code == 200, "the app at its new address", 30)
        # The app logs a request once it has answered it: its line may come after the 200.
        wait_for(lambda: marker in app_log(app), "the request at the new address in the app's log")

        sidecar.container.reload()
        assert sidecar.container.attrs["State"]["StartedAt"] == started
        assert sidecar.container.attrs["RestartCount"] == 0
        stdout = wait_for(
            lambda: f"upstream={new_ip}:3000" in (log := access_log_of(sidecar)) and log,
            "the new upstream address in the sidecar's access log (flushed within 1 s)",
            5,
        )
        stderr = sidecar.container.logs(stdout=False, stderr=True).decode()
        assert "could not be resolved" in stderr
        assert "could not be resolved" not in stdout

        # Master and workers run unprivileged (the master used to be root, to bind port 80).
        code, status = sidecar.container.exec_run(
            ["sh", "-c", "grep -h -E '^(Name|Uid):' /proc/[0-9]*/status"]
        )
        assert code == 0
        fields = [line.split()[1] for line in status.decode().splitlines()]
        uids = [uid for name, uid in zip(fields[::2], fields[1::2], strict=True) if name == "nginx"]
        assert "0" not in uids and len(uids) > 1

        # SIGQUIT: finish in-flight requests, then exit cleanly.
        begun = time.monotonic()
        sidecar.container.stop(timeout=20)
        sidecar.container.reload()
        assert sidecar.container.attrs["State"]["ExitCode"] == 0
        assert time.monotonic() - begun < 10
    finally:
        stack.close()
