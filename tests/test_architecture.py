"""The layout holds: imports point one way, facts are read once, defaults live in one place."""

from __future__ import annotations

import ast
import functools
import json
import os
import subprocess
from pathlib import Path

import docker
import pytest
import yaml

import testbed
from buildtools import ci, config, gitinfo, pipeline
from tests.fixtures.flaky_proxy import FlakyProxy
from tests.fixtures.git import GitRepo, git_env, init_repo
from tests.fixtures.held_images import discard, local_tags
from tests.fixtures.registry import login_env, repos

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "buildtools"
INVOKE = ROOT / ".venv" / "bin" / "invoke"


@functools.cache  # the sources do not change during a run
def imports_of(path: Path) -> set[str]:
    """The buildtools modules a module imports, anywhere in it (lazy imports count too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
            if node.module == "buildtools":
                names = [f"buildtools.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "buildtools" and len(parts) > 1:
                found.add(parts[1])
    return found


@functools.cache  # the sources do not change during a run
def outside_imports_of(path: Path) -> set[str]:
    """The modules from outside buildtools a module imports, as written (``urllib.request``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {name for name in found if name.split(".")[0] != "buildtools"}


@functools.cache  # the sources do not change during a run
def import_graph() -> dict[str, set[str]]:
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    return {m: imports_of(PACKAGE / f"{m}.py") & modules - {m} for m in modules}


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = list(graph[start])
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(graph[name])
    return seen


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    cycles = sorted(m for m in graph if m in reachable(graph, m))
    assert cycles == [], f"modules on an import cycle: {cycles}"


def test_release_knows_nothing_of_building_and_only_tasks_sits_on_top():
    graph = import_graph()
    assert "build" not in reachable(graph, "release")
    assert "images" not in reachable(graph, "release")
    assert [m for m in graph if "tasks" in graph[m]] == []
    # The pure core reads nothing: no git, CI environment, engine or registry below it.
    core = ("buildinfo", "tags", "labels", "versionfile", "metadata", "decision", "pushplan")
    for pure in (*core, "dockerfile"):
        edges = reachable(graph, pure) & {"gitinfo", "ci", "facts", "engine", "images", "pusher"}
        assert edges == set(), f"{pure} reaches {edges}"


# What reads or writes the world: the network, processes, the engine, git, files by the tree.
IO_MODULES = {
    "docker",
    "git",
    "http",
    "invoke",
    "requests",
    "shutil",
    "socket",
    "subprocess",
    "tempfile",
    "urllib.request",
    "urllib3",
}
PURE = (
    "buildinfo",
    "tags",
    "labels",
    "versionfile",
    "metadata",
    "decision",
    "pushplan",
    "dockerfile",
    "manifests",
    "registry_address",
    "compose",
    "promotion",
)


def io_imports(module: str) -> dict[str, set[str]]:
    """I/O modules imported by ``module`` or any buildtools module it reaches, by importer."""
    found = {}
    for name in {module} | reachable(import_graph(), module):
        outside = outside_imports_of(PACKAGE / f"{name}.py")
        hits = {m for m in outside if m in IO_MODULES or m.split(".")[0] in IO_MODULES}
        if hits:
            found[name] = hits
    return found


@pytest.mark.parametrize("module", PURE)
def test_the_pure_core_imports_nothing_that_does_io(module: str) -> None:
    """Pure modules take plain values: none imports, even through another buildtools module,
    the network, the engine, git or processes (the registry client, for one, imports requests)."""
    assert io_imports(module) == {}


def test_the_io_check_sees_an_edge_through_another_module() -> None:
    # The check itself: the registry client's requests is seen from the planner of the release.
    assert "requests" in io_imports("registry_client")["registry_client"]
    assert "requests" in io_imports("release").get("registry_client", set())


def test_an_app_repository_needs_only_its_overrides(tmp_path: Path) -> None:
    """invoke.yaml with just app.context and app.repository: every other key is a default."""
    env = git_env(tmp_path / "home")
    app = init_repo(tmp_path / "myapp", env)
    app.write("tasks.py", "from buildtools.tasks import ns  # noqa: F401\n")
    app.write("invoke.yaml", "buildtools:\n  app:\n    context: .\n    repository: acme/app\n")
    app.write("Dockerfile", "FROM debian:bookworm-slim\nARG LARA_VERSION\n")
    commit = app.commit("app")
    run_env = {**env, "PATH": os.environ["PATH"]}

    def invoke(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(INVOKE), *args], cwd=app.path, env=run_env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        return done

    version = json.loads(invoke("version", "--format", "json").stdout)
    assert version["commit"] == commit and version["branch"] == "master"
    plans = json.loads(invoke("build", "--dry-run", "--json").stdout)
    app_plan, nginx_plan = plans
    assert app_plan["tags"][0] == f"acme/app:sha-{commit[:7]}"
    assert app_plan["context"] == str(app.path) and "BASE_IMAGE" not in app_plan["buildargs"]
    assert nginx_plan["tags"][0].startswith("lara/nginx:")
    assert nginx_plan["buildargs"]["BASE_IMAGE"] == config.DEFAULTS["nginx"]["base_image"]


def counting(monkeypatch: pytest.MonkeyPatch, module: object, name: str) -> list[int]:
    calls: list[int] = []
    real = getattr(module, name)

    def wrapper(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


@pytest.mark.docker
@pytest.mark.registry
def test_ci_on_a_tag_build_reads_git_once_and_logs_in_once(
    monkeypatch: pytest.MonkeyPatch,
    docker_client: docker.DockerClient,
    base_image: str,
    fast_registry: testbed.LocalRegistry,
    repo: GitRepo,
) -> None:
    repo.tag("v5.0.0")
    commit = repo.head()
    app_repo, nginx_repo = repos()
    proxy = FlakyProxy(fast_registry.host).start()
    section = config.merged(yaml.safe_load((ROOT / "invoke.yaml").read_text())["buildtools"])
    section["repo"] = str(repo.path)
    section["app"]["repository"], section["nginx"]["repository"] = app_repo, nginx_repo
    section["release"]["registries"] = proxy.host
    settings = config.load(section, ROOT)
    env = {
        "TRAVIS": "true",
        "TRAVIS_TAG": "v5.0.0",
        "TRAVIS_BRANCH": "v5.0.0",
        "TRAVIS_COMMIT": commit,
        "TRAVIS_PULL_REQUEST": "false",
        **login_env(proxy.host, fast_registry.username, fast_registry.password),
    }
    git_reads = counting(monkeypatch, gitinfo, "read")
    ci_reads = counting(monkeypatch, ci, "detect")
    try:
        result = pipeline.ci(settings, env, quiet=True, say=lambda line: None)
    finally:
        proxy.stop()
        for _, ref in local_tags(docker_client):
            if ref.startswith((f"{app_repo}:", f"{nginx_repo}:")):
                discard(docker_client, ref)

    assert result["released"]["version"] == "5.0.0"
    assert fast_registry.tags(app_repo) == ["5", "5.0", "5.0.0", "latest", f"sha-{commit[:7]}"]
    assert (len(git_reads), len(ci_reads)) == (1, 1)
    ours = [s for s in proxy.seen if s.user_agent.startswith("lara-buildtools")]
    logins = [s for s in ours if s.path == "/v2/"]
    # One anonymous probe (does it need a login?) and one with the credentials: once per run.
    assert len(logins) == 2, [f"{s.method} {s.path}" for s in ours]
