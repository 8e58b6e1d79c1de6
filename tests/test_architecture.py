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
from buildtools.config import schema
from buildtools.facts import ci_env, gitinfo
from buildtools.release import ci_steps, progress
from buildtools.release.prepare import Options
from buildtools.release.steps import Session
from tests.fixtures.flaky_proxy import FlakyProxy
from tests.fixtures.git import GitRepo, git_env, init_repo
from tests.fixtures.held_images import discard, local_tags
from tests.fixtures.project import commit_example
from tests.fixtures.registry import login_env, repos

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "buildtools"
INVOKE = ROOT / ".venv" / "bin" / "invoke"


# The layers, lowest first: a module may import its own folder and any folder of a lower layer,
# never one above. Folders on one layer do not import each other.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors",),
    ("config",),
    ("facts",),
    ("plan",),
    ("registry",),
    ("attest",),
    ("engine",),
    ("sidecar",),
    ("release",),
    ("cli",),
    ("tasks",),
)
LAYER = {folder: rank for rank, folders in enumerate(LAYERS) for folder in folders}


def module_name(path: Path) -> str:
    """``buildtools/plan/tags.py`` -> ``plan.tags``; ``buildtools/errors.py`` -> ``errors``."""
    return ".".join(path.relative_to(PACKAGE).with_suffix("").parts)


def folder_of(module: str) -> str:
    return module.split(".")[0]


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"}


@functools.cache  # the sources do not change during a run
def imports_of(path: Path) -> set[str]:
    """The buildtools modules a module imports, anywhere in it (lazy imports count too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "buildtools" and ".".join(parts[1:]) in MODULES:
                found.add(".".join(parts[1:]))
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
    return {m: imports_of(path) - {m} for m, path in MODULES.items()}


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = list(graph[start])
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(graph[name])
    return seen


def test_every_module_sits_in_a_declared_folder() -> None:
    assert {folder_of(m) for m in MODULES} == set(LAYER)
    # __init__ files only say what their folder is for: importing one module of a folder
    # must not import the rest of it (the CLI's start-up time, the pure core's purity).
    for init in PACKAGE.rglob("__init__.py"):
        body = ast.parse(init.read_text()).body
        assert all(isinstance(n, ast.Expr) for n in body), f"{init} holds code"


def test_imports_point_down_the_layers() -> None:
    upward = sorted(
        f"{m} imports {dep}"
        for m, deps in import_graph().items()
        for dep in deps
        if folder_of(dep) != folder_of(m) and LAYER[folder_of(dep)] >= LAYER[folder_of(m)]
    )
    assert upward == []


def test_the_layer_check_sees_an_upward_import(tmp_path: Path) -> None:
    # The check itself: a plan module importing the engine would be reported.
    graph = {"plan.tags": {"engine.images"}, "engine.images": set()}
    upward = [
        (m, d) for m, ds in graph.items() for d in ds if LAYER[folder_of(d)] >= LAYER[folder_of(m)]
    ]
    assert upward == [("plan.tags", "engine.images")]


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    cycles = sorted(m for m in graph if m in reachable(graph, m))
    assert cycles == [], f"modules on an import cycle: {cycles}"


def test_release_publishing_knows_nothing_of_building_and_only_tasks_sits_on_top():
    graph = import_graph()
    assert "release.build" not in reachable(graph, "release.publish")
    assert "engine.images" not in reachable(graph, "release.publish")
    assert [m for m in graph if "tasks" in graph[m]] == []


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
# Pure beyond the plan folder: the config entry parser and the compose file's renderer.
PURE = (
    *sorted(m for m in MODULES if folder_of(m) == "plan"),
    "config.registry_address",
    "engine.compose",
    "sidecar.rails_assets",
)


def io_imports(module: str) -> dict[str, set[str]]:
    """I/O modules imported by ``module`` or any buildtools module it reaches, by importer."""
    found = {}
    for name in {module} | reachable(import_graph(), module):
        outside = outside_imports_of(MODULES[name])
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
    # The check itself: the registry transport's requests is seen from the client and beyond.
    assert "requests" in io_imports("registry.client")["registry.transport"]
    assert "requests" in io_imports("release.publish").get("registry.transport", set())


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
    assert nginx_plan["buildargs"]["BASE_IMAGE"] == schema.DEFAULTS["nginx"]["base_image"]


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
    context = commit_example(repo)  # a release builds the commit's own files
    repo.tag("v5.0.0")
    commit = repo.head()
    app_repo, nginx_repo = repos()
    proxy = FlakyProxy(fast_registry.host).start()
    section = schema.merged(yaml.safe_load((ROOT / "invoke.yaml").read_text())["buildtools"])
    section["repo"] = str(repo.path)
    section["app"]["context"] = str(context)
    section["app"]["repository"], section["nginx"]["repository"] = app_repo, nginx_repo
    section["release"]["registries"] = proxy.host
    settings = schema.load(section, ROOT)
    env = {
        "TRAVIS": "true",
        "TRAVIS_TAG": "v5.0.0",
        "TRAVIS_BRANCH": "v5.0.0",
        "TRAVIS_COMMIT": commit,
        "TRAVIS_PULL_REQUEST": "false",
        **login_env(proxy.host, fast_registry.username, fast_registry.password),
    }
    git_reads = counting(monkeypatch, gitinfo, "read")
    ci_reads = counting(monkeypatch, ci_env, "detect")
    try:
        session = Session(lambda line: None, progress.QuietReporter(), build_display=False)
        result = ci_steps.ci(settings, env, Options(), session, quiet=True).as_dict()
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


def test_the_readme_folder_map_names_every_module_in_its_folder() -> None:
    """The README's "How it is built" table is how a newcomer finds a job's module."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## How it is built", 1)[1].split("\n## ", 1)[0]
    rows = {
        line.split("|")[1].strip().strip("`/"): line.split("|")[3]
        for line in section.splitlines()
        if line.startswith("| `")
    }
    folders = [folder for layer in LAYERS[1:-1] for folder in layer]
    assert list(rows)[: len(folders)] == folders  # in the layers' order, lowest first
    for module in MODULES:
        folder, _, name = module.partition(".")
        if name:
            assert f"`{name}`" in rows[folder], f"README's map lacks {module}"
