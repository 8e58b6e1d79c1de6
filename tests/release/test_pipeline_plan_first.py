"""`invoke ci` plans once, before the first build step: the tags a backport carries are the tags
it pushes, and a registry it cannot push to (or may push to without a login) is found before
anything is built. Real git, a real registry (htpasswd, or none), a real engine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import docker.errors
import pytest
import requests
import yaml

import testbed
from buildtools.config import schema
from buildtools.facts.read import Run
from buildtools.plan import push_order
from buildtools.plan.release_rule import decide
from buildtools.registry import targets
from buildtools.release import ci_steps, prepare, progress, publish
from buildtools.release.prepare import Options
from buildtools.release.steps import Session
from tests.fixtures.git import GitRepo
from tests.fixtures.held_images import discard, local_tags
from tests.fixtures.project import commit_example
from tests.fixtures.registry import login_env, repos, served_digest

ROOT = Path(__file__).resolve().parents[2]
INVOKE = ROOT / ".venv" / "bin" / "invoke"


def example_settings(repo: GitRepo, registry_host: str) -> tuple[schema.Settings, str, str]:
    """This project's invoke.yaml for ``repo``'s commits, the example app committed in it (a
    release builds the commit's files), released to ``registry_host`` under fresh
    repositories."""
    app_repo, nginx_repo = repos()
    section = schema.merged(yaml.safe_load((ROOT / "invoke.yaml").read_text())["buildtools"])
    section["repo"] = str(repo.path)
    section["app"]["context"] = str(commit_example(repo))
    section["app"]["repository"], section["nginx"]["repository"] = app_repo, nginx_repo
    section["release"]["registries"] = registry_host
    section["release"]["retry_base_delay"] = "0.01"
    return schema.load(section, ROOT), app_repo, nginx_repo


def quiet_session() -> Session:
    """The steps' session of `invoke ci --json`, saying nothing."""
    return Session(lambda _: None, progress.QuietReporter(), build_display=False)


def travis_tag(repo: GitRepo, tag: str) -> dict[str, str]:
    return {
        "TRAVIS": "true",
        "TRAVIS_TAG": tag,
        "TRAVIS_BRANCH": tag,
        "TRAVIS_COMMIT": repo.head(),
        "TRAVIS_PULL_REQUEST": "false",
    }


def remove_images(client: docker.DockerClient, *repositories: str) -> None:
    for _, ref in local_tags(client):
        if ref.startswith(tuple(f"{r}:" for r in repositories)):
            discard(client, ref)


@pytest.mark.docker
@pytest.mark.registry
def test_a_backport_built_by_ci_carries_exactly_the_tags_it_pushes(
    docker_client: docker.DockerClient,
    base_image: str,
    fast_registry: testbed.LocalRegistry,
    make_image: Callable[..., str],
    repo: GitRepo,
) -> None:
    """Issue 17: 2.0.0 is in the registry, git knows only v1.4.9 (as in a shallow clone): the
    image's version.yml names exactly the tags pushed, without ``latest``."""
    settings, app_repo, nginx_repo = example_settings(repo, fast_registry.host)
    env = login_env(fast_registry.host, fast_registry.username, fast_registry.password)
    newer = [push_order.ReleaseImage("app", app_repo, make_image("2.0.0"))]
    cfg = settings.release
    found = targets.configured(cfg, env)
    publish.push_all(
        docker_client, newer, [("2.0.0", False), ("latest", True)], found,
        retry=targets.retry_policy(cfg),
    )  # fmt: skip
    latest_before = served_digest(fast_registry, app_repo, "latest")
    repo.tag("v1.4.9")
    try:
        result = ci_steps.ci(
            settings, {**travis_tag(repo, "v1.4.9"), **env}, Options(smoke_test=False),
            quiet_session(), quiet=True,
        ).as_dict()  # fmt: skip
        baked = docker_client.containers.run(
            f"{app_repo}:1.4.9", ["cat", "/lara/config/version.yml"], remove=True
        )
    finally:
        remove_images(docker_client, app_repo, nginx_repo)

    pushed = [p["tag"] for p in result["released"]["pushes"] if p["image"] == "app"]
    assert yaml.safe_load(baked)["image_tags"] == pushed
    assert pushed == ["1.4.9", f"sha-{repo.head()[:7]}", "1.4", "1"]
    assert served_digest(fast_registry, app_repo, "latest") == latest_before


def invoke_ci(repo: GitRepo, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    return subprocess.run(
        [str(INVOKE), "ci"],
        cwd=ROOT,
        env={**base, "INVOKE_BUILDTOOLS_REPO": str(repo.path), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.docker
@pytest.mark.registry
@pytest.mark.parametrize(
    ("credentials", "expected"),
    [
        ("wrong", "rejected the login"),
        ("none", "tag v6.0.0 cannot be released: registry"),
    ],
    ids=["a wrong password", "no credentials on a tag build"],
)
def test_ci_that_cannot_push_fails_in_seconds_before_any_build_step(
    docker_client: docker.DockerClient,
    fast_registry: testbed.LocalRegistry,
    repo: GitRepo,
    credentials: str,
    expected: str,
) -> None:
    """Issue 17 (credentials before the build) and 18.5 (a tag build that cannot push)."""
    repo.tag("v6.0.0")
    app_repo, nginx_repo = repos()
    wrong = "wrong-" + secrets.token_hex(8)
    env = {
        **travis_tag(repo, "v6.0.0"),
        "INVOKE_BUILDTOOLS_APP_REPOSITORY": app_repo,
        "INVOKE_BUILDTOOLS_NGINX_REPOSITORY": nginx_repo,
        "INVOKE_BUILDTOOLS_RELEASE_REGISTRIES": fast_registry.host,
    }
    if credentials == "wrong":
        env.update(login_env(fast_registry.host, fast_registry.username, wrong))
    started = time.monotonic()

    done = invoke_ci(repo, env)

    assert time.monotonic() - started < 20
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and expected in errors[0] and wrong not in errors[0]
    assert done.stderr.strip().splitlines()[-1] == errors[0]
    assert "step" not in done.stdout + done.stderr  # no build step printed
    assert [t for _, t in local_tags(docker_client) if app_repo in t] == []
    assert fast_registry.tags(app_repo) == []


@pytest.mark.registry
@pytest.mark.parametrize(
    ("ci_env", "smoke", "note"),
    [
        (
            {"TRAVIS_BRANCH": "master", "TRAVIS_PULL_REQUEST": "false"},
            False,
            "NOT RELEASED: release branch master is not pushed: registry",
        ),
        (
            {"TRAVIS_BRANCH": "master", "TRAVIS_PULL_REQUEST": "9",
             "TRAVIS_PULL_REQUEST_BRANCH": "feature/x"},
            True,
            "asks for a login and this build has no credentials for it (normal for pull "
            "requests from forks); the images are built and tested, not pushed",
        ),
    ],
    ids=["a release branch", "a fork's pull request"],
)  # fmt: skip
def test_a_release_build_without_credentials_says_so_before_building(
    fast_registry: testbed.LocalRegistry,
    repo: GitRepo,
    ci_env: dict[str, str],
    smoke: bool,
    note: str,
) -> None:
    """Issue 18.5: no credentials means no push only where the registry asks for a login,
    and a release branch that cannot push says so; --no-smoke never claims "tested"."""
    settings, _, _ = example_settings(repo, fast_registry.host)
    settings = dataclasses.replace(
        settings,
        pull_request_tags=True,
        release=dataclasses.replace(settings.release, allow_pull_requests=True),
    )
    run = Run.read(settings, {"TRAVIS": "true", "TRAVIS_COMMIT": repo.head(), **ci_env})
    decision = decide(run.info, settings.release)
    assert decision.release

    plan = prepare.for_ci(run, decision, Options(smoke_test=smoke), quiet_session(), "")

    assert not plan.releases and plan.targets == ()
    assert note in plan.notes[0] and (smoke or "tested" not in plan.notes[0])


@pytest.fixture
def open_registry(tmp_path: Path) -> Iterator[str]:
    """A real docker-registry that asks for no login (as a private network's may), its host."""
    if not shutil.which("docker-registry"):
        pytest.skip("docker-registry is not installed")
    port = testbed.free_port()
    config_file = tmp_path / "config.yml"
    config_file.write_text(
        yaml.safe_dump(
            {
                "version": 0.1,
                "log": {"level": "warn"},
                "storage": {"filesystem": {"rootdirectory": str(tmp_path / "data")}},
                "http": {"addr": f"127.0.0.1:{port}", "secret": secrets.token_hex(16)},
            }
        )
    )
    process = subprocess.Popen(
        ["docker-registry", "serve", str(config_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        for _ in range(100):
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"http://127.0.0.1:{port}/v2/", timeout=2).status_code == 200:
                    break
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


@pytest.mark.registry
def test_a_registry_that_asks_for_no_login_is_released_to_without_credentials(
    open_registry: str, repo: GitRepo
) -> None:
    """Issue 18.5: `invoke ci` on a release branch releases to an open registry, as
    `invoke release` does; only a registry that asks for a login needs credentials."""
    settings, _, _ = example_settings(repo, open_registry)
    env = {"TRAVIS": "true", "TRAVIS_COMMIT": repo.head(), "TRAVIS_BRANCH": "master",
           "TRAVIS_PULL_REQUEST": "false"}  # fmt: skip
    run = Run.read(settings, env)

    decision = decide(run.info, settings.release)
    plan = prepare.for_ci(run, decision, Options(), quiet_session(), "FROM scratch\n")

    assert plan.releases and plan.notes == ()
    assert [t.name for t in plan.targets] == [open_registry]
    assert plan.targets[0].credentials is None
