"""The sidecar with real containers: what goes to the app (LARA's headers, trusted proxies,
server names, cookies, uploads), read back from an app that echoes each request's head."""

from __future__ import annotations

import dataclasses
import re
import secrets
import time

import requests

from tests.fixtures.deployment import (
    access_log_of,
    echo_requests,
)
from tests.fixtures.sidecar import (
    app_log,
    app_requests,
    render_nginx_conf,
    wait_for,
)

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
    assert echo_requests(deployment, "/named") >= 1  # its log is complete from here on
    assert foreign not in app_log(deployment.echo)


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
