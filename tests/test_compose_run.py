"""The file `invoke compose` prints, run for real: with Debian's docker-compose on the main
engine (`invoke compose --digest`: images pinned by the digest read from a real registry,
pulled from it), and with `docker stack deploy` on a single-node swarm of a fresh engine (never the
main engine's). Both serve the example's /notes page through the sidecar: it shows the image's
version and a row read from MariaDB. Everything started is removed, also on failure.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest
import requests
import yaml

import testbed
from buildtools import compose, images, sidecar_build, stack
from buildtools.config import SmokeConfig
from buildtools.errors import BuildToolsError
from tests.fixtures.git import GitRepo
from tests.fixtures.held_images import discard
from tests.fixtures.registry import login_env
from tests.fixtures.registry_client import sdk_push
from tests.fixtures.services import unavailable
from tests.fixtures.sidecar import project_settings

ROOT = Path(__file__).resolve().parents[1]
INVOKE = ROOT / ".venv" / "bin" / "invoke"
SEEDED = "First note, read from the database"  # example/db/seeds.rb
# Debian's docker.io (20.10) CLI, which bookworm users have; else the docker on PATH.
DEBIAN_DOCKER = Path("/usr/bin/docker")


@dataclasses.dataclass(frozen=True)
class Pair:
    app: compose.Image
    sidecar: compose.Image
    version: str


@pytest.fixture(scope="module")
def pair(
    docker_client: docker.DockerClient, base_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pair]:
    """The example app and its sidecar as `invoke build` makes them, with a version of their
    own (only the last layers are rebuilt: the rest is the other tests' build cache)."""
    settings = project_settings()
    version = f"compose-{secrets.token_hex(4)}"
    prefix = f"lbt-compose-{secrets.token_hex(3)}"
    app = compose.Image(f"{prefix}/app", f"{prefix}/app", version)
    sidecar = compose.Image(f"{prefix}/nginx", f"{prefix}/nginx", version)
    nginx = dataclasses.replace(
        settings.nginx, image=dataclasses.replace(settings.nginx.image, base_image=base_image)
    )
    context = sidecar_build.sidecar_context(nginx, tmp_path_factory.mktemp("compose-sidecar"))
    specs = [
        images.BuildSpec(
            name="app",
            dockerfile=settings.app.dockerfile,
            context=settings.app.context,
            tags=(app.ref,),
            buildargs={
                "BASE_IMAGE": base_image,
                "BUNDLE_INSTALL_ARGS": "--local",
                "LARA_VERSION": version,
            },
            labels={},
        ),
        images.BuildSpec(
            name="nginx",
            dockerfile=context / "Dockerfile",
            context=context,
            tags=(sidecar.ref,),
            buildargs=sidecar_build.sidecar_buildargs(nginx, app.ref),
            labels={},
        ),
    ]
    try:
        for spec in specs:
            images.build(docker_client, spec)
        yield Pair(app, sidecar, version)
    finally:
        for ref in (sidecar.ref, app.ref):
            discard(docker_client, ref, prune=False)


def smoke_config(mariadb_image: str) -> SmokeConfig:
    cfg = project_settings().smoke
    services = tuple(dataclasses.replace(s, image=mariadb_image) for s in cfg.services)
    return dataclasses.replace(cfg, services=services)


def write_file(path: Path, cfg: SmokeConfig, pair: Pair, port: int, swarm: bool) -> Path:
    data = compose.document(
        cfg, pair.app, pair.sidecar, port, stack.APP_PORT, stack.SIDECAR_PORT, swarm=swarm
    )
    text = compose.render(
        data,
        title="LARA",
        version=pair.version,
        commit="0" * 40,
        secrets=compose.secret_names(cfg),
        swarm=swarm,
    )
    path.write_text(text)
    return path


def page_with(url: str, version: str, timeout: float) -> requests.Response:
    """The page once it answers 200 with the version (the app may still be preparing)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            page = requests.get(url, timeout=5)
        except requests.RequestException as exc:
            last = type(exc).__name__
        else:
            if page.status_code == 200 and version in page.text:
                return page
            last = f"HTTP {page.status_code}: {page.text[:300]!r}"
        time.sleep(1)
    pytest.fail(f"{url} did not show {version} within {timeout:.0f}s (last: {last})")


def run(*cmd: str, env: dict[str, str] | None = None, timeout: float = 600):
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        unavailable(name, FileNotFoundError("bash scripts/setup installs it"))
    return str(found)


@pytest.fixture
def pulling_config(tmp_path: Path, registry: testbed.LocalRegistry) -> dict[str, str]:
    """An environment whose docker config holds the test registry's login (docker-compose
    pulls with it), and nothing of the user's own."""
    config = tmp_path / "docker-config"
    config.mkdir()
    auth = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    (config / "config.json").write_text(json.dumps({"auths": {registry.host: {"auth": auth}}}))
    return {**os.environ, "DOCKER_CONFIG": str(config)}


def test_docker_compose_runs_what_invoke_compose_prints_pinned_by_digest(
    docker_client: docker.DockerClient,
    pair: Pair,
    registry: testbed.LocalRegistry,
    pulling_config: dict[str, str],
    repo: GitRepo,
    tmp_path: Path,
) -> None:
    # The release as `invoke release` leaves it for this commit: both images in the registry.
    sha = f"sha-{repo.head()[:7]}"
    pushed = {
        image.repository: sdk_push(docker_client, registry, image.ref, f"{image.repository}:{sha}")
        for image in (pair.app, pair.sidecar)
    }
    port = stack.free_port()
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    env |= {
        "INVOKE_BUILDTOOLS_REPO": str(repo.path),
        "INVOKE_BUILDTOOLS_RELEASE_REGISTRIES": registry.host,
        "INVOKE_BUILDTOOLS_APP_REPOSITORY": pair.app.repository,
        "INVOKE_BUILDTOOLS_NGINX_REPOSITORY": pair.sidecar.repository,
        **login_env(registry.host, registry.username, registry.password),
    }
    printed = subprocess.run(
        [str(INVOKE), "compose", "--digest", "--port", str(port)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert printed.returncode == 0, printed.stderr
    assert registry.password not in printed.stdout + printed.stderr
    services = yaml.safe_load(printed.stdout)["services"]
    released = [f"{registry.host}/{repository}@{digest}" for repository, digest in pushed.items()]
    assert [services["app"]["image"], services["nginx"]["image"]] == released
    path = tmp_path / "docker-compose.yml"
    path.write_text(printed.stdout)
    project = f"lbtcompose{secrets.token_hex(4)}"
    command = [tool("docker-compose"), "--project-name", project, "--file", str(path)]
    try:
        checked = run(*command, "config", "--quiet", env=pulling_config)
        assert checked.returncode == 0, checked.stderr
        started = run(*command, "up", "--detach", env=pulling_config)
        assert started.returncode == 0, started.stderr
        page = page_with(f"http://127.0.0.1:{port}/notes", pair.version, timeout=120)
        assert SEEDED in page.text
        labels = [f"com.docker.compose.project={project}", "com.docker.compose.service=app"]
        app = docker_client.containers.list(filters={"label": labels})
        assert [c.image.id for c in app] == [docker_client.images.get(pair.app.ref).id]
    finally:
        run(*command, "down", "--volumes", "--remove-orphans", "--timeout", "2", env=pulling_config)
        for ref in released:
            discard(docker_client, ref, prune=False)
    left = docker_client.containers.list(
        all=True, filters={"label": f"com.docker.compose.project={project}"}
    )
    assert left == []


def swarm_cli() -> str:
    return str(DEBIAN_DOCKER) if DEBIAN_DOCKER.is_file() else tool("docker")


def test_docker_stack_deploy_serves_the_page_on_a_fresh_single_node_swarm(
    docker_client: docker.DockerClient, pair: Pair, mariadb_image: str, tmp_path: Path
) -> None:
    cli = swarm_cli()
    # A remote engine: its own network namespace holds the swarm's VXLAN devices, so they go
    # with it, also after a crash (a local engine's stay in the host's namespace and make the
    # next swarm fail with "error creating vxlan interface: file exists").
    engine = testbed.FreshEngine(remote=True)
    try:
        engine.start()
    except BuildToolsError as exc:
        unavailable("a remote fresh Docker Engine", exc)
    env = {**os.environ, "DOCKER_HOST": engine.host}
    name = f"lbtstack{secrets.token_hex(3)}"
    try:
        engine.load(pair.app.ref, pair.sidecar.ref, mariadb_image, source=docker_client)
        address = engine.engine_address
        init = run(cli, "swarm", "init", "--advertise-addr", address, env=env)
        assert init.returncode == 0, init.stderr
        port = stack.free_port()
        # Why --swarm exists: stack deploy refuses the Compose file's depends_on conditions.
        plain = write_file(tmp_path / "compose.yml", smoke_config(mariadb_image), pair, port, False)
        refused = run(cli, "stack", "deploy", "-c", str(plain), name, env=env)
        assert refused.returncode != 0
        assert "depends_on must be a list" in refused.stderr
        path = write_file(tmp_path / "stack.yml", smoke_config(mariadb_image), pair, port, True)
        deployed = run(
            cli, "stack", "deploy", "--resolve-image", "never", "-c", str(path), name, env=env
        )
        assert deployed.returncode == 0, deployed.stderr
        # The port is published in host mode on the engine's host: its one address.
        try:
            page = page_with(f"http://{address}:{port}/notes", pair.version, timeout=300)
        except BaseException:
            print(run(cli, "stack", "ps", "--no-trunc", name, env=env).stdout)
            for service in ("db", "prepare", "app", "nginx"):
                logs = run(cli, "service", "logs", "--tail", "15", f"{name}_{service}", env=env)
                print(f"--- {service}:\n{logs.stdout}{logs.stderr}")
            raise
        assert SEEDED in page.text
    finally:
        run(cli, "stack", "rm", name, env=env, timeout=120)
        run(cli, "swarm", "leave", "--force", env=env, timeout=120)
        engine.stop()
