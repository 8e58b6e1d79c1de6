"""The sidecar with real containers: what it never caches or serves, whatever the app or the
files in public/ say. One host's cached answer is not another's; what the app keeps private or
varies stays with the client it was for; a symlink or a source map in public/ serves nothing;
X-Cache-Status is shown only where it is asked for (``invoke up``)."""

from __future__ import annotations

import dataclasses
import secrets

import docker
import pytest

from tests.fixtures.deployment import access_log_of, add_asset, digest_name
from tests.fixtures.sidecar import render_nginx_conf, wait_for


def unique(stem: str) -> str:
    """A fingerprinted asset path only this test asks for (the cache is shared by the module)."""
    return f"/assets/{digest_name(stem)}"


def test_two_hosts_never_share_a_cached_answer(deployment):
    """The cache key was the app's address and the URI: with several server names, the first
    host's answer was served to the next from the cache."""
    sidecar, path = deployment.echo_sidecar, unique("hosts")
    first = sidecar.get(path, headers={"Host": "one.example.org"})
    other = sidecar.get(path, headers={"Host": "two.example.org"})
    again = sidecar.get(path, headers={"Host": "one.example.org"})

    assert first.headers["X-Cache-Status"] == other.headers["X-Cache-Status"] == "MISS"
    assert "Host: one.example.org" in first.text
    assert "Host: two.example.org" in other.text and "one.example.org" not in other.text
    assert (again.headers["X-Cache-Status"], again.text) == ("HIT", first.text)


@pytest.mark.parametrize("cache_control", ["private, max-age=60", "no-store", "public, no-store"])
def test_what_the_app_keeps_private_is_never_stored_nor_made_public(deployment, cache_control):
    """The app's Cache-Control was replaced by `public, max-age=…` on asset paths."""
    sidecar = deployment.echo_sidecar
    for path in (unique("private"), f"/assets/private-{secrets.token_hex(4)}.css"):
        query = f"{path}?cc={cache_control}"
        first, second = sidecar.get(query), sidecar.get(query)
        for response in (first, second):
            assert response.status_code == 200
            assert response.headers["X-Cache-Status"] == "MISS"
            assert response.headers["Cache-Control"] == cache_control


def test_an_answer_that_varies_on_more_than_encoding_is_never_stored(deployment):
    sidecar, path = deployment.echo_sidecar, unique("vary")
    varies = [sidecar.get(f"{path}?vary=Cookie") for _ in range(2)]
    assert [r.headers["X-Cache-Status"] for r in varies] == ["MISS", "MISS"]
    # Accept-Encoding alone is what the cache key already holds: stored as before.
    plain_path = unique("vary-encoding")
    encoding = [sidecar.get(f"{plain_path}?vary=Accept-Encoding") for _ in range(2)]
    assert [r.headers["X-Cache-Status"] for r in encoding] == ["MISS", "HIT"]


def test_a_symlink_in_public_serves_nothing_outside_it(deployment):
    """A link in the app's public/ (a build step's, or a dependency's) pointed anywhere nginx
    could read: /etc/passwd, the app's secrets."""
    sidecar = deployment.sidecar.container
    for link in ("/lara/public/leak.txt", "/lara/public/assets/leak.txt"):
        code, output = sidecar.exec_run(["ln", "-s", "/etc/passwd", link], user="root")
        assert code == 0, output
    for path in ("/leak.txt", "/assets/leak.txt"):
        response = deployment.sidecar.get(path)
        assert "root:x:0:0" not in response.text
        assert response.status_code in (403, 404), (path, response.status_code)


def test_source_maps_are_not_served_unless_configured(
    deployment, docker_client: docker.DockerClient, sidecar_image, sidecar_settings, tmp_path
):
    """A source map shows the app's original code (comments, internal names): 404 by default,
    even when the app's public/ has one; nginx.source_maps serves it."""
    name = digest_name("application", "js.map")
    add_asset(deployment.app, name, b'{"version": 3}')
    for sidecar in (deployment.sidecar, deployment.echo_sidecar):
        assert sidecar.get(f"/assets/{name}").status_code == 404
    assert deployment.sidecar.get("/assets/no-such-file.map").status_code == 404
    conf = render_nginx_conf(dataclasses.replace(sidecar_settings, source_maps=True), tmp_path)
    serving = deployment.stack.sidecar(
        sidecar_image, "maps-nginx", nginx_conf=conf, environment={"APP_UPSTREAM": "app:3000"}
    )
    response = serving.get(f"/assets/{name}")
    assert (response.status_code, response.content) == (200, b'{"version": 3}')


def test_x_cache_status_is_shown_only_where_asked(deployment, sidecar_image):
    """Production shows nothing of its cache (LARA_CACHE_STATUS off by default); the access
    log still says, and `invoke up` turns the header on."""
    quiet = deployment.stack.sidecar(
        sidecar_image, "quiet-nginx", cache_status=False, environment={"APP_UPSTREAM": "echo:3000"}
    )
    path = unique("quiet")
    first, second = quiet.get(path), quiet.get(path)
    assert first.status_code == second.status_code == 200
    assert "X-Cache-Status" not in first.headers and "X-Cache-Status" not in second.headers
    # The access log is buffered: flushed within a second.
    log = wait_for(lambda: "cache=HIT" in (text := access_log_of(quiet)) and text, "its log")
    assert f"GET {path} " in log and "cache=MISS" in log and "cache=HIT" in log


@pytest.mark.parametrize(
    ("value", "line"),
    [
        ("verbose", "lara-nginx: LARA_CACHE_STATUS='verbose' is neither on nor off"),
        ("on\n", "lara-nginx: LARA_CACHE_STATUS has a line break; give on or off"),
    ],
)
def test_a_cache_status_neither_on_nor_off_is_one_line(docker_client, sidecar_image, value, line):
    container = docker_client.containers.run(
        sidecar_image,
        detach=True,
        network_mode="none",
        environment={"LARA_CACHE_STATUS": value},
    )
    try:
        assert container.wait(timeout=30)["StatusCode"] == 64
        assert container.logs(stdout=False, stderr=True).decode().splitlines() == [line]
    finally:
        container.remove(force=True)
