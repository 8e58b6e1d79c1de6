"""The sidecar with real containers: assets only the (newer) app has are fetched once, then
cached, and only what may be shared is; with nginx.asset_fallback = 404 none reach the app."""

from __future__ import annotations

import dataclasses
import re
import secrets
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from tests.fixtures.deployment import (
    IMMUTABLE,
    access_log_of,
    add_asset,
    digest_name,
    echo_requests,
    public_files,
)
from tests.fixtures.sidecar import (
    app_requests,
    render_nginx_conf,
    wait_for,
)

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
    assert echo_requests(deployment, path) == 4


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
    assert echo_requests(deployment, path) == 2


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
