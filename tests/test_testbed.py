"""The harness itself (the top-level testbed package): real engines, an htpasswd registry, and the
service fixtures failing in CI instead of skipping."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import docker
import pytest
import requests

import testbed
from testbed.fresh_host import NETNS_DIR
from tests.fixtures.held_images import discard
from tests.fixtures.services import BASES_REPOSITORY

ROOT = Path(__file__).resolve().parents[1]


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
        discard(docker_client, image.id)


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
    done = pytest_in(tmp_path, env)
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


def image_tags(client: docker.DockerClient) -> list[str]:
    return sorted(tag for image in client.images.list(all=True) for tag in image.tags)


def test_fresh_engine_holds_only_the_base_image(fresh_engine, base_image, docker_client):
    fresh = fresh_engine.client()
    assert fresh_engine.host != docker_client.api.base_url
    assert image_tags(fresh) == [base_image]
    assert fresh.containers.list(all=True) == []
    assert sorted(n.name for n in fresh.networks.list()) == ["bridge", "host", "none"]


def test_fresh_engine_builds_with_apt_through_its_bridge(
    fresh_engine, base_image, docker_client, tmp_path
):
    """apt-get reaches the mirror from the fresh engine's bridge; installs stay slim; and
    nothing of this build lands on the main engine."""
    main_base = docker_client.images.get(base_image).id
    (tmp_path / "Dockerfile").write_text(
        f"FROM {base_image}\n"
        "RUN apt-get update && apt-get install -y less \\\n"
        " && test -f /usr/share/doc/less/copyright && test ! -e /usr/share/man/man1/less.1.gz \\\n"
        ' && test -z "$(find /var/cache/apt -name "*.bin" -o -name "*.deb")"\n'
    )
    tag = f"lbt-fresh-test/apt:{uuid.uuid4().hex[:8]}"
    built, _ = fresh_engine.client().images.build(path=str(tmp_path), tag=tag, rm=True)
    assert tag in built.tags
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(built.id)
    assert tag not in image_tags(docker_client)
    assert docker_client.images.get(base_image).id == main_base


def test_fresh_engine_pushes_and_pulls_through_a_loopback_registry(
    fresh_engine, base_image, registry
):
    """Registries on 127.0.0.1 speak plain HTTP to every engine, with no daemon.json."""
    fresh = fresh_engine.client()
    auth = {"username": registry.username, "password": registry.password}
    repo = f"{registry.host}/fresh/base"
    fresh.images.get(base_image).tag(repo, "t1")
    for line in fresh.api.push(repo, tag="t1", stream=True, decode=True, auth_config=auth):
        assert "errorDetail" not in line, line
    fresh.images.remove(f"{repo}:t1")
    pulled = fresh.images.pull(repo, tag="t1", auth_config=auth)
    try:
        assert pulled.id == fresh.images.get(base_image).id
        assert registry.tags("fresh/base") == ["t1"]
    finally:
        fresh.images.remove(f"{repo}:t1")


SERVER = 'use IO::Socket::INET; my $s = IO::Socket::INET->new(LocalPort => 8080, Listen => 5,\
 ReuseAddr => 1) or die; while (my $c = $s->accept) { print $c "hello\\n"; close $c }'


def test_fresh_engine_publishes_ports_and_resolves_container_names(fresh_engine, base_image):
    """docker-proxy publishes without iptables; the embedded DNS works on user networks."""
    fresh = fresh_engine.client()
    network = fresh.networks.create(f"lbt-net-{uuid.uuid4().hex[:6]}")
    server = fresh.containers.run(
        base_image,
        ["perl", "-e", SERVER],
        name="srv",
        network=network.name,
        ports={"8080/tcp": ("127.0.0.1", None)},
        detach=True,
    )
    try:
        server.reload()
        port = int(server.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"])
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                    assert conn.recv(100) == b"hello\n"
                    break
            except (ConnectionError, AssertionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        out = fresh.containers.run(
            base_image,
            ["bash", "-c", "getent hosts srv && exec 3<>/dev/tcp/srv/8080 && cat <&3"],
            network=network.name,
            remove=True,
        ).decode()
        address, *rest = out.split()
        assert rest == ["srv", "hello"]
        assert ipaddress.ip_address(address) in fresh_engine.pool
    finally:
        server.remove(force=True)
        network.remove()


def leftovers(name: str, directory: Path, network: ipaddress.IPv4Network) -> list[str]:
    """What a FreshEngine named ``name`` may leave on the host."""
    found = []
    if Path(f"/sys/class/net/{name}").exists():
        found.append(f"bridge {name}")
    if Path(f"/sys/class/net/{name}h").exists():
        found.append(f"veth {name}h")
    if (NETNS_DIR / name).exists():
        found.append(f"network namespace {name}")
    for table in ("filter", "nat"):
        rules = subprocess.run(["iptables", "-t", table, "-S"], capture_output=True, text=True)
        found += [rule for rule in rules.stdout.splitlines() if f"--comment {name} " in rule + " "]
    if directory.exists():
        found.append(str(directory))
    mounts = Path("/proc/self/mountinfo").read_text()
    found += [m for m in mounts.splitlines() if f"{directory}/" in m]
    for proc in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = proc.read_bytes().decode(errors="replace").replace("\0", " ")
        except OSError:
            continue
        if f"{directory}/" in args:
            found.append(f"process {proc.parent.name}: {args}")
    links = json.loads(subprocess.run(["ip", "-j", "-4", "addr"], capture_output=True).stdout)
    found += [
        f"link {link['ifname']} {addr['local']}"
        for link in links
        for addr in link.get("addr_info", [])
        if ipaddress.ip_address(addr["local"]) in network
    ]
    return found


def test_a_crashed_fresh_engine_is_cleaned_up_by_the_next_one(base_image, docker_client):
    """Kill -9 a running `python -m testbed fresh` (dockerd, a container, a user
    network and a published port outlive it); the next engine takes over its slot, starts
    empty, and its stop() leaves no bridge, rule, mount or file behind."""
    main_base = docker_client.images.get(base_image).id
    crashed = subprocess.Popen(
        [sys.executable, "-m", "testbed", "fresh", BASES_REPOSITORY],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        assert crashed.stdout
        line = crashed.stdout.readline().strip()
        assert line.startswith("DOCKER_HOST=unix://"), line
        host = line.split("=", 1)[1]
        old = docker.DockerClient(base_url=host, timeout=60)
        net = old.networks.create("lbt-crash")
        old.containers.run(
            base_image,
            ["sleep", "600"],
            network=net.name,
            ports={"80/tcp": ("127.0.0.1", None)},
            detach=True,
        )
        directory = Path(host.removeprefix("unix://")).parent
    finally:
        os.kill(crashed.pid, signal.SIGKILL)
        crashed.wait()
    name = directory.name
    slot = int(name.removeprefix(testbed.FRESH_PREFIX))
    network = testbed.FreshEngine(slot=slot).network
    assert leftovers(name, directory, network), "the crash should have left the engine running"

    # That slot, asked for: a lower one may be free meanwhile (an engine of another test ended).
    engine = testbed.FreshEngine(slot=slot).start()
    try:
        assert engine.name == name
        fresh = engine.client()
        assert image_tags(fresh) == []  # a new data root: the loaded base is gone
        assert fresh.containers.list(all=True) == []
    finally:
        engine.stop()
    assert leftovers(name, directory, network) == []
    assert docker_client.images.get(base_image).id == main_base


def test_a_crashed_remote_fresh_engine_is_cleaned_up_by_the_next_one(base_image, docker_client):
    """Kill -9 a running `python -m testbed fresh --remote` (its dockerd, in a network namespace
    with a veth pair and host rules, and a container with a published port outlive it); the next
    remote engine takes over the slot, and its stop() leaves no namespace, link, rule, mount,
    process or file behind."""
    crashed = subprocess.Popen(
        [sys.executable, "-m", "testbed", "fresh", "--remote", BASES_REPOSITORY],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        assert crashed.stdout
        line = crashed.stdout.readline().strip()
        assert line.startswith("DOCKER_HOST=tcp://"), line
        old = docker.DockerClient(base_url=line.split("=", 1)[1], timeout=60)
        old.containers.run(
            base_image, ["sleep", "600"], ports={"80/tcp": ("0.0.0.0", None)}, detach=True
        )
        name = old.info()["DockerRootDir"].split("/")[-2]  # <root>/<name>/data
    finally:
        os.kill(crashed.pid, signal.SIGKILL)
        crashed.wait()
    engine = testbed.FreshEngine(slot=int(name.removeprefix(testbed.FRESH_PREFIX)))
    directory, network = engine.dir, engine.network
    assert leftovers(name, directory, network), "the crash should have left the engine running"

    # That slot, asked for: a lower one may be free meanwhile (an engine of another test ended).
    engine = testbed.FreshEngine(slot=engine.slot, remote=True).start()
    try:
        assert engine.name == name
        assert engine.client().containers.list(all=True) == []
    finally:
        engine.stop()
    assert leftovers(name, directory, network) == []


def pytest_in(folder, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The suite's service fixtures run on the tests in ``folder``: they must fail, never skip."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.fixtures.services", "-q", str(folder)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    return done


@pytest.mark.docker  # the child's fresh_engine fixture first connects to the main engine
def test_missing_fresh_engine_fails_in_ci(tmp_path):
    """Without dockerd on PATH the fresh engine cannot start: red in CI, never a skip."""
    (tmp_path / "test_needs_fresh.py").write_text(
        "def test_uses_fresh(fresh_engine):\n    assert fresh_engine.client().ping()\n"
    )
    env = dict(os.environ, CI="true", PATH="/usr/bin:/bin")
    done = pytest_in(tmp_path, env)
    assert "1 error" in done.stdout
    assert "skipped" not in done.stdout
    assert "a fresh Docker Engine is not available" in done.stdout


@pytest.mark.registry  # starts a docker-registry itself, not through a registry fixture
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_python_m_testbed_registry_stops_its_registry_when_stopped(stop: signal.Signals) -> None:
    """`python -m testbed registry &` says Ctrl-C stops it: started in the background (SIGINT
    ignored, as a shell's `&` leaves it) and stopped by SIGINT or SIGTERM, the docker-registry
    it started must stop too, not outlive it on its port, and its folder (with the password
    file) goes. It needs no engine."""
    started = subprocess.Popen(
        [sys.executable, "-m", "testbed", "registry"],
        cwd=ROOT,
        env={**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        first = started.stdout.readline()  # type: ignore[union-attr]
        assert first.startswith("registry on http://"), (first, started.stderr.read())  # type: ignore[union-attr]
        url = first.split()[2].rstrip(",")
        folder = Path(started.stdout.readline().split()[2]).parent  # type: ignore[union-attr]
        assert (folder / "password").is_file()
        assert requests.get(f"{url}/v2/", timeout=5).status_code == 401
        started.send_signal(stop)
        assert started.wait(timeout=30) == 0
    finally:
        if started.poll() is None:  # a failed assertion above: stop it as a user would
            started.terminate()
            started.wait(timeout=30)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/v2/", timeout=5)
    assert not folder.exists()  # nor its password file
