"""Bad input and faults, as a hostile new user would cause them: every case runs the real task
in an app repository of its own and must end in exactly one line (no traceback) with a
non-zero exit, or go on with a warning where the input is only doubtful, and change nothing."""

from __future__ import annotations

import dataclasses
import os
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from buildtools import config, facts, tags, testbed, validate
from buildtools.errors import BuildToolsError
from tests.fixtures.git import GitRepo, git_env, init_repo

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


@dataclass
class App:
    """An app repository using the tasks, with its own image repositories."""

    repo: GitRepo
    env: dict[str, str]
    name: str = field(default_factory=lambda: f"lbtbad{secrets.token_hex(3)}")

    @property
    def path(self) -> Path:
        return self.repo.path

    def invoke(self, *args: str, env: dict[str, str] | None = None, yaml: str | None = None):
        if yaml is not None:
            (self.path / "invoke.yaml").write_text(yaml)
        return subprocess.run(
            [str(INVOKE), *args],
            cwd=self.path,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=300,
        )


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
def app(tmp_path: Path) -> App:
    env = git_env(tmp_path / "home")
    repo = init_repo(tmp_path / "app", env, branch="main")
    repo.write("tasks.py", "from buildtools.tasks import ns  # noqa: F401\n")
    repo.write("Dockerfile", DOCKERFILE)
    repo.write("Dockerfile.noblock", NO_BLOCK)
    repo.write("Dockerfile.early", EARLY_BLOCK)
    made = App(repo, {**env, "PATH": os.environ["PATH"]})
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
        "retries that are not a number",
        ["version"],
        {"INVOKE_BUILDTOOLS_RELEASE_RETRIES": "lots"},
        "",
        "buildtools.release.retries = 'lots' is not a whole number",
    ),
    (
        "negative retries",
        ["version"],
        {},
        "  release:\n    retries: -1\n",
        "buildtools.release.retries = -1 is not a whole number of at least 0",
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
    [case[1:] for case in FAILURES],
    ids=[case[0] for case in FAILURES],
)
def test_bad_input_is_one_line_and_a_non_zero_exit(
    app: App, args: list[str], env: dict[str, str], extra: str, expected: str
) -> None:
    closed = f"127.0.0.1:{testbed.free_port()}"  # any registry contact would fail otherwise
    env = {"INVOKE_BUILDTOOLS_RELEASE_REGISTRIES": closed, **env}
    done = app.invoke(*args, env=env, yaml=app_yaml(app.name, extra))
    line = one_error(done)
    assert expected in line and "unreachable" not in line


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("buildtools:\n  app: [unclosed\n", "is not valid YAML"),
        ("buildtools:\n\tapp:\n    context: .\n", "never tabs"),
    ],
    ids=["invalid YAML", "tab indent"],
)
def test_invoke_yaml_that_is_not_yaml_is_one_line(app: App, text: str, expected: str) -> None:
    line = one_error(app.invoke("version", yaml=text))
    assert "invoke.yaml, line" in line and expected in line


@pytest.mark.parametrize("text", ["", "buildtools:\n", None], ids=["empty", "no keys", "missing"])
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
            "  typo: 1\n  nginx:\n    upstreem: x:1\n",
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
    while "sleep 30" not in seen and time.monotonic() < deadline:
        time.sleep(0.5)
        seen = " ".join(
            " ".join(c.attrs["Config"].get("Cmd") or []) for c in docker_client.containers.list()
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


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(env=st.dictionaries(st.sampled_from(CI_VARIABLES), TEXT, max_size=6))
def test_any_ci_environment_is_a_build_or_one_line(one_commit: GitRepo, env: dict) -> None:
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
