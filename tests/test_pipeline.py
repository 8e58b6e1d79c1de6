"""What `invoke ci` decides for each kind of build (pure), and that it plans once, before the
first build step (against a real registry and engine; the e2e tests run whole CI jobs)."""

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
from buildtools import config, pipeline, progress, pushplan, release, targets
from buildtools.buildinfo import BuildInfo
from buildtools.config import ReleaseConfig
from buildtools.decision import check_pull_request_release, check_releasable, decide
from buildtools.errors import BuildToolsError
from buildtools.facts import Run
from buildtools.pipeline import describe
from tests.fixtures.git import GitRepo
from tests.fixtures.held_images import discard, local_tags
from tests.fixtures.registry import login_env, repos, served_digest

ROOT = Path(__file__).resolve().parents[1]
INVOKE = ROOT / ".venv" / "bin" / "invoke"

SHA = "0123abc4567890def0123abc4567890def012345"
CONFIG = ReleaseConfig(
    registries=(), branches=("master", "main"), allow_pull_requests=False, retries=1,
    retry_base_delay=0.0,
)  # fmt: skip


def info(**fields) -> BuildInfo:
    return BuildInfo(version="0.0.0", commit=SHA, ci="travis", **fields)


@pytest.mark.parametrize(
    "fields, release, reason",
    [
        ({"tag": "v1.2.3"}, True, "tag v1.2.3"),
        ({"branch": "master"}, True, "release branch master"),
        ({"branch": "feature/x"}, False, "branch feature/x is not released"),
        ({}, False, "a build with no branch or tag is not released"),
        ({"branch": "feature/x", "pull_request": 7}, False, "pull requests are never pushed"),
        # A PR into master is still a PR: its branch fields must not make it a release.
        ({"branch": "master", "pull_request": 7}, False, "pull requests are never pushed"),
    ],
)
def test_decide(fields, release, reason):
    decision = decide(info(**fields), CONFIG)
    assert decision.release is release
    assert reason in decision.reason


def globs(*branches: str) -> ReleaseConfig:
    return ReleaseConfig(**{**CONFIG.__dict__, "branches": branches})


# (release.branches, branch, released, the reason contains)
GLOBS = [
    (("*",), "master", True, "release branch master (matches *)"),
    (("*",), "feature/deep/x", True, "release branch feature/deep/x (matches *)"),
    (("release/*",), "release/2.1", True, "release branch release/2.1 (matches release/*)"),
    (("release/*",), "release", False, "branch release is not released"),
    (("release/*",), "hotfix/release/2", False, "(release branches: release/*)"),
    (("master", "v?.x"), "v2.x", True, "(matches v?.x)"),
    (("master", "v?.x"), "v10.x", False, "branch v10.x is not released"),
    (("[mp]*",), "production", True, "(matches [mp]*)"),
    (("Master",), "master", False, "branch master is not released"),  # git names are exact
    (("master", "*"), "master", True, "release branch master"),
    ((), "master", False, "(release branches: none)"),
]


@pytest.mark.parametrize(("branches", "branch", "release", "reason"), GLOBS)
def test_release_branches_are_globs(branches, branch, release, reason):
    decision = decide(info(branch=branch), globs(*branches))
    assert decision.release is release
    assert reason in decision.reason


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"branch": "master", "pull_request": 7}, "pull requests are never pushed"),
        ({}, "a build with no branch or tag is not released"),
        ({"branch": "master", "dirty": True}, "but the working tree has uncommitted changes"),
    ],
    ids=["a pull request", "no branch", "a dirty tree"],
)
def test_star_still_refuses_what_is_never_released(fields, reason):
    decision = decide(info(**fields), globs("*"))
    assert decision.release is False
    assert reason in decision.reason


def test_a_refused_glob_branch_keeps_the_error_wording():
    error = decide(info(branch="feature/x"), globs("release/*")).error()
    assert str(error) == (
        "refusing to release branch 'feature/x': release branches are release/* (fix: release "
        "from one of them or a tag, or add it to buildtools.release.branches)"
    )


def test_pull_requests_release_only_when_configured():
    allowed = ReleaseConfig(**{**CONFIG.__dict__, "allow_pull_requests": True})
    assert decide(info(branch="feature/x", pull_request=7), allowed).release is True


def test_describe_names_the_ci_the_ref_and_the_commit():
    assert describe(info(tag="v1.2.3")) == "travis build of tag v1.2.3 at 0123abc"
    assert describe(info(pull_request=7)) == "travis build of pull request #7 at 0123abc"
    assert describe(info(branch="main")) == "travis build of branch main at 0123abc"
    assert describe(BuildInfo(version="0", commit=SHA)) == "no CI build of detached HEAD at 0123abc"


RELEASE = ReleaseConfig(
    registries=(),
    branches=("master", "main"),
    allow_pull_requests=False,
    retries=1,
    retry_base_delay=0.0,
)


@pytest.mark.parametrize(
    ("facts", "config", "refusal"),
    [
        ({"dirty": True, "tag": "v1.0.0"}, RELEASE, "uncommitted changes"),
        ({"pull_request": 7, "branch": "feature"}, RELEASE, "pull request #7"),
        ({"branch": "feature/x"}, RELEASE, "release branches are master, main"),
        ({}, RELEASE, "no branch or tag is known"),
        ({"branch": "master"}, RELEASE, None),
        ({"tag": "v1.0.0", "branch": None}, RELEASE, None),  # tag builds: always
        ({"tag": "v1.0.0", "branch": "feature/x"}, RELEASE, None),
        (
            {"pull_request": 7},
            ReleaseConfig((), ("master",), True, 1, 0.0),
            None,
        ),
    ],
)
def test_what_may_be_released(facts: dict, config: ReleaseConfig, refusal: str | None) -> None:
    values = {"dirty": False, "pull_request": None, "branch": None, "tag": None, **facts}
    info = BuildInfo(version="0.0.0", commit="0123abc4567890def0123abc4567890def012345", **values)
    if refusal is None:
        check_releasable(info, config)
    else:
        with pytest.raises(BuildToolsError, match=refusal):
            check_releasable(info, config)


def test_releasing_pull_requests_without_their_tags_is_refused_naming_the_key() -> None:
    """Issue 18.9: otherwise every PR build is built and tested, then has nothing to push."""
    allowed = ReleaseConfig(**{**CONFIG.__dict__, "allow_pull_requests": True})
    with pytest.raises(BuildToolsError) as failure:
        check_pull_request_release(allowed, pull_request_tags=False)
    assert "buildtools.tags.pull_requests" in str(failure.value)
    check_pull_request_release(allowed, pull_request_tags=True)
    check_pull_request_release(CONFIG, pull_request_tags=False)


# --- one plan before the first step: real git, real registry (htpasswd), real engine ---------


def example_settings(repo: GitRepo, registry_host: str) -> tuple[config.Settings, str, str]:
    """This project's invoke.yaml (the example app) for ``repo``'s commits, released to
    ``registry_host`` under fresh repositories."""
    app_repo, nginx_repo = repos()
    section = config.merged(yaml.safe_load((ROOT / "invoke.yaml").read_text())["buildtools"])
    section["repo"] = str(repo.path)
    section["app"]["repository"], section["nginx"]["repository"] = app_repo, nginx_repo
    section["release"]["registries"] = registry_host
    section["release"]["retry_base_delay"] = "0.01"
    return config.load(section, ROOT), app_repo, nginx_repo


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
    newer = [pushplan.ReleaseImage("app", app_repo, make_image("2.0.0"))]
    cfg = settings.release
    found = targets.configured(cfg, env)
    release.push_all(
        docker_client, newer, [("2.0.0", False), ("latest", True)], found,
        retry=targets.retry_policy(cfg),
    )  # fmt: skip
    latest_before = served_digest(fast_registry, app_repo, "latest")
    repo.tag("v1.4.9")
    try:
        result = pipeline.ci(
            settings, {**travis_tag(repo, "v1.4.9"), **env}, quiet=True, say=lambda _: None,
            smoke_test=False,
        )  # fmt: skip
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

    plan = pipeline.plan_ci(run, decision, progress.QuietReporter(), smoke_test=smoke)

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

    plan = pipeline.plan_ci(run, decide(run.info, settings.release), progress.QuietReporter(), True)

    assert plan.releases and plan.notes == ()
    assert [t.name for t in plan.targets] == [open_registry]
    assert plan.targets[0].credentials is None
