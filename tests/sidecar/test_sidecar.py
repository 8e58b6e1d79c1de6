"""The nginx sidecar image with real containers: the example app behind it on a user network.

Each check is what an operator would look at: response headers, bodies, and the app's own
request log (``docker logs`` of the app container, one line per request it served).
"""

from __future__ import annotations

import re
import secrets
import time

import pytest

from buildtools.config import nginx_checks
from buildtools.errors import BuildToolsError
from buildtools.sidecar import nginx_conf
from tests.fixtures.deployment import (
    IMMUTABLE,
    access_log_of,
    public_files,
    read_file,
    run_in_image,
)
from tests.fixtures.sidecar import (
    Stack,
    app_log,
    app_requests,
    wait_for,
)

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
    assert written == nginx_conf.render_upstream("lara-web:8080")


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
