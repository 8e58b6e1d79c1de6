"""lara-buildtools stands alone: its wheel, installed as an app installs it (not this checkout
in editable mode) into a fresh venv, runs an app repository's tasks with nothing of this
repository at hand; it ships only the package (no benchmarks, tests or test harness, and no
task that needs them), and nothing it installs imports the harness or a test-only tool.

The build and the install use uv from where ``scripts/venv`` keeps it (seconds, from uv's
cache); the wheel is built from a copy of this working tree, so the build's ``build/`` and
``*.egg-info`` stay out of it.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.fixtures.git import GitRepo, git_env, init_repo
from tests.fixtures.services import unavailable

pytestmark = pytest.mark.package

ROOT = Path(__file__).resolve().parents[1]
DISTRIBUTION = "lara-buildtools"
# Where scripts/venv installs uv.
UV = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lara-buildtools/uv/bin/uv"
# This repository's own folders: never shipped, never imported by what is installed (the
# `bench` task that runs the benchmarks is the checkout's own tasks.py's, not the package's).
HARNESS = {"benchmarks", "testbed", "tests"}

APP_DOCKERFILE = """\
FROM debian:bookworm-slim
ENV APP_HOME=/app
RUN mkdir -p $APP_HOME/config
ARG LARA_VERSION
ENV LARA_IMAGE_VERSION=$LARA_VERSION
ARG LARA_BRANCH
ARG LARA_TAG
ARG LARA_COMMIT
ARG LARA_BUILD_DATE
ARG LARA_BUILD_URL
ARG LARA_VERSION_YML
RUN printf '%s' "$LARA_VERSION_YML" > $APP_HOME/config/version.yml
ENV LARA_VERSION=$LARA_VERSION \\
    LARA_BRANCH=$LARA_BRANCH \\
    LARA_TAG=$LARA_TAG \\
    LARA_COMMIT=$LARA_COMMIT \\
    LARA_BUILD_DATE=$LARA_BUILD_DATE \\
    LARA_BUILD_URL=$LARA_BUILD_URL
"""
APP_CONFIG = """\
buildtools:
  app:
    context: .
    repository: acme/app
  nginx:
    repository: acme/nginx
    client_max_body_size: 25m
"""


@dataclass(frozen=True)
class Installed:
    venv: Path
    site_packages: Path
    wheel: Path

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The wheel built from a copy of this working tree, installed into a new, empty venv."""
    if not UV.is_file():
        unavailable("uv", FileNotFoundError(f"{UV} (bash scripts/venv installs it)"))
    work = tmp_path_factory.mktemp("package")
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    source = work / "source"
    for name in filter(None, (f.decode() for f in files)):
        if (ROOT / name).is_file():  # a deleted, not yet committed file is still listed
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    venv, dist = work / "venv", work / "dist"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    python = ["--python", sys.executable]
    build = [str(UV), "build", "-q", "--wheel", *python, "--out-dir", str(dist), str(source)]
    done = run(build, work, env)
    assert done.returncode == 0, done.stderr
    (wheel,) = dist.glob("*.whl")
    for args in (
        [str(UV), "venv", "-q", *python, str(venv)],
        [str(UV), "pip", "install", "-q", "--python", str(venv / "bin/python"), str(wheel)],
    ):
        done = run(args, work, env)
        assert done.returncode == 0, done.stderr
    purelib = run(
        [str(venv / "bin/python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        work,
        env,
    )
    return Installed(venv, Path(purelib.stdout.strip()), wheel)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> GitRepo:
    """An app repository with only tasks.py, a Dockerfile with the metadata block, invoke.yaml."""
    base = tmp_path_factory.mktemp("app")
    repo = init_repo(base / "myapp", git_env(base / "home"))
    repo.write("tasks.py", "from buildtools.tasks import ns  # noqa: F401\n")
    repo.write("Dockerfile", APP_DOCKERFILE)
    repo.write("invoke.yaml", APP_CONFIG)
    repo.commit("the app")
    return repo


@pytest.fixture(scope="module")
def invoke(installed: Installed, app: GitRepo) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the installed invoke in the app, as its developer would (no PYTHONPATH, no checkout)."""
    env = {k: v for k, v in app.env.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = f"{installed.venv / 'bin'}{os.pathsep}{os.environ['PATH']}"

    def call(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = run([installed.bin("invoke"), *args], app.path, env)
        assert "Traceback" not in done.stderr, done.stderr
        if ok:
            assert done.returncode == 0, done.stdout + done.stderr
        return done

    return call


def test_the_app_uses_the_installed_package_and_no_harness(installed, app):
    where = (
        "import importlib.util as u, json\n"
        "print(json.dumps({n: bool(u.find_spec(n)) for n in ('testbed', 'tests', 'benchmarks')}))\n"
        "import buildtools; print(buildtools.__file__)\n"
    )
    env = {k: v for k, v in app.env.items() if k != "PYTHONPATH"}
    done = run([installed.bin("python"), "-c", where], app.path, env)
    assert done.returncode == 0, done.stderr
    found, package = done.stdout.splitlines()
    assert json.loads(found) == {"testbed": False, "tests": False, "benchmarks": False}
    assert Path(package).parent == installed.site_packages / "buildtools"
    shipped = {
        p.relative_to(installed.site_packages / "buildtools").as_posix()
        for p in (installed.site_packages / "buildtools").rglob("*")
        if p.is_file()
    }
    assert "testbed.py" not in shipped and "engine/bases.py" in shipped
    assert {"sidecar/Dockerfile", "py.typed"} <= shipped


def test_the_wheel_holds_only_the_package(installed):
    """What the wheel carries at its top level: the package and its metadata, nothing of the
    checkout's benchmarks, tests or harness (nor a stray top-level module)."""
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = wheel.namelist()
    top = {name.split("/")[0] for name in names}
    assert {name for name in top if not name.endswith(".dist-info")} == {"buildtools"}, top
    assert "buildtools/tasks.py" in names and "buildtools/sidecar/Dockerfile" in names


def test_invoke_list_names_the_tasks(invoke):
    listed = invoke("--list").stdout.split()
    for task in ("bases", "build", "ci", "down", "release", "up", "version", "nginx.config"):
        assert task in listed
    # `bench` measures this repository; an app has no benchmarks to run.
    assert "bench" not in listed


def test_invoke_version_describes_the_apps_commit(invoke, app):
    commit = app.head()
    version = yaml.safe_load(invoke("version").stdout)
    assert version["commit"] == commit and version["branch"] == "master"
    assert version["image_tags"][0] == f"sha-{commit[:7]}"


def test_invoke_nginx_config_renders_the_apps_settings(invoke):
    conf = invoke("nginx.config").stdout
    assert "client_max_body_size 25m;" in conf
    assert "listen 80 default_server;" in conf


def test_invoke_build_dry_run_plans_both_images_from_the_package(invoke, installed, app):
    done = invoke("build", "--dry-run")
    short, commit = app.head()[:7], app.head()
    assert f"tag    acme/app:sha-{short}" in done.stdout
    assert f"arg    LARA_COMMIT={commit}" in done.stdout
    assert f"tag    acme/nginx:sha-{short}" in done.stdout
    # The sidecar builds from the Dockerfile that comes with the package.
    sidecar = installed.site_packages / "buildtools" / "sidecar" / "Dockerfile"
    assert f"would build {sidecar} in {sidecar.parent}" in done.stdout
    assert "warning" not in done.stderr.lower()


def test_invoke_bases_help_shows_its_option(invoke):
    assert "--suite=STRING" in invoke("bases", "--help").stdout


# ---- what the installed files import ----


def top_level_imports(source: str) -> set[str]:
    """Top-level names of every absolute import in a module, lazy ones inside functions too."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def import_names(requirement_names: set[str], python: str, cwd: Path) -> set[str]:
    """The top-level modules the named distributions provide, as ``python`` sees them."""
    script = (
        "import json, sys\n"
        "from importlib import metadata\n"
        "wanted = set(json.loads(sys.argv[1]))\n"
        "norm = lambda n: n.lower().replace('_', '-').replace('.', '-')\n"
        "names = {m for m, dists in metadata.packages_distributions().items()\n"
        "         if any(norm(d) in wanted for d in dists)}\n"
        "print(json.dumps(sorted(names)))\n"
    )
    done = subprocess.run(
        [python, "-c", script, json.dumps(sorted(requirement_names))],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return set(json.loads(done.stdout))


# Extras an installed module may import (lazily, with a one-line error naming the extra when
# it is missing): the signing library's. Every other extra is for tests or development.
RUNTIME_EXTRAS = {"attest"}


def requirements(python: str, cwd: Path, extras: bool, only: set[str] | None = None) -> set[str]:
    """Normalised names of the distribution's requirements: the install's, or its extras'
    (``only``: just those extras'). The distribution itself (an extra naming another) is left
    out."""
    script = (
        "import json\nfrom importlib import metadata\n"
        f"print(json.dumps(metadata.requires({DISTRIBUTION!r}) or []))\n"
    )
    done = subprocess.run(
        [python, "-c", script], cwd=cwd, capture_output=True, text=True, check=True
    )
    names = set()
    for line in json.loads(done.stdout):
        spec, _, marker = line.partition(";")
        if ("extra ==" in marker) != extras:
            continue
        extra = re.search(r"extra == ['\"]([^'\"]+)['\"]", marker)
        if only is not None and (extra is None or extra.group(1) not in only):
            continue
        name = spec.strip().split("[")[0]
        for stop in "<>=!~ (":
            name = name.split(stop)[0]
        names.add(name.lower().replace("_", "-").replace(".", "-"))
    return names - {DISTRIBUTION.lower()}


def undeclared_imports(
    package: Path, allowed: set[str], forbidden: set[str]
) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Per module of ``package``: forbidden imports, and imports neither allowed nor stdlib."""
    bad: dict[str, set[str]] = {}
    unknown: dict[str, set[str]] = {}
    for path in sorted(package.rglob("*.py")):
        names = top_level_imports(path.read_text())
        module = path.relative_to(package.parent).as_posix()
        if names & forbidden:
            bad[module] = names & forbidden
        rest = names - forbidden - allowed - set(sys.stdlib_module_names) - {"__future__"}
        if rest:
            unknown[module] = rest
    return bad, unknown


def test_the_installed_files_import_only_their_requirements(installed, tmp_path):
    """AST-walk every installed module: only the standard library, the package itself and the
    installed distribution's own requirements; never the harness or a test or dev extra."""
    python = installed.bin("python")
    runtime = import_names(requirements(python, tmp_path, extras=False), python, tmp_path)
    assert {"docker", "git", "yaml", "invoke", "requests"} <= runtime  # the lookup works
    # The extras' tools are not in the fresh venv: ask the test venv, which has them.
    extras = requirements(python, tmp_path, extras=True)
    # An extra may widen a runtime requirement (ssh: docker[ssh]): what the install requires
    # anyway is not test-only.
    optional = import_names(
        requirements(python, tmp_path, True, RUNTIME_EXTRAS), sys.executable, tmp_path
    )
    assert {"cryptography", "nacl"} <= optional
    runtime |= optional
    test_only = (import_names(extras, sys.executable, tmp_path) | HARNESS) - runtime
    assert {"pytest", "hypothesis", "bcrypt"} <= test_only
    bad, unknown = undeclared_imports(
        installed.site_packages / "buildtools", {"buildtools", *runtime}, test_only
    )
    assert bad == {}, f"installed modules import test-only code: {bad}"
    assert unknown == {}, f"installed modules import what the package does not require: {unknown}"


def test_no_installed_text_names_this_checkouts_tools(installed):
    """Errors and help an app's developer reads name nothing only this repository has (its
    setup script, its harness, its tests): they would be instructions that cannot be followed."""
    checkout_only = ("scripts/", "testbed", "tests/", ".venv/")
    found = []
    for path in sorted((installed.site_packages / "buildtools").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found += [
                    f"{path.name}:{node.lineno}: {word}"
                    for word in checkout_only
                    if word in node.value
                ]
    assert found == []


def test_the_import_check_sees_lazy_and_from_imports(tmp_path):
    """The check above fails on what it is for: a test tool imported inside a function."""
    package = tmp_path / "buildtools"
    package.mkdir()
    (package / "ok.py").write_text("import os\nfrom buildtools import errors\n")
    (package / "lazy.py").write_text(
        "def bases():\n    import bcrypt\n    from testbed.engines import FreshEngine\n"
    )
    (package / "stray.py").write_text("import urllib3.util\nfrom . import ok\n")
    bad, unknown = undeclared_imports(package, {"buildtools"}, {"bcrypt", "testbed"})
    assert bad == {"buildtools/lazy.py": {"bcrypt", "testbed"}}
    assert unknown == {"buildtools/stray.py": {"urllib3"}}
