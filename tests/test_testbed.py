"""The harness itself: real engine, a slim base image from the host's mirror, htpasswd registry."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import requests

from buildtools import testbed
from buildtools.engine import connect
from buildtools.errors import BuildToolsError

ROOT = Path(__file__).resolve().parents[1]


def test_base_image_uses_the_hosts_own_debian_mirror(docker_client, base_image):
    mirror, suite = testbed.apt_mirror()
    sources = docker_client.containers.run(
        base_image, ["cat", "/etc/apt/sources.list"], remove=True
    ).decode()
    assert mirror in sources
    assert suite in sources
    assert base_image.endswith(f":{suite}")


def test_base_image_is_slim_and_made_by_the_current_recipe(docker_client, base_image):
    image = docker_client.images.get(base_image)
    assert testbed.base_is_current(image)
    assert image.attrs["Size"] <= 90_000_000  # Debian's own slim image is about 75 MB
    script = """
        set -eu
        test -z "$(ls /var/lib/apt/lists | grep -v '^partial$')"
        test -z "$(find /var/cache/apt /var/log -type f)"
        test -z "$(find /usr/share/doc -type f ! -name copyright)"
        test -z "$(find /usr/share/man /usr/share/info /usr/share/locale -type f)"
        test -f /usr/share/doc/bash/copyright
        apt-config dump | grep -qx 'APT::Install-Recommends "false";'
        rc=0; /usr/sbin/policy-rc.d nginx start || rc=$?; test $rc -eq 101
        echo slim
    """
    out = docker_client.containers.run(base_image, ["sh", "-c", script], remove=True)
    assert out.decode().strip() == "slim"


def test_a_base_from_an_older_recipe_is_not_current(docker_client, base_image, tmp_path):
    """What ensure_base_image rebuilds: a tagged base lacking this recipe's number."""
    label = f"LABEL {testbed.RECIPE_LABEL}={testbed.BASE_RECIPE - 1}"
    (tmp_path / "Dockerfile").write_text(f"FROM {base_image}\n{label}\n")
    old, _ = docker_client.images.build(path=str(tmp_path), rm=True)
    try:
        assert not testbed.base_is_current(old)
        assert testbed.base_is_current(docker_client.images.get(base_image))
    finally:
        docker_client.images.remove(old.id, force=True)


def test_registry_refuses_anonymous_and_accepts_its_user(registry):
    assert requests.get(f"{registry.url}/v2/", timeout=5).status_code == 401
    wrong = requests.get(f"{registry.url}/v2/", auth=(registry.username, "nope"), timeout=5)
    assert wrong.status_code == 401
    ok = requests.get(f"{registry.url}/v2/", auth=(registry.username, registry.password), timeout=5)
    assert ok.status_code == 200


def test_build_push_and_read_back_through_the_registry_api(
    docker_client, base_image, registry, tmp_path
):
    (tmp_path / "Dockerfile").write_text(f"FROM {base_image}\nRUN echo harness > /harness.txt\n")
    repo = f"{registry.host}/harness/smoke"
    image, _ = docker_client.images.build(path=str(tmp_path), tag=f"{repo}:t1", rm=True)
    try:
        pushed = None
        for line in docker_client.api.push(
            repo,
            tag="t1",
            stream=True,
            decode=True,
            auth_config={"username": registry.username, "password": registry.password},
        ):
            assert "errorDetail" not in line, line
            pushed = line.get("aux", {}).get("Digest") or pushed
        assert pushed and pushed.startswith("sha256:")
        assert registry.tags("harness/smoke") == ["t1"]
        head = requests.head(
            f"{registry.url}/v2/harness/smoke/manifests/t1",
            auth=(registry.username, registry.password),
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
            timeout=10,
        )
        assert head.status_code == 200
        assert head.headers["Docker-Content-Digest"] == pushed
    finally:
        docker_client.images.remove(image.id, force=True)


def test_missing_engine_fails_in_ci_instead_of_skipping(tmp_path):
    """A CI run without an engine must go red: run a docker test where no engine answers."""
    (tmp_path / "test_needs_engine.py").write_text(
        textwrap.dedent(
            """
            def test_uses_engine(docker_client):
                assert docker_client.ping()
            """
        )
    )
    env = dict(os.environ, CI="true", DOCKER_HOST=f"unix://{tmp_path}/no-engine.sock")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.fixtures.services", "-q", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    # pytest counts a fixture failure as an error: red either way, never a skip.
    assert "1 error" in done.stdout
    assert "skipped" not in done.stdout
    assert "Docker Engine is not available" in done.stdout
    assert "no Docker Engine answers" in done.stdout


def test_missing_engine_outside_ci_is_a_visible_skip(tmp_path):
    (tmp_path / "test_needs_engine.py").write_text(
        "def test_uses_engine(docker_client):\n    assert docker_client.ping()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["DOCKER_HOST"] = f"unix://{tmp_path}/no-engine.sock"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.fixtures.services",
            "-q",
            "-rs",
            str(tmp_path),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 skipped" in done.stdout
    assert "Docker Engine is not available" in done.stdout


def test_engine_error_names_the_fix(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(BuildToolsError) as caught:
        connect()
    message = str(caught.value)
    assert "no Docker Engine answers at unix:///nonexistent/docker.sock" in message
    assert "dockerd" in message
    assert "\n" not in message
