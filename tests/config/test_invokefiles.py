"""buildtools touches invoke only through its public API (the project's config file is checked
before invoke reads it: buildtools.config.invokefiles); an app's own tasks and config in the same
tasks.py behave as under plain invoke."""

from __future__ import annotations

import ast
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import invoke
import invoke.collection
import invoke.config
import invoke.context
import invoke.env
import invoke.executor
import invoke.loader
import invoke.program
import invoke.tasks
import pytest

from buildtools.config import invokefiles
from tests.fixtures.bad_input import (
    REAL_CLI,
    App,
    one_error,
    rows,
)
from tests.fixtures.git import git_env, init_repo

ROOT = Path(__file__).resolve().parents[2]
INVOKE = ROOT / ".venv" / "bin" / "invoke"


def invoke_private_names() -> set[str]:
    """Every ``_name`` invoke's classes define, and those a Config sets on itself."""
    modules = (
        invoke,
        invoke.collection,
        invoke.config,
        invoke.context,
        invoke.env,
        invoke.executor,
        invoke.loader,
        invoke.program,
        invoke.tasks,
    )
    names: set[str] = set()
    for module in modules:
        for value in vars(module).values():
            if inspect.isclass(value) and value.__module__.startswith("invoke"):
                names |= {n for n in dir(value) if n.startswith("_") and not n.startswith("__")}
    names |= {n for n in vars(invoke.config.Config()) if n.startswith("_")}
    return names


def private_uses(path: Path, names: set[str]) -> list[str]:
    """``x._name`` and ``"_name"`` (for getattr/setattr) of invoke's private names in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr in names:
            found.append(f"{path.name}:{node.lineno} .{node.attr}")
        elif isinstance(node, ast.Constant) and node.value in names:
            found.append(f"{path.name}:{node.lineno} {node.value!r}")
    return found


def test_buildtools_touches_no_private_part_of_invoke():
    names = invoke_private_names()
    assert {"_load_yaml", "_project_prefix", "_path_set"} <= names  # the scan sees them
    found = []
    for path in sorted((ROOT / "buildtools").rglob("*.py")):
        found += private_uses(path, names)
    assert found == []


def test_the_project_file_checked_is_the_one_invoke_reads():
    """Plain invoke (buildtools not imported) tries ``invoke.<suffix>`` in the order
    buildtools checks them, the first found winning: a new invoke that reads another suffix
    or order fails here before a user sees a file checked that invoke does not read."""
    probe = "import invoke.config as c; print(' '.join(c.Config()._file_suffixes))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert tuple(done.stdout.split()) == invokefiles.SUFFIXES


APP_TASKS = """\
from invoke import Collection, task

from buildtools.tasks import ns


@task
def mine(c):
    print(repr(c.config.myapp.count), repr(c.config.myapp.flag), repr(c.config.myapp.name))


ns.add_task(mine)
"""
PLAIN_TASKS = APP_TASKS.replace("from buildtools.tasks import ns", "ns = Collection()")


def test_an_apps_own_tasks_and_config_behave_as_under_plain_invoke(tmp_path: Path) -> None:
    """Values of the app's own section keep their YAML types and invoke's env conversion."""
    (tmp_path / "invoke.yaml").write_text("myapp:\n  count: 3\n  flag: true\n  name: x\n")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("INVOKE_")},
        "INVOKE_MYAPP_COUNT": "7",
        "INVOKE_MYAPP_FLAG": "0",
    }
    outputs = []
    for text in (APP_TASKS, PLAIN_TASKS):
        (tmp_path / "tasks.py").write_text(text)
        done = subprocess.run(
            [str(INVOKE), "mine"], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1] == "7 False 'x'\n"


def test_paths_are_relative_to_tasks_py_from_a_subdirectory(tmp_path: Path) -> None:
    """invoke finds tasks.py upwards from the working directory; buildtools' paths follow it."""
    (tmp_path / "tasks.py").write_text("from buildtools.tasks import ns  # noqa: F401\n")
    (tmp_path / "invoke.yaml").write_text("buildtools:\n  app:\n    dockerfile: ops/Dockerfile\n")
    below = tmp_path / "deep" / "below"
    below.mkdir(parents=True)
    probe = (
        "from invoke import Config, Context; from buildtools import tasks;"
        f"c = Config(project_location={str(tmp_path)!r}); c.load_project();"
        "c.load_collection(tasks.ns.configuration()); c.load_shell_env();"
        "print(tasks.settings(Context(c)).app.dockerfile)"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=below, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path / "ops" / "Dockerfile")


def test_search_root_names_the_project_from_anywhere(tmp_path: Path) -> None:
    """`invoke -r APP` run inside another checkout describes and builds APP, not the checkout
    the shell happens to be in (its commit, its Dockerfile)."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("INVOKE_", "GIT_"))},
        **git_env(tmp_path),
    }
    app = init_repo(tmp_path / "app", env, branch="main")
    app.write("tasks.py", "from buildtools.tasks import ns  # noqa: F401\n")
    app.write("invoke.yaml", "buildtools:\n  app:\n    repository: rt/app\n")
    app.commit("tasks")
    elsewhere = init_repo(tmp_path / "elsewhere", env, branch="other")
    done = subprocess.run(
        [str(INVOKE), "-r", str(app.path), "version", "--format", "env"],
        cwd=elsewhere.path, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"LARA_COMMIT={app.head()}" in done.stdout
    assert "LARA_BRANCH=main" in done.stdout


def test_a_tasks_file_importing_buildtools_through_its_own_module(tmp_path: Path) -> None:
    """The project is where tasks.py is, not the folder of the module that imports buildtools
    for it (ops/mine.py): its invoke.yaml and its Dockerfile are used."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("INVOKE_", "GIT_"))},
        **git_env(tmp_path),
    }
    app = init_repo(tmp_path / "app", env, branch="main")
    app.write("tasks.py", "from ops.mine import ns  # noqa: F401\n")
    app.write("ops/__init__.py", "")
    app.write("ops/mine.py", "from buildtools.tasks import ns  # noqa: F401\n")
    app.write("invoke.yaml", "buildtools:\n  app:\n    repository: rt/nested\n")
    app.write("Dockerfile", "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nARG LARA_VERSION\n")
    app.commit("tasks")
    done = subprocess.run(
        [str(INVOKE), "build", "--dry-run", "--json", "--only", "app"],
        cwd=app.path / "ops", env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (plan,) = json.loads(done.stdout)
    assert plan["tags"][0] == f"rt/nested:sha-{app.head()[:7]}"
    assert plan["dockerfile"] == str(app.path / "Dockerfile")


# --- bad input (tests/fixtures/bad_input.py): config files invoke would fail on ---


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("buildtools:\n  app: [unclosed\n", "is not valid YAML", marks=REAL_CLI),
        ("buildtools:\n\tapp:\n    context: .\n", "never tabs"),
    ],
    ids=["invalid YAML", "tab indent"],
)
def test_invoke_yaml_that_is_not_yaml_is_one_line(app: App, text: str, expected: str) -> None:
    line = one_error(app.invoke("version", yaml=text))
    assert "invoke.yaml, line" in line and expected in line


# (case, config file name, its text, the error line must contain)
ODD_CONFIG_FILES = [
    ("a list at the top", "invoke.yaml", "- buildtools\n", "invoke.yaml holds a list, not keys"),
    (
        "a section where a value belongs",
        "invoke.yaml",
        "buildtools:\n  title:\n    name: x\n",
        "invoke.yaml: buildtools.title is a section, not a single value",
    ),
    ("a key that is a number", "invoke.yaml", "buildtools:\n  1: x\n", "1 is not a key name"),
    ("JSON that does not parse", "invoke.json", '{"buildtools": {', "invoke.json, line 1"),
    (
        "JSON with a value where a section belongs",
        "invoke.json",
        '{"buildtools": {"git": 5}}',
        "buildtools.git is 5, not a section of keys",
    ),
    ("Python that does not parse", "invoke.py", "buildtools = {\n", "invoke.py, line 1"),
    (
        "Python with a value where a section belongs",
        "invoke.py",
        "buildtools = {'release': 3}\n",
        "buildtools.release is 3, not a section of keys",
    ),
    ("Python that fails", "invoke.py", "1 / 0\n", "ZeroDivisionError"),
    (
        "an empty section, which invoke cannot merge",
        "invoke.yaml",
        "buildtools:\n  git:\n",
        "buildtools.git is an empty section",
    ),
    ("an empty top section", "invoke.yaml", "buildtools:\n", "buildtools is an empty section"),
    (
        "a section written twice (YAML would keep only the last)",
        "invoke.yaml",
        "buildtools:\n  nginx:\n    cache_size: 2g\n  nginx:\n    short_max_age: 60\n",
        "invoke.yaml, line 4 is not valid YAML: 'nginx' appears twice in one section",
    ),
    (
        "a section that refers to itself",
        "invoke.yaml",
        "buildtools: &a\n  x: *a\n",
        "buildtools refers to itself",
    ),
]


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    rows(ODD_CONFIG_FILES),
)
def test_a_config_file_invoke_cannot_merge_is_one_line(
    app: App, name: str, text: str, expected: str
) -> None:
    """invoke reads invoke.yaml, else .yml, .json or .py: each shape it would fail on with a
    traceback (AmbiguousMergeError, JSONDecodeError, SyntaxError) is one line naming the file."""
    (app.path / "invoke.yaml").unlink()
    (app.path / name).write_text(text)
    line = one_error(app.invoke("version"))
    assert expected in line and name in line and "(fix: " in line


@pytest.mark.parametrize(
    "text",
    ["", "# nothing yet\n", pytest.param(None, marks=REAL_CLI)],
    ids=["empty", "comments", "missing"],
)
def test_an_empty_or_missing_invoke_yaml_means_the_defaults(app: App, text: str | None) -> None:
    if text is None:
        (app.path / "invoke.yaml").unlink()
        done = app.invoke("version", "--format", "env")
    else:
        done = app.invoke("version", "--format", "env", yaml=text)
    assert done.returncode == 0, done.stderr
    assert f"LARA_COMMIT={app.repo.head()}" in done.stdout
