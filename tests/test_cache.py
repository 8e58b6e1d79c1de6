"""Fresh machines: a new CI runner reuses the layers of the previous release from the registry.

The e2e tests run `invoke ci` / `invoke build` on a second Docker Engine that has never built
anything (testbed.FreshEngine, holding only the base image), against the real htpasswd
registry, and read what was rebuilt from the build stream (the --json result).
"""

from __future__ import annotations

import contextlib
import http.server
import io
import json
import os
import secrets
import subprocess
import threading
from pathlib import Path

import docker
import docker.errors
import pytest

import testbed
from buildtools import build, cache, config, images, stack
from buildtools.buildinfo import BuildInfo
from buildtools.metadata import plan
from tests.fixtures.git import GitRepo, git_env, init_repo
from tests.fixtures.held_images import discard
from tests.fixtures.project import ROOT, copy_into
from tests.fixtures.services import unavailable

INVOKE = ROOT / ".venv" / "bin" / "invoke"
SHA = "0123abc4567890def0123abc4567890def012345"


def settings(**cache_keys: object) -> config.Settings:
    section = config.merged({"cache": cache_keys} if cache_keys else {})
    section["release"]["branches"] = "master,release/*,production"
    return config.load(section, ROOT)


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (
            {"branch": "feature/x", "known_versions": ("1.0.0", "1.2.0", "2.0.0-rc.1")},
            ["sha-0123abc", "feature-x", "master", "production", "1.2.0"],
        ),
        ({"branch": "master"}, ["sha-0123abc", "master", "production"]),
        # A pull request's own branch first, then the branches it may become.
        ({"branch": "fix", "pull_request": 7}, ["sha-0123abc", "fix", "master", "production"]),
        (
            {"tag": "v2.0.0", "known_versions": ("1.9.0",)},
            ["sha-0123abc", "master", "production", "1.9.0"],
        ),
    ],
)
def test_cache_candidates_are_best_first(facts: dict, expected: list[str]) -> None:
    cfg = settings()
    meta = plan(cfg, BuildInfo(version="0", commit=SHA, **facts))
    assert [c.tag for c in cache.candidates(cfg, meta)] == expected


def test_cache_candidates_follow_the_templates_and_stage_prefixes() -> None:
    cfg = settings(**{"from": "edge,{branch}"})
    meta = plan(cfg, BuildInfo(version="0", commit=SHA, branch="master"))
    assert [c.tag for c in cache.candidates(cfg, meta)] == ["edge", "master"]
    staged = cache.candidates(cfg, meta, cache.stage_prefix("assets"))
    assert [c.tag for c in staged] == ["cache-assets-edge", "cache-assets-master"]


@pytest.mark.parametrize(
    ("keys", "asked"),
    [
        ({}, []),  # nothing named: the Docker Hub a release falls back to is not asked
        ({"release": {"registries": "ghcr.io,127.0.0.1:5000"}}, ["ghcr.io", "127.0.0.1:5000"]),
        ({"cache": {"registries": "docker.io"}}, ["docker.io"]),  # asked by name
        (
            {"release": {"registries": "ghcr.io"}, "cache": {"registries": "mirror.example"}},
            ["mirror.example"],
        ),
        ({"release": {"registries": "ghcr.io"}, "cache": {"pull": "false"}}, []),
    ],
    ids=["none named", "release registries", "cache registries", "cache first", "pull off"],
)
def test_only_registries_the_user_named_are_asked_for_cache(keys: dict, asked: list) -> None:
    cfg = config.load(config.merged(keys), ROOT)
    assert [registry.name for registry in cache.registries(cfg)] == asked
    meta = plan(cfg, BuildInfo(version="0", commit=SHA, branch="master"))
    shown = build.cache_candidates(cfg, meta, "app")  # what --dry-run lists
    assert bool(shown) == bool(asked)
    if asked:
        assert shown[0].startswith(cache.registries(cfg)[0].push_name(cfg.app.repository))


class BusyRegistry:
    """A real HTTP server on loopback that answers every request 503 (busy), and counts them:
    a retried lookup would ask twice or more, and sleep in between."""

    def __init__(self) -> None:
        self.requests = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def busy(self) -> None:
                outer.requests += 1
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_HEAD = busy

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.host = f"127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_cache_lookup_asks_each_registry_once_and_says_one_warning() -> None:
    busy = [BusyRegistry(), BusyRegistry()]
    try:
        names = ",".join(b.host for b in busy)
        cfg = config.load(config.merged({"cache": {"registries": names}}), ROOT)
        meta = plan(cfg, BuildInfo(version="0", commit=SHA, branch="master"))
        said: list[str] = []
        found = cache.resolve(None, cfg, meta, {}, "lbt/app", "app", say=said.append)  # type: ignore[arg-type]
    finally:
        for registry in busy:
            registry.close()
    assert found.refs == []
    assert [b.requests for b in busy] == [1, 1]
    assert len(said) == 1 and said[0].startswith("warning: cache for app: ")
    assert all(b.host in said[0] for b in busy) and "building without those sources" in said[0]


@pytest.mark.docker
def test_the_source_holding_most_steps_is_credited_with_them(
    docker_client: docker.DockerClient, base_image: str
) -> None:
    """served() compares build histories (images.history_steps): the steps above the base that
    a source shares with the built image; a source the engine lacks counts as none."""
    run = secrets.token_hex(4)
    first = f"FROM {base_image}\nRUN echo {run} > /one\n"
    made = []
    try:
        for dockerfile in (first, first + f"RUN echo {run} > /two\n"):
            image, _ = docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), rm=True)
            made.append(image.id)
        shorter, longer = made
        steps = images.history_steps(docker_client, longer)  # oldest first
        assert len(steps) == len(images.history_steps(docker_client, base_image)) + 2
        assert "/one" in steps[-2] and "/two" in steps[-1]
        missing = f"lbt-missing-{run}:none"
        served = cache.served(docker_client, longer, base_image, [missing, shorter, longer])
        assert served == {longer: 2}
        assert cache.served(docker_client, longer, base_image, [missing, shorter]) == {shorter: 1}
    finally:
        for image_id in reversed(made):
            discard(docker_client, image_id)


# --- on a fresh engine ----------------------------------------------------------------------


@pytest.fixture
def fresh(docker_client: docker.DockerClient, base_image: str):
    """An engine of this test's own that has never built anything: only the base image."""
    try:
        engine = testbed.FreshEngine().start()
    except Exception as exc:
        unavailable("a fresh Docker Engine", exc)
        raise
    try:
        # Under both names: the suite's and invoke.yaml's (lara-buildtools/debian:latest).
        engine.load(base_image, base_image.rsplit(":", 1)[0] + ":latest", source=docker_client)
        yield engine
    finally:
        engine.stop()


@pytest.fixture
def project(tmp_path: Path) -> GitRepo:
    env = git_env(tmp_path / "home")
    repo = init_repo(tmp_path / "lara", env, branch="master")
    copy_into(repo)
    repo.commit("import lara-buildtools")
    return repo


def run_task(repo: GitRepo, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    drop = ("TRAVIS", "GITHUB_", "GITLAB_", "CI_", "INVOKE_", "DOCKER_")
    base = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    return subprocess.run(
        [str(INVOKE), *args],
        cwd=repo.path,
        env={**base, **repo.env, **env},
        capture_output=True,
        text=True,
        timeout=1200,
    )


def travis_master_push(registry: testbed.LocalRegistry) -> dict[str, str]:
    """A Travis push build of master that may release to ``registry``."""
    return {
        "CI": "true",
        "TRAVIS": "true",
        "TRAVIS_BRANCH": "master",
        "TRAVIS_PULL_REQUEST": "false",
        "INVOKE_BUILDTOOLS_RELEASE_REGISTRIES": registry.host,
        "DOCKER_USERNAME": registry.username,
        "DOCKER_PASSWORD": registry.password,
    }


def next_commit_on(
    fresh: testbed.FreshEngine, repo: GitRepo, env: dict[str, str]
) -> tuple[str, subprocess.CompletedProcess[str]]:
    """A metadata-only commit, then `invoke ci --json --no-smoke` for it on the fresh engine."""
    commit = repo.commit("metadata only")
    env = {**env, "TRAVIS_COMMIT": commit, "DOCKER_HOST": fresh.host}
    return commit, run_task(repo, env, "ci", "--json", "--no-smoke")


def metadata_steps() -> int:
    """The app Dockerfile's steps from the metadata block on, plus the one LABEL step."""
    lines = [
        line.strip()
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.strip().startswith("#") and not line.startswith(" ")
    ]
    first = next(i for i, line in enumerate(lines) if line.startswith("ARG LARA_VERSION"))
    return len(lines) - first + 1


@pytest.mark.docker
@pytest.mark.registry
def test_a_fresh_runner_rebuilds_only_the_metadata_steps(
    docker_client: docker.DockerClient,
    fast_registry: testbed.LocalRegistry,
    project: GitRepo,
    fresh: testbed.FreshEngine,
    mariadb_image: str,
) -> None:
    name = f"lbtcache{secrets.token_hex(3)}"
    env = {
        **travis_master_push(fast_registry),
        "INVOKE_BUILDTOOLS_APP_REPOSITORY": f"{name}/app",
        "INVOKE_BUILDTOOLS_NGINX_REPOSITORY": f"{name}/nginx",
    }
    # The previous commit, released from master (built on the main engine).
    first = run_task(project, {**env, "TRAVIS_COMMIT": project.head()}, "ci", "--json")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "master" in fast_registry.tags(f"{name}/app")

    # The fresh engine has no MariaDB image: the smoke test runs below, on what was pushed.
    commit, second = next_commit_on(fresh, project, env)

    assert second.returncode == 0, second.stderr[-3000:]
    assert "warning" not in second.stderr, second.stderr
    assert "SMOKE TEST SKIPPED (--no-smoke)" in second.stderr
    app, sidecar = json.loads(second.stdout)["images"]
    assert app["steps"] - app["cached_steps"] <= metadata_steps(), app
    assert sidecar["steps"] - sidecar["cached_steps"] <= 1, sidecar  # only its LABEL step
    assert app["cache"] and app["cache"][0]["ref"].endswith(f"{name}/app:master")
    assert sidecar["cache"] and sidecar["cache"][0]["ref"].endswith(f"{name}/nginx:master")
    # What was pushed runs and reports the new commit through the sidecar.
    client = fresh.client()
    pushed = [f"{fast_registry.host}/{name}/{image}:sha-{commit[:7]}" for image in ("app", "nginx")]
    for ref in pushed:
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(ref, force=True)  # pull it back from the registry
        repository, _, tag = ref.rpartition(":")
        client.images.pull(
            repository,
            tag=tag,
            auth_config={"username": fast_registry.username, "password": fast_registry.password},
        )
    version = json.loads(second.stdout)["released"]["version"]
    assert commit[:7] in version
    smoke = stack.smoke(client, *pushed, version, f"{name}-smoke")
    assert smoke["expected"] == version and smoke["asset"]
    for image in ("app", "nginx"):
        for ref in docker_client.images.list(name=f"{name}/{image}"):
            discard(docker_client, ref.id)


@pytest.mark.docker
def test_a_cache_registry_that_is_down_means_a_cold_build_and_one_warning(
    project: GitRepo, fresh: testbed.FreshEngine, closed_port: int
) -> None:
    closed = f"127.0.0.1:{closed_port}"
    env = {
        "INVOKE_BUILDTOOLS_RELEASE_REGISTRIES": closed,
        "INVOKE_BUILDTOOLS_APP_REPOSITORY": f"lbtcold{secrets.token_hex(3)}/app",
        "DOCKER_HOST": fresh.host,
    }

    done = run_task(project, env, "build", "--only", "app", "--json")

    assert done.returncode == 0, done.stderr[-3000:]
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "cache for app" in warnings[0] and closed in warnings[0]
    (app,) = json.loads(done.stdout)
    assert app["cache"] == []
    setup_steps = 2  # ARG BASE_IMAGE and FROM: counted as cached, they build nothing
    assert app["cached_steps"] == setup_steps, app


TWO_STAGES = """\
ARG BASE_IMAGE=lara-buildtools/debian:latest
FROM ${BASE_IMAGE} AS assets
RUN mkdir -p /out/assets && echo "compiled at $(date +%s%N)" > /out/assets/app.css
FROM ${BASE_IMAGE}
RUN echo runtime > /runtime.txt
COPY --from=assets /out /lara/public
ARG LARA_VERSION=unknown
ENV LARA_IMAGE_VERSION=${LARA_VERSION}
"""


@pytest.mark.docker
@pytest.mark.registry
def test_a_multi_stage_app_caches_each_stage_on_a_fresh_runner(
    docker_client: docker.DockerClient,
    fast_registry: testbed.LocalRegistry,
    fresh: testbed.FreshEngine,
    tmp_path: Path,
) -> None:
    name = f"lbtstage{secrets.token_hex(3)}"
    repo = init_repo(tmp_path / "app", git_env(tmp_path / "home"), branch="master")
    repo.write("tasks.py", "from buildtools.tasks import ns  # noqa: F401\n")
    repo.write("Dockerfile", TWO_STAGES)
    repo.write(
        "invoke.yaml",
        "buildtools:\n"
        f"  app: {{repository: {name}/app, base_image: lara-buildtools/debian:latest}}\n"
        f"  nginx: {{repository: {name}/nginx, base_image: lara-buildtools/debian:latest}}\n",
    )
    repo.commit("a two-stage app")
    env = travis_master_push(fast_registry)
    first = run_task(repo, {**env, "TRAVIS_COMMIT": repo.head()}, "ci", "--json", "--no-smoke")
    assert first.returncode == 0, first.stderr[-3000:]
    tags = fast_registry.tags(f"{name}/app")
    assert "cache-assets-master" in tags and "master" in tags

    commit, second = next_commit_on(fresh, repo, env)

    assert second.returncode == 0, second.stderr[-3000:]
    built = {image["name"]: image for image in json.loads(second.stdout)["images"]}
    stage, app = built["app:assets"], built["app"]
    assert stage["steps"] == stage["cached_steps"], stage  # the stage came from its cache image
    assert stage["cache"][0]["ref"].endswith(f"{name}/app:cache-assets-master")
    metadata = 3  # ARG LARA_VERSION, ENV LARA_IMAGE_VERSION and the LABEL step
    assert app["steps"] - app["cached_steps"] <= metadata, app
    # The stage image is a cache source, never a release tag.
    assert set(fast_registry.tags(f"{name}/app")) == set(tags) | {f"sha-{commit[:7]}"}
    for image in ("app", "nginx"):
        for found in docker_client.images.list(name=f"{name}/{image}"):
            discard(docker_client, found.id)
