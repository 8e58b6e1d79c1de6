"""Bad input and faults, as a hostile new user would cause them: every case runs the real task
in an app repository of its own and must end in exactly one line (no traceback) with a
non-zero exit, or go on with a warning where the input is only doubtful, and change nothing.

Most cases run `invoke` inside the test process (tests/fixtures/invoke_cli.py: invoke's own
Program, the app's tasks.py and config files, ``buildtools.tasks`` imported anew); the rows
marked ``real_cli`` run the console script in a child process, at least one of each kind, and
:func:`test_in_process_runs_print_what_the_command_line_prints` holds the two ways equal."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import testbed
from buildtools import config, facts, tags, validate
from buildtools.errors import BuildToolsError
from tests.fixtures import invoke_cli
from tests.fixtures.git import GitRepo, git_env, init_repo
from tests.fixtures.held_images import discard

ROOT = Path(__file__).resolve().parents[1]
INVOKE = ROOT / ".venv" / "bin" / "invoke"

DOCKERFILE = """\
ARG BASE_IMAGE=lara-buildtools/debian:latest
FROM ${BASE_IMAGE}
RUN echo built > /built.txt
ARG LARA_VERSION=unknown
ENV LARA_IMAGE_VERSION=${LARA_VERSION}
"""
# An app Dockerfile without the metadata block, and one that declares it before a RUN.
NO_BLOCK = DOCKERFILE.split("ARG LARA_VERSION")[0]
EARLY_BLOCK = """\
ARG BASE_IMAGE=lara-buildtools/debian:latest
FROM ${BASE_IMAGE}
ARG LARA_VERSION=unknown
RUN echo built > /built.txt
ENV LARA_IMAGE_VERSION=${LARA_VERSION}
"""
# No engine answers here: an error that names the Dockerfile came before any engine call.
NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}


# A test or row that runs the console script in a child process, not inside the test process.
REAL_CLI = pytest.mark.real_cli


def rows(cases: list[tuple], real: Collection[str] = ()) -> list:
    """Parameter rows from ``(case id, values…)`` tuples; the ids in ``real`` run the real CLI."""
    return [
        pytest.param(*case[1:], id=case[0], marks=[REAL_CLI] if case[0] in real else [])
        for case in cases
    ]


@dataclass
class App:
    """An app repository using the tasks, with its own image repositories."""

    repo: GitRepo
    env: dict[str, str]
    name: str = field(default_factory=lambda: f"lbtbad{secrets.token_hex(3)}")
    real_cli: bool = False

    @property
    def path(self) -> Path:
        return self.repo.path

    def invoke(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        yaml: str | None = None,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        if yaml is not None:
            (self.path / "invoke.yaml").write_text(yaml)
        full = {**self.env, **(env or {})}
        return invoke_cli.run(args, cwd or self.path, full, real_cli=self.real_cli)


def app_yaml(name: str, extra: str = "") -> str:
    return (
        "buildtools:\n"
        "  app:\n"
        f"    repository: {name}/app\n"
        "    base_image: lara-buildtools/debian:latest\n"
        "  nginx:\n"
        f"    repository: {name}/nginx\n"
        "    base_image: lara-buildtools/debian:latest\n"
        f"{extra}"
    )


@pytest.fixture
def app(tmp_path: Path, request: pytest.FixtureRequest) -> App:
    env = git_env(tmp_path / "home")
    repo = init_repo(tmp_path / "app", env, branch="main")
    repo.write("tasks.py", "from buildtools.tasks import ns  # noqa: F401\n")
    repo.write("Dockerfile", DOCKERFILE)
    repo.write("Dockerfile.noblock", NO_BLOCK)
    repo.write("Dockerfile.early", EARLY_BLOCK)
    real_cli = request.node.get_closest_marker("real_cli") is not None
    made = App(repo, {**env, "PATH": os.environ["PATH"]}, real_cli=real_cli)
    repo.write("invoke.yaml", app_yaml(made.name))
    repo.commit("app")
    return made


def one_error(done: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """The single error line of a failed task (asserting there is exactly one, and last;
    progress lines of a build may come before it)."""
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    start = "interrupted" if code == 130 else "error: "
    errors = [line for line in lines if line.startswith(start)]
    assert len(errors) == 1 and lines[-1] == errors[0], done.stderr
    return errors[0]


TRAVIS_PR = {
    "TRAVIS": "true",
    "TRAVIS_PULL_REQUEST": "5",
    "TRAVIS_BRANCH": "main",
    "TRAVIS_PULL_REQUEST_BRANCH": "feature",
}

# (case, task args, environment, invoke.yaml extra lines, the error line must contain)
FAILURES = [
    (
        "false from the environment means false",
        ["release", "--dry-run"],
        {
            **TRAVIS_PR,
            "INVOKE_BUILDTOOLS_RELEASE_ALLOW_PULL_REQUESTS": "false",
            "INVOKE_BUILDTOOLS_TAGS_PULL_REQUESTS": "FALSE",
        },
        "",
        "refusing to release pull request #5",
    ),
    (
        "a boolean that is neither",
        ["version"],
        {"INVOKE_BUILDTOOLS_GIT_UNTRACKED_IS_DIRTY": "maybe"},
        "",
        "buildtools.git.untracked_is_dirty = 'maybe' is not true or false",
    ),
    (
        "a CI tag git does not have",
        ["release", "--dry-run"],
        {"TRAVIS": "true", "TRAVIS_TAG": "v9.9.9", "TRAVIS_BRANCH": "v9.9.9"},
        "",
        "TRAVIS_TAG names tag 'v9.9.9', but that tag does not exist in git",
    ),
    (
        "a GitHub tag ref git does not have",
        ["version"],
        {"GITHUB_ACTIONS": "true", "GITHUB_REF": "refs/tags/v8.0.0"},
        "",
        "GITHUB_REF names tag 'v8.0.0'",
    ),
    (
        "a --branch flag with a control character",
        ["version", "--branch", "a\x1b[31mred"],
        {},
        "",
        "--branch 'a\\x1b[31mred' holds a control character",
    ),
    (
        "retries that are not a number",
        ["version"],
        {"INVOKE_BUILDTOOLS_RELEASE_RETRIES": "lots"},
        "",
        "buildtools.release.retries = 'lots' is not a whole number",
    ),
    (
        "retries that are not a number, over a number in invoke.yaml",
        ["version"],
        {"INVOKE_BUILDTOOLS_RELEASE_RETRIES": "lots"},
        "  release:\n    retries: 3\n",
        "buildtools.release.retries = 'lots' is not a whole number",
    ),
    (
        "false from the environment over true in invoke.yaml",
        ["release", "--dry-run"],
        {**TRAVIS_PR, "INVOKE_BUILDTOOLS_RELEASE_ALLOW_PULL_REQUESTS": "false"},
        "  release:\n    allow_pull_requests: true\n",
        "refusing to release pull request #5",
    ),
    (
        "a cache registry that is no host",
        ["build", "--dry-run"],
        {"INVOKE_BUILDTOOLS_CACHE_REGISTRIES": "ghcr.io/org"},
        "",
        "config key buildtools.cache.registries: registry 'ghcr.io/org' is not a host[:port]",
    ),
    (
        "negative retries",
        ["version"],
        {},
        "  release:\n    retries: -1\n",
        "buildtools.release.retries = '-1' is not a whole number of at least 0",
    ),
    (
        "an upper-case repository",
        ["build"],
        {"INVOKE_BUILDTOOLS_APP_REPOSITORY": "UPPER/Case"},
        "",
        "buildtools.app.repository = 'UPPER/Case' is not a valid image repository",
    ),
    (
        "a base image that is no reference",
        ["build"],
        {"INVOKE_BUILDTOOLS_APP_BASE_IMAGE": "Bad Image!!"},
        "",
        "buildtools.app.base_image = 'Bad Image!!' is not a valid image reference",
    ),
    (
        "a cache size nginx refuses, in a dry run",
        ["build", "--dry-run"],
        {"INVOKE_BUILDTOOLS_NGINX_CACHE_SIZE": "lots"},
        "",
        "buildtools.nginx.cache_size = 'lots' is not valid for nginx",
    ),
    (
        "latest as an extra branch tag",
        ["build", "--dry-run"],
        {"INVOKE_BUILDTOOLS_TAGS_EXTRA": "main=latest"},
        "",
        "gives branch 'main' the tag 'latest', which only releases",
    ),
    (
        "a pre-release as an extra branch tag",
        ["build", "--dry-run"],
        {"INVOKE_BUILDTOOLS_TAGS_EXTRA": "main=1.2.3-rc.1"},
        "",
        "gives branch 'main' the tag '1.2.3-rc.1', which only releases",
    ),
    (
        "a CI commit that is not the checkout",
        ["release", "--dry-run"],
        {"TRAVIS": "true", "TRAVIS_BRANCH": "main", "TRAVIS_COMMIT": "0123abc" * 5 + "01234"},
        "",
        "TRAVIS_COMMIT says commit 0123abc0123a, but the checkout is at",
    ),
    (
        "a section that is not one",
        ["version"],
        {},
        "  git: 5\n",
        "buildtools.git is 5, not a section of keys",
    ),
    (
        "no metadata block in the app Dockerfile",
        ["build", "--only", "app"],
        {**NO_ENGINE, "INVOKE_BUILDTOOLS_APP_DOCKERFILE": "Dockerfile.noblock"},
        "",
        "Dockerfile.noblock declares no ARG LARA_VERSION in its last stage (fix: add these lines "
        "at its end: ARG LARA_VERSION / ENV LARA_IMAGE_VERSION=$LARA_VERSION",
    ),
    (
        "no metadata block, in a dry run",
        ["build", "--dry-run"],
        {**NO_ENGINE, "INVOKE_BUILDTOOLS_APP_DOCKERFILE": "Dockerfile.noblock"},
        "",
        "Dockerfile.noblock declares no ARG LARA_VERSION in its last stage",
    ),
    (
        "no metadata block, in CI",
        ["ci"],
        {**NO_ENGINE, "INVOKE_BUILDTOOLS_APP_DOCKERFILE": "Dockerfile.noblock"},
        "",
        "Dockerfile.noblock declares no ARG LARA_VERSION in its last stage",
    ),
    (
        "no metadata block, through --dockerfile",
        ["build", "--dockerfile", "Dockerfile.noblock"],
        NO_ENGINE,
        "",
        "Dockerfile.noblock declares no ARG LARA_VERSION in its last stage",
    ),
    (
        "an app Dockerfile that is not there",
        ["build", "--dry-run"],
        {**NO_ENGINE, "INVOKE_BUILDTOOLS_APP_DOCKERFILE": "Dockerfile.nope"},
        "",
        "Dockerfile not found: ",
    ),
    (
        "an empty sha prefix",
        ["version"],
        {"INVOKE_BUILDTOOLS_TAGS_SHA_PREFIX": ""},
        "",
        "config key buildtools.tags.sha_prefix is empty",
    ),
    (
        "a sha prefix that starts no tag",
        ["build", "--dry-run"],
        {},
        "  tags:\n    sha_prefix: -git\n",
        "buildtools.tags.sha_prefix = '-git' is not the start of a Docker tag",
    ),
    (
        "a service named like the stack's own containers",
        ["build", "--dry-run"],
        {},
        "  smoke:\n    services:\n      app: {image: mariadb:11.2}\n",
        "has a service named 'app', which the stack's own containers use",
    ),
    (
        "a service name with capitals",
        ["build", "--dry-run"],
        {},
        "  smoke:\n    services:\n      Db_1: {image: mariadb:11.2}\n",
        "has a service named 'Db_1', which is not a lower-case name (fix: use a-z, digits",
    ),
    (
        "a line break in a CI variable",
        ["version"],
        {"GITHUB_ACTIONS": "TRUE", "GITHUB_REF": "refs/heads/a\nLARA_TAG=evil"},
        "",
        "GITHUB_REF='refs/heads/a\\nLARA_TAG=evil' holds a control character",
    ),
    (
        "a stack name Docker refuses",
        ["down", "--name", "a b"],
        {},
        "",
        "--name 'a b' cannot start container names",
    ),
    (
        "releasing pull requests without their tags (ci)",
        ["ci"],
        {**NO_ENGINE, **TRAVIS_PR, "INVOKE_BUILDTOOLS_RELEASE_ALLOW_PULL_REQUESTS": "true"},
        "",
        "allow_pull_requests is on but buildtools.tags.pull_requests is off",
    ),
    (
        "releasing pull requests without their tags (release)",
        ["release", "--dry-run"],
        {**NO_ENGINE, **TRAVIS_PR, "INVOKE_BUILDTOOLS_RELEASE_ALLOW_PULL_REQUESTS": "true"},
        "",
        "allow_pull_requests is on but buildtools.tags.pull_requests is off",
    ),
    (
        "a port that is no number",
        ["up", "--port", "abc"],
        {},
        "",
        "--port 'abc' is not a port number",
    ),
]


@pytest.mark.parametrize(
    ("args", "env", "extra", "expected"),
    rows(
        FAILURES,
        real={
            "no metadata block in the app Dockerfile",
            "releasing pull requests without their tags (ci)",
        },
    ),
)
def test_bad_input_is_one_line_and_a_non_zero_exit(
    app: App, args: list[str], env: dict[str, str], extra: str, expected: str, closed_port: int
) -> None:
    closed = f"127.0.0.1:{closed_port}"  # any registry contact would fail otherwise
    env = {"INVOKE_BUILDTOOLS_RELEASE_REGISTRIES": closed, **env}
    done = app.invoke(*args, env=env, yaml=app_yaml(app.name, extra))
    line = one_error(done)
    assert expected in line and "unreachable" not in line


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


# The same invocation both ways, one of each kind of outcome (the rows marked real_cli above
# are the kinds these do not show): (case, args, environment, config file name and text).
BOTH_WAYS = [
    (
        "a task's one-line error",
        ["version"],
        {"INVOKE_BUILDTOOLS_GIT_UNTRACKED_IS_DIRTY": "x"},
        None,
    ),
    ("a config file invoke would fail on", ["version"], {}, ("invoke.py", "1 / 0\n")),
    (
        "a warning, then the plan",
        ["build", "--dry-run"],
        {**NO_ENGINE, "INVOKE_BUILDTOOLS_APP_DOCKERFILE": "Dockerfile.early"},
        None,
    ),
    ("JSON on stdout", ["build", "--dry-run", "--json"], NO_ENGINE, None),
    ("an unknown task", ["nope"], {}, None),
]


@pytest.mark.parametrize(("args", "env", "config_file"), rows(BOTH_WAYS))
def test_in_process_runs_print_what_the_command_line_prints(
    app: App, args: list[str], env: dict[str, str], config_file: tuple[str, str] | None
) -> None:
    """The in-process runner is only a shortcut: exit code, stdout and stderr are the console
    script's, byte for byte."""
    if config_file is not None:
        (app.path / "invoke.yaml").unlink()
        (app.path / config_file[0]).write_text(config_file[1])
    full = {**app.env, **env}
    real = invoke_cli.real(args, app.path, full)
    inside = invoke_cli.in_process(args, app.path, full)
    assert (inside.returncode, inside.stdout, inside.stderr) == (
        real.returncode,
        real.stdout,
        real.stderr,
    )


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


@pytest.mark.parametrize(
    ("args", "env", "extra", "warning"),
    [
        (
            ["version"],
            {"GITHUB_ACTIONS": "true", "GITHUB_REF": "garbage"},
            "",
            "GITHUB_REF='garbage' is not refs/heads/",
        ),
        (
            ["version"],
            {},
            "    upstreem: x:1\n  typo: 1\n",  # the first line goes on app_yaml's nginx section
            "did you mean buildtools.nginx.upstream?",
        ),
        (
            ["build", "--dry-run"],
            {**NO_ENGINE, "INVOKE_BUILDTOOLS_APP_DOCKERFILE": "Dockerfile.early"},
            "",
            "Dockerfile.early declares the build metadata (ARG LARA_*) at line 3, before RUN at "
            "line 4: every new commit rebuilds it (fix: move the ARG LARA_* lines, and what uses "
            "them, below line 4)",
        ),
        (
            ["build", "--dry-run", "--only", "nginx"],  # the sidecar's Dockerfile is ours
            {**NO_ENGINE, "INVOKE_BUILDTOOLS_APP_DOCKERFILE": "Dockerfile.noblock"},
            "",
            None,
        ),
    ],
    ids=["ignored GITHUB_REF", "unknown key", "metadata block too early", "sidecar only"],
)
def test_doubtful_input_goes_on_with_a_warning(
    app: App, args: list[str], env: dict[str, str], extra: str, warning: str | None
) -> None:
    done = app.invoke(*args, env=env, yaml=app_yaml(app.name, extra))
    assert done.returncode == 0, done.stderr
    if warning is None:
        assert "warning:" not in done.stderr, done.stderr
        return
    assert any(line.startswith("warning:") and warning in line for line in done.stderr.splitlines())


def test_two_release_tags_on_one_commit_say_which_is_built(app: App) -> None:
    app.repo.tag("v1.0.0")
    app.repo.tag("v1.0.1")
    done = app.invoke("version", "--format", "json")
    assert done.returncode == 0 and '"version": "1.0.1"' in done.stdout
    assert "carries the release tags v1.0.1, v1.0.0: building v1.0.1" in done.stderr


@pytest.mark.docker
@REAL_CLI
def test_down_never_removes_a_container_it_did_not_start(
    app: App, docker_client: docker.DockerClient, base_image: str
) -> None:
    prefix = f"lbt-foreign-{secrets.token_hex(3)}"
    foreign = docker_client.containers.run(
        base_image, ["sleep", "600"], name=f"{prefix}-app", detach=True
    )
    try:
        line = one_error(app.invoke("down", "--name", prefix))
        assert f"a container named {prefix}-app exists and was not started by invoke up" in line
        foreign.reload()
        assert foreign.status == "running"
    finally:
        foreign.remove(force=True)


@pytest.mark.docker
@REAL_CLI
def test_build_failures_are_one_line_and_tag_nothing(
    app: App, docker_client: docker.DockerClient, base_image: str
) -> None:
    app.repo.write("Dockerfile.typo", DOCKERFILE.replace("RUN echo", "RUNN echo"))
    (app.path / "Dockerfile.latin1").write_bytes("# caf\xe9\n".encode("latin-1") + b"FROM x\n")

    typo = one_error(app.invoke("build", "--only", "app", "--dockerfile", "Dockerfile.typo"))
    latin = one_error(app.invoke("build", "--only", "app", "--dockerfile", "Dockerfile.latin1"))
    no_block = one_error(app.invoke("build", "--dockerfile", "Dockerfile.noblock"))

    assert "Dockerfile.typo line 3: unknown instruction: RUNN" in typo
    assert "%7B" not in typo and "BASE_IMAGE" not in typo  # no URL-encoded build args
    assert "Dockerfile.latin1 is not UTF-8 text" in latin
    assert "Dockerfile.noblock declares no ARG LARA_VERSION in its last stage" in no_block
    assert docker_client.images.list(name=f"{app.name}/app") == []


@pytest.mark.docker
@REAL_CLI
def test_ctrl_c_during_a_build_exits_130_with_one_line(
    app: App, docker_client: docker.DockerClient, base_image: str
) -> None:
    app.repo.write("Dockerfile.slow", DOCKERFILE.replace("RUN echo", "RUN sleep 30 && echo"))
    proc = subprocess.Popen(
        [str(INVOKE), "build", "--only", "app", "--no-cache", "--dockerfile", "Dockerfile.slow"],
        cwd=app.path,
        env=app.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    seen = ""
    # The step's own command: another test's container may run `sleep 300` meanwhile.
    while "sleep 30 && echo built" not in seen and time.monotonic() < deadline:
        time.sleep(0.5)
        seen = " ".join(
            " ".join(c.attrs["Config"].get("Cmd") or [])
            for c in docker_client.containers.list(ignore_removed=True)  # others' come and go
        )
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    line = one_error(done, code=130)
    assert line.startswith("interrupted: the app image build stopped at step")
    assert docker_client.images.list(name=f"{app.name}/app") == []


# --- any string anywhere: one line, never a traceback ---------------------------------------

CI_VARIABLES = (
    "CI",
    "TRAVIS",
    "TRAVIS_BRANCH",
    "TRAVIS_TAG",
    "TRAVIS_COMMIT",
    "TRAVIS_PULL_REQUEST",
    "TRAVIS_PULL_REQUEST_BRANCH",
    "TRAVIS_BUILD_NUMBER",
    "GITHUB_ACTIONS",
    "GITHUB_REF",
    "GITHUB_SHA",
    "GITHUB_HEAD_REF",
    "GITLAB_CI",
    "CI_COMMIT_TAG",
    "CI_COMMIT_BRANCH",
    "CI_COMMIT_SHA",
    "CI_MERGE_REQUEST_IID",
    "SOURCE_BRANCH",
    "SOURCE_COMMIT",
    "SOURCE_DATE_EPOCH",
)
TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40
)


@settings(max_examples=200, deadline=None)
@given(key=st.sampled_from(config.KNOWN_KEYS), value=TEXT)
def test_any_string_in_any_config_key_is_a_setting_or_one_line(key: str, value: str) -> None:
    section = config.merged({})
    node = section
    *parents, leaf = key.split(".")
    for part in parents:
        node = node[part]
    node[leaf] = value  # as an INVOKE_BUILDTOOLS_* variable gives it: a string
    try:
        validate.check(config.load(section, ROOT))
    except BuildToolsError as exc:
        assert "\n" not in str(exc) and exc.problem


@pytest.fixture(scope="module")
def one_commit(tmp_path_factory: pytest.TempPathFactory) -> GitRepo:
    base = tmp_path_factory.mktemp("prop")
    repo = init_repo(base / "repo", git_env(base / "home"))
    repo.tag("v1.0.0")
    return repo


@pytest.fixture
def git_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The checkout's git facts read once for all examples (it does not change between them;
    the environment is what varies): 150 examples of six git processes were 4 s of CPU."""
    read = functools.cache(facts.gitinfo.read)
    monkeypatch.setattr(facts.gitinfo, "read", read)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(env=st.dictionaries(st.sampled_from(CI_VARIABLES), TEXT, max_size=6))
def test_any_ci_environment_is_a_build_or_one_line(
    one_commit: GitRepo, git_read_once: None, env: dict
) -> None:
    env = {**env, "TRAVIS": env.get("TRAVIS", "true")} if "TRAVIS_TAG" in env else env
    try:
        meta = facts.Run.read(
            dataclasses.replace(
                config.load(config.merged({}), ROOT), repo=one_commit.path.resolve()
            ),
            env,
        ).metadata()
    except BuildToolsError as exc:
        assert "\n" not in str(exc) and exc.problem
        return
    assert meta.info.commit and all(tags.VALID_TAG.match(t.name) for t in meta.tags)


# --- issue 18: release integrity (tag kinds, --commit/--tag, foreign checkouts, tag lengths,
# shallow fetches, CI contradictions, pre-engine checks). Each row changes nothing: no engine
# is reachable (NO_ENGINE), the registry is a closed port, and the checkout's HEAD, tags,
# status and depth are the same afterwards.


def _git_state(repo: GitRepo) -> tuple[str, ...]:
    """HEAD, depth, tags, status: read also where the checkout was given to another user."""
    trusted = ("-c", "safe.directory=*")
    return (
        repo.git(*trusted, "rev-parse", "HEAD"),
        repo.git(*trusted, "rev-list", "--count", "HEAD"),
        repo.git(*trusted, "tag", "--list"),
        repo.git(*trusted, "status", "--porcelain"),
        repo.git(*trusted, "rev-parse", "--is-shallow-repository"),
    )


def _older_commit_dirty(app: App) -> dict[str, str]:
    old = app.repo.head()
    app.repo.commit("newer")
    app.repo.write("history.txt", "uncommitted\n")
    return {"OLD": old}


def _tag_elsewhere(app: App) -> dict[str, str]:
    app.repo.tag("v1.0.0")
    app.repo.commit("after the release")
    return {}


def _long_release_tag(app: App) -> dict[str, str]:
    app.repo.tag("v2.0.0-" + "a" * 130)
    return {}


def _long_plain_tag(app: App) -> dict[str, str]:
    app.repo.tag("deploy-" + "b" * 125)
    return {}


def _inside_another_checkout(app: App) -> dict[str, str]:
    inner = app.path / "src" / "lara"
    inner.mkdir(parents=True)
    (inner / "tasks.py").write_text("from buildtools.tasks import ns  # noqa: F401\n")
    (inner / "invoke.yaml").write_text(app_yaml(app.name))
    return {"CWD": str(inner)}


def _bare_clone(app: App) -> dict[str, str]:
    bare = app.path.parent / "bare.git"
    app.repo.git("clone", "-q", "--bare", str(app.path), str(bare))
    return {"INVOKE_BUILDTOOLS_REPO": str(bare)}


def _owned_by_another_user(app: App) -> dict[str, str]:
    for path in [app.path, *app.path.rglob("*")]:
        os.lchown(path, 12345, 12345)
    return {}


def _nothing(app: App) -> dict[str, str]:
    return {}


TRAVIS_MAIN = {"TRAVIS": "true", "TRAVIS_BRANCH": "main"}
AS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="giving a checkout away needs root")

# (case, set-up (returns extra env; CWD runs the task elsewhere, {OLD} is put into the args),
#  task args, environment, invoke.yaml extra lines, the error line holds, it must not hold)
INTEGRITY_FAILURES = [
    (
        "3: --commit other than HEAD, on a dirty tree",
        _older_commit_dirty,
        ["release", "--dry-run", "--branch", "main", "--commit", "{OLD}"],
        {},
        "",
        "is not the checkout's HEAD",
        "--commit to build",
    ),
    (
        "3: --tag git does not have",
        _nothing,
        ["release", "--dry-run", "--tag", "v9.9.9"],
        {},
        "",
        "--tag names tag 'v9.9.9', but that tag does not exist in git",
        "pass --commit",
    ),
    (
        "3: a CI commit that is not the checkout names no bypass",
        _nothing,
        ["version"],
        {**TRAVIS_MAIN, "TRAVIS_COMMIT": "0123abc" * 5 + "01234"},
        "",
        "TRAVIS_COMMIT says commit 0123abc0123a, but the checkout is at",
        "--commit",
    ),
    pytest.param(
        "4: an app folder inside another repository",
        _inside_another_checkout,
        ["release", "--dry-run"],
        {},
        "",
        "is not a git checkout of its own: it is inside the checkout",
        None,
        marks=REAL_CLI,
    ),
    (
        "7: a release tag too long for Docker",
        _long_release_tag,
        ["build", "--dry-run"],
        {},
        "",
        "would be the Docker tag of 136 characters; Docker allows at most 128",
        None,
    ),
    (
        "7: a plain git tag too long for Docker",
        _long_plain_tag,
        ["version"],
        {},
        "",
        "Docker allows at most 128",
        None,
    ),
    pytest.param(
        "16: a checkout owned by another user",
        _owned_by_another_user,
        ["version"],
        {},
        "",
        "it is owned by another user (git's safe.directory check) (fix: if you trust it: git "
        "config --global --add safe.directory",
        "no commits",
        marks=[AS_ROOT, REAL_CLI],
    ),
    (
        "16: a bare repository",
        _bare_clone,
        ["version"],
        {},
        "",
        "is a bare git repository: it has no working tree to build",
        "fsck",
    ),
    (
        "16: a login in a registry address is never echoed",
        _nothing,
        ["release", "--dry-run"],
        {"INVOKE_BUILDTOOLS_RELEASE_REGISTRIES": "https://bob:s3cr3tpw@reg.example.org"},
        "",
        "has 'https://***@reg.example.org', a registry address with a login in it",
        "s3cr3tpw",
    ),
    (
        "16: an extra tag with no letter names its key",
        _nothing,
        ["version"],
        {"INVOKE_BUILDTOOLS_TAGS_EXTRA": "main=-"},
        "",
        "config key buildtools.tags.extra gives branch 'main' the tag '-'",
        None,
    ),
    (
        "16: a CI tag that exists elsewhere is not told to be pushed",
        _tag_elsewhere,
        ["version"],
        {"TRAVIS": "true", "TRAVIS_TAG": "v1.0.0", "TRAVIS_BRANCH": "v1.0.0"},
        "",
        "TRAVIS_TAG names tag 'v1.0.0', but that tag points at",
        "push the tag",
    ),
    (
        "17: a registry port out of range",
        _nothing,
        ["release", "--dry-run"],
        {"INVOKE_BUILDTOOLS_RELEASE_REGISTRIES": "localhost:99999"},
        "",
        "whose port '99999' is not 1 to 65535",
        "unreachable",
    ),
    (
        "17: a release branch glob no branch can match",
        _nothing,
        ["build", "--dry-run"],
        {"INVOKE_BUILDTOOLS_RELEASE_BRANCHES": "main feature"},
        "",
        "release.branches has 'main feature', which no git branch name can match",
        None,
    ),
    (
        "17: a build arg name Docker refuses",
        _nothing,
        ["build", "--dry-run"],
        {"INVOKE_BUILDTOOLS_APP_BUILD_ARGS": "1BAD=x"},
        "",
        "buildtools.app.build_args has '1BAD', which is not a build arg name",
        None,
    ),
    (
        "17: a space in smoke.path",
        _nothing,
        ["build", "--dry-run"],
        {"INVOKE_BUILDTOOLS_SMOKE_PATH": "/a b"},
        "",
        "buildtools.smoke.path = '/a b' is not a URL path",
        None,
    ),
    (
        "17: a build context that is not there, in a dry run",
        _nothing,
        ["build", "--dry-run", "--context", "/nonexistent"],
        {},
        "",
        "--context /nonexistent is not a folder",
        None,
    ),
    (
        "17: a secret missing from the environment, before the build",
        _nothing,
        ["ci"],
        {"INVOKE_BUILDTOOLS_SMOKE_ENV": "LBT_UNSET_SECRET_KEY"},
        "",
        "buildtools.smoke.env takes LBT_UNSET_SECRET_KEY from the environment, but it is not set",
        None,
    ),
    (
        "17: a service key in error is named by its own path",
        _nothing,
        ["version"],
        {},
        "  smoke:\n    services:\n      db:\n        image: [a, b]\n",
        "config key buildtools.smoke.services.db.image = ['a', 'b'] is not a single value",
        None,
    ),
    (
        "18: Travis and GitHub at once",
        _nothing,
        ["version"],
        {**TRAVIS_MAIN, "GITHUB_ACTIONS": "true", "GITHUB_REF": "refs/heads/main"},
        "",
        "two CI services run this build: TRAVIS='true' and GITHUB_ACTIONS='true'",
        None,
    ),
    (
        "18: a tag build that is also a pull request",
        _nothing,
        ["version"],
        {"TRAVIS": "true", "TRAVIS_TAG": "v1.0.0", "TRAVIS_PULL_REQUEST": "5"},
        "",
        "TRAVIS_TAG='v1.0.0' and TRAVIS_PULL_REQUEST=5 both set",
        None,
    ),
]


def _row_id(row: object) -> str:
    return str((row.values if hasattr(row, "values") else row)[0])


@pytest.mark.parametrize(
    ("case", "setup", "args", "env", "extra", "expected", "forbidden"),
    INTEGRITY_FAILURES,
    ids=[_row_id(row) for row in INTEGRITY_FAILURES],
)
def test_integrity_failures_are_one_line_and_change_nothing(
    app: App,
    case: str,
    setup,
    args: list[str],
    env: dict[str, str],
    extra: str,
    expected: str,
    forbidden: str | None,
    closed_port: int,
) -> None:
    given = setup(app)
    cwd = Path(given.pop("CWD", app.path))
    old = given.pop("OLD", "")
    args = [arg.replace("{OLD}", old) for arg in args]
    (app.path / "invoke.yaml").write_text(app_yaml(app.name, extra))
    before = _git_state(app.repo)
    closed = f"127.0.0.1:{closed_port}"
    full_env = {
        **app.env,
        **NO_ENGINE,
        "INVOKE_BUILDTOOLS_RELEASE_REGISTRIES": closed,
        **given,
        **env,
    }
    done = app.invoke(*args, env=full_env, cwd=cwd)
    line = one_error(done)
    assert expected in line, line
    if forbidden:
        assert forbidden not in done.stdout + done.stderr, line
    assert _git_state(app.repo) == before


# A name that would pose as another kind of tag gets a prefix saying its kind, before anything
# is built: (case, set-up git commands, environment, invoke.yaml extra, expected image tags
# with {sha}, a tag that must not be among them).
POSING_NAMES = [
    (
        "2: a git tag named latest on a feature branch",
        [["checkout", "-q", "-b", "feature/x"], ["tag", "latest"]],
        {},
        "",
        ["tag-latest", "sha-{sha}"],
        "latest",
    ),
    (
        "2: a git tag named 1.2",
        [["tag", "1.2"]],
        {},
        "",
        ["tag-1.2", "sha-{sha}"],
        "1.2",
    ),
    (
        "2: a git tag named like the release branch",
        [["tag", "main"]],
        {},
        "",
        ["tag-main", "sha-{sha}"],
        "main",
    ),
    (
        "2: a branch named edge, every branch released",
        [["checkout", "-q", "-b", "edge"]],
        {"INVOKE_BUILDTOOLS_RELEASE_BRANCHES": "*"},
        "",
        ["sha-{sha}", "branch-edge"],
        "edge",
    ),
    (
        "2: a branch named like a PR tag",
        [["checkout", "-q", "-b", "pr-5"]],
        {"INVOKE_BUILDTOOLS_RELEASE_BRANCHES": "*"},
        "",
        ["sha-{sha}", "branch-pr-5"],
        "pr-5",
    ),
    (
        "2: a branch named like a stage cache",
        [["checkout", "-q", "-b", "cache-app-master"]],
        {"INVOKE_BUILDTOOLS_RELEASE_BRANCHES": "*"},
        "",
        ["sha-{sha}", "branch-cache-app-master"],
        "cache-app-master",
    ),
    (
        "7: a 120-character branch",
        [["checkout", "-q", "-b", "feature/" + "c" * 120]],
        {},
        "",
        None,
        None,
    ),
    (
        "18: a non-ASCII branch",
        [["checkout", "-q", "-b", "\u0444\u0438\u0447\u0430"]],
        {},
        "",
        None,
        None,
    ),
    (
        "18: a Docker Hub branch named like a version, git has other tags",
        [["tag", "v1.0.0", "HEAD"], ["commit", "-q", "--allow-empty", "-m", "next"]],
        {"SOURCE_BRANCH": "1.2.0", "SOURCE_COMMIT": "{head}"},
        "",
        ["sha-{sha}", "branch-1.2.0"],
        "1.2.0",
    ),
]


@pytest.mark.parametrize(
    ("case", "commands", "env", "extra", "expected", "never"),
    POSING_NAMES,
    ids=[_row_id(row) for row in POSING_NAMES],
)
def test_names_posing_as_another_kind_get_a_prefix_before_anything_is_built(
    app: App,
    case: str,
    commands: list[list[str]],
    env: dict[str, str],
    extra: str,
    expected: list[str] | None,
    never: str | None,
) -> None:
    for command in commands:
        app.repo.git(*command)
    head = app.repo.head()
    env = {key: value.replace("{head}", head) for key, value in env.items()}
    done = app.invoke(
        "build", "--dry-run", "--json", env={**NO_ENGINE, **env}, yaml=app_yaml(app.name, extra)
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    plans = json.loads(done.stdout)
    app_plan = next(plan for plan in plans if plan["name"] == "app")
    app_tags = [ref.rpartition(":")[2] for ref in app_plan["tags"]]
    assert all(tags.VALID_TAG.match(tag) and len(tag) <= 128 for tag in app_tags), app_tags
    if expected is not None:
        assert app_tags == [tag.format(sha=head[:7]) for tag in expected]
    if never is not None:
        assert never not in app_tags


@REAL_CLI
def test_a_tag_missing_from_a_shallow_clone_keeps_the_clones_depth(app: App) -> None:
    """8: a `--depth 10 --no-tags` clone (as CI makes) stays 10 deep after the tag is fetched."""
    for n in range(15):
        app.repo.commit(f"work {n}")
    app.repo.tag("v1.1.0")
    dest = app.path.parent / "ci-clone"
    app.repo.git("clone", "-q", "--depth=10", "--no-tags", f"file://{app.path}", str(dest))
    clone = GitRepo(dest, dict(app.repo.env))
    assert clone.git("rev-list", "--count", "HEAD") == "10"
    env = {"TRAVIS": "true", "TRAVIS_TAG": "v1.1.0", "TRAVIS_BRANCH": "v1.1.0"}
    done = subprocess.run(
        [str(INVOKE), "version", "--format", "json"],
        cwd=dest,
        env={**app.env, **NO_ENGINE, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["version"] == "1.1.0"
    assert clone.git("rev-list", "--count", "HEAD") == "10"


def in_bash(app: App, script: str) -> subprocess.CompletedProcess[str]:
    """``script`` run by bash in the app, with no engine: what a shell's pipes and closed
    descriptors do to the console script."""
    return subprocess.run(
        ["bash", "-c", script],
        cwd=app.path,
        env={**app.env, **NO_ENGINE},
        capture_output=True,
        text=True,
        timeout=300,
    )


@REAL_CLI
def test_a_closed_stdout_ends_the_task_quietly(app: App) -> None:
    """15: `invoke build --dry-run --json | head -1`: no BrokenPipeError traceback."""
    done = in_bash(app, f"{INVOKE} build --dry-run --json | head -1; echo rc=${{PIPESTATUS[0]}}")
    assert done.stdout.splitlines() == ["[", "rc=0"], done.stdout
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr


@REAL_CLI
@pytest.mark.parametrize("closed", [">&-", "2>&-"])
def test_a_closed_stdout_or_stderr_is_no_traceback_and_no_stray_line(app: App, closed: str) -> None:
    """`invoke … >&-` crashed flushing a stdout Python had set to None; with `2>&-`, warnings
    went to stdout, into the JSON a script reads. A dirty tree gives the build a warning."""
    app.repo.write("notes.txt", "uncommitted\n")
    done = in_bash(app, f"{INVOKE} build --dry-run --json {closed}; echo rc=$?")
    assert done.stdout.endswith("rc=0\n"), done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    if closed == "2>&-":
        plans = json.loads(done.stdout.removesuffix("rc=0\n"))
        assert [plan["name"] for plan in plans] == ["app", "nginx"]
        assert "warning" not in done.stdout.split("rc=0")[0].split("]")[-1]


def test_a_mistyped_invoke_buildtools_variable_is_a_warning_naming_the_key(app: App) -> None:
    """17: invoke ignores it silently; the release would go to the default registry."""
    done = app.invoke("version", env={"INVOKE_BUILDTOOLS_RELEASE_REGISTRY": "ghcr.io"})
    assert done.returncode == 0, done.stderr
    assert (
        "warning: environment variable INVOKE_BUILDTOOLS_RELEASE_REGISTRY sets no config key "
        "and is ignored (did you mean INVOKE_BUILDTOOLS_RELEASE_REGISTRIES?)"
    ) in done.stderr


# 2, against a real registry: a name posing as another kind never moves what is there.
@pytest.mark.docker
@pytest.mark.registry
@pytest.mark.parametrize(
    ("commands", "branches", "pushed"),
    [
        ([["checkout", "-q", "-b", "feature/x"], ["tag", "latest"]], "master", "tag-latest"),
        ([["checkout", "-q", "-b", "edge"]], "*", "branch-edge"),
        ([["checkout", "-q", "-b", "1.2"]], "*", "branch-1.2"),
    ],
    ids=["git tag latest on a feature branch", "branch edge", "branch 1.2"],
)
def test_a_release_of_a_posing_name_leaves_the_registrys_tags_as_they_were(
    docker_client: docker.DockerClient,
    fast_registry: testbed.LocalRegistry,
    repo: GitRepo,
    make_image,
    commands: list[list[str]],
    branches: str,
    pushed: str,
) -> None:
    from buildtools.facts import Run
    from tests.fixtures.registry import login_env, repos, served_digest

    app_repo, nginx_repo = repos()
    auth = {"username": fast_registry.username, "password": fast_registry.password}
    for repository in (app_repo, nginx_repo):  # an earlier release and master's edge
        for name in ("latest", "1.2", "1", "edge", "master"):
            remote = f"{fast_registry.host}/{repository}"
            make_image(f"earlier {name}", tag=f"{remote}:{name}")
            docker_client.images.push(remote, tag=name, auth_config=auth)
    before = {
        r: {t: served_digest(fast_registry, r, t) for t in fast_registry.tags(r)}
        for r in (app_repo, nginx_repo)
    }

    for command in commands:
        repo.git(*command)
    section = config.merged(
        {
            "app": {"repository": app_repo},
            "nginx": {"repository": nginx_repo},
            "release": {"branches": branches},
        }
    )
    settings = dataclasses.replace(config.load(section, ROOT), repo=repo.path)
    meta = Run.read(settings, {}).metadata()
    assert pushed in meta.tag_names
    for repository in (app_repo, nginx_repo):  # what `invoke build` made (stand-ins, its labels)
        image_id = make_image(repository, labels=dict(meta.labels))
        for ref in meta.local_refs(repository):
            docker_client.images.get(image_id).tag(ref)

    base = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    env = {
        **base,
        "INVOKE_BUILDTOOLS_REPO": str(repo.path),
        "INVOKE_BUILDTOOLS_APP_REPOSITORY": app_repo,
        "INVOKE_BUILDTOOLS_NGINX_REPOSITORY": nginx_repo,
        "INVOKE_BUILDTOOLS_RELEASE_REGISTRIES": fast_registry.host,
        "INVOKE_BUILDTOOLS_RELEASE_BRANCHES": branches,
        **login_env(fast_registry.host, fast_registry.username, fast_registry.password),
    }
    done = subprocess.run(
        [str(INVOKE), "release"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )

    assert done.returncode == 0, done.stderr
    for repository in (app_repo, nginx_repo):
        after = {
            t: served_digest(fast_registry, repository, t) for t in fast_registry.tags(repository)
        }
        assert {t: after[t] for t in before[repository]} == before[repository]
        assert set(after) - set(before[repository]) == {pushed, meta.sha_tag}
    for repository in (app_repo, nginx_repo):
        for ref in meta.local_refs(repository):
            discard(docker_client, ref)


def test_a_mistyped_service_key_is_a_warning_naming_the_service_key(app: App) -> None:
    """17: `redy:` under a smoke service kept no readiness check, without a word."""
    extra = "  smoke:\n    services:\n      db:\n        image: mariadb:11.2\n        redy: x\n"
    done = app.invoke("version", yaml=app_yaml(app.name, extra))
    assert done.returncode == 0, done.stderr
    assert (
        "warning: unknown config key buildtools.smoke.services.db.redy is ignored "
        "(did you mean buildtools.smoke.services.db.ready?)"
    ) in done.stderr


@pytest.mark.docker
@REAL_CLI
def test_a_missing_sidecar_base_image_is_found_before_the_app_is_built(
    app: App, docker_client: docker.DockerClient, base_image: str, closed_port: int
) -> None:
    """17: found after the app image was built, it left one image new and the other not."""
    missing = f"127.0.0.1:{closed_port}/lbt-missing/base:1"  # nothing answers there
    env = {
        "INVOKE_BUILDTOOLS_NGINX_BASE_IMAGE": missing,
        "INVOKE_BUILDTOOLS_CACHE_PULL": "false",
        "INVOKE_BUILDTOOLS_RELEASE_REGISTRIES": f"127.0.0.1:{closed_port}",
    }
    done = app.invoke("build", env=env)
    line = one_error(done)
    assert "[app] step" not in done.stderr, done.stderr  # no step of the app was built
    assert f"base image {missing} is not present locally and cannot be pulled" in line
    assert "buildtools.nginx.base_image" in line
    assert docker_client.images.list(name=f"{app.name}/app") == []
    assert "app image" not in line
