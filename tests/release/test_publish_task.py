"""`invoke release` as CI runs it (the console script: the password never in a command line or
the output), and a release that finishes an interrupted one but never adopts an image that is
not this build's."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import docker
import docker.errors
import pytest

import testbed
from buildtools.errors import BuildToolsError
from buildtools.facts.buildinfo import BuildInfo
from buildtools.plan import tags
from buildtools.plan.build_record import COMMIT, WORKTREE, BuildRecord
from buildtools.plan.metadata import Metadata
from buildtools.registry.targets import configured
from buildtools.release import identity, publish
from tests.fixtures.git import GitRepo
from tests.fixtures.project import commit_example
from tests.fixtures.publish import (
    AppRelease,
    build_labels,
    do_release,
    record_stand_ins,
    run_release,
)
from tests.fixtures.registry import (
    login_env,
    release_config,
    repos,
    served_digest,
)

ROOT = Path(__file__).resolve().parents[2]
INVOKE = ROOT / ".venv" / "bin" / "invoke"

pytestmark = [pytest.mark.docker, pytest.mark.registry]


@pytest.fixture
def app(fast_registry: testbed.LocalRegistry, make_image: Callable[..., str]) -> AppRelease:
    return AppRelease(repos()[0], fast_registry, make_image)


# --- the task, as CI runs it -----------------------------------------------------------------


def _scan_cmdlines(secret: bytes, stop: threading.Event, hits: list[str]) -> None:
    while not stop.is_set():
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if secret in cmdline:
                hits.append(f"{proc.name}: {cmdline[:200]!r}")
        time.sleep(0.01)


def run_release_task(
    repo: Path, env: dict[str, str], *args: str, secret: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """``invoke release`` in a subprocess while every process's command line is watched."""
    base = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    stop, hits = threading.Event(), []
    watcher = threading.Thread(target=_scan_cmdlines, args=(secret.encode(), stop, hits))
    watcher.start()
    try:
        done = subprocess.run(
            [str(INVOKE), "release", *args],
            cwd=ROOT,
            env={**base, "INVOKE_BUILDTOOLS_REPO": str(repo), **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        stop.set()
        watcher.join()
    return done, hits


def test_release_task_on_a_tag_build_never_shows_the_password(
    docker_client: docker.DockerClient,
    fast_registry: testbed.LocalRegistry,
    repo: GitRepo,
    make_image: Callable[..., str],
) -> None:
    context = commit_example(repo)  # a release builds the commit's own files
    repo.tag("v3.1.4")
    commit = repo.head()
    app_repo, nginx_repo = repos()
    # The images `invoke build` would have made for this commit (tiny stand-ins, same labels,
    # and the build records it leaves).
    label = build_labels(commit, "3.1.4")
    app_id = make_image("app", labels=label, tag=f"{app_repo}:3.1.4")
    nginx_id = make_image("nginx", labels=label, tag=f"{nginx_repo}:3.1.4")
    record_stand_ins(repo.path, app_repo, nginx_repo, {"app": app_id, "nginx": nginx_id}, {})
    password = fast_registry.password
    env = {
        "INVOKE_BUILDTOOLS_APP_CONTEXT": str(context),
        "INVOKE_BUILDTOOLS_APP_REPOSITORY": app_repo,
        "INVOKE_BUILDTOOLS_NGINX_REPOSITORY": nginx_repo,
        "INVOKE_BUILDTOOLS_RELEASE_REGISTRIES": fast_registry.host,
        "INVOKE_BUILDTOOLS_RELEASE_RETRY_BASE_DELAY": "0.01",
        **login_env(fast_registry.host, fast_registry.username, password),
    }

    text_run, text_hits = run_release_task(repo.path, env, secret=password)
    json_run, json_hits = run_release_task(repo.path, env, "--json", secret=password)

    assert text_run.returncode == 0, text_run.stderr
    assert json_run.returncode == 0, json_run.stderr
    for output in (text_run.stdout, text_run.stderr, json_run.stdout, json_run.stderr):
        assert password not in output
    assert text_hits == [] and json_hits == []
    for image_id in (app_id, nginx_id):
        assert password not in json.dumps(docker_client.api.inspect_image(image_id))
    # What the user sees: progress on stderr, one line per tag with its digest on stdout.
    assert f"pushing {fast_registry.host}/{app_repo}:3.1.4" in text_run.stderr
    sha = f"sha-{commit[:7]}"
    for repository in (app_repo, nginx_repo):
        assert fast_registry.tags(repository) == ["3", "3.1", "3.1.4", "latest", sha]
        for name in ("3.1.4", sha, "3.1", "3", "latest"):
            digest = served_digest(fast_registry, repository, name)
            assert f"{repository}:{name}" in text_run.stdout and digest in text_run.stdout
    # The second run (--json) found everything in place: nothing pushed, quiet stderr. Its
    # sha- images already say all the release writes: they are the release as they are (no
    # rewrite, nothing sent), and every release tag (all but sha-) is unchanged.
    data = json.loads(json_run.stdout)
    assert data["version"] == "3.1.4" and data["pushed"] == 0 and data["unchanged"] == 8
    assert {p["tag"] for p in data["pushes"]} == {"3.1.4", "3.1", "3", "latest"}
    for promoted in data["promoted"]:
        assert promoted["digest"] == promoted["source_digest"] and promoted["bytes_sent"] == 0
    assert "pushing" not in json_run.stderr
    for push in data["pushes"]:
        assert push["digest"] == served_digest(fast_registry, push["repository"], push["tag"])


def test_release_task_wrong_password_error_shows_neither_password(
    fast_registry: testbed.LocalRegistry, repo: GitRepo
) -> None:
    repo.tag("v3.2.0")
    wrong = "wrong-" + secrets.token_urlsafe(12)
    app_repo, nginx_repo = repos()
    env = {
        "INVOKE_BUILDTOOLS_APP_REPOSITORY": app_repo,
        "INVOKE_BUILDTOOLS_NGINX_REPOSITORY": nginx_repo,
        "INVOKE_BUILDTOOLS_RELEASE_REGISTRIES": fast_registry.host,
        **login_env(fast_registry.host, fast_registry.username, wrong),
    }

    done, hits = run_release_task(repo.path, env, "--json", secret=wrong)

    assert done.returncode == 1
    assert done.stderr.startswith("error: registry") and "rejected the login" in done.stderr
    assert wrong not in done.stdout + done.stderr and hits == []
    assert fast_registry.tags(app_repo) == []


@pytest.mark.parametrize(
    ("setup", "env", "reason"),
    [
        ("dirty", {}, "uncommitted changes"),
        ("feature", {}, "refusing to release branch 'feature/x'"),
        (
            "pr",
            {
                "TRAVIS": "true",
                "TRAVIS_BRANCH": "master",
                "TRAVIS_PULL_REQUEST": "12",
                "TRAVIS_PULL_REQUEST_BRANCH": "feature/x",
            },
            "refusing to release pull request #12",
        ),
    ],
)
def test_release_task_refuses_unreleasable_builds_before_touching_a_registry(
    repo: GitRepo, setup: str, env: dict[str, str], reason: str, closed_port: int
) -> None:
    if setup == "dirty":
        repo.write("history.txt", "uncommitted\n")
    elif setup == "feature":
        repo.branch("feature/x")
    closed = f"127.0.0.1:{closed_port}"  # a registry contact would fail differently
    env = {**env, "INVOKE_BUILDTOOLS_RELEASE_REGISTRIES": closed}

    done, _ = run_release_task(repo.path, env, "--dry-run", secret="unused-secret")

    assert done.returncode == 1
    assert reason in done.stderr and "unreachable" not in done.stderr


# --- an interrupted release, and images that are not this build's ---------------------------


def test_an_interrupted_release_of_this_commit_finishes_without_force(
    docker_client: docker.DockerClient, app: AppRelease
) -> None:
    """The first run pushed only 2.3.0, then its local image was lost; the rebuild of the same
    commit has another image ID. The re-run finishes from the registry's image; another
    commit's image is still refused."""
    env = app.login()
    commit, other_commit = "1" * 40, "2" * 40
    first = app.images("first", build_labels(commit, "2.3.0"))
    do_release(docker_client, first, [("2.3.0", False)], env, app.registry.host)
    published = app.served("2.3.0")
    docker_client.images.remove(first[0].image_id, force=True)
    rebuilt = app.images("rebuilt", build_labels(commit, "2.3.0"))
    cfg = release_config(app.registry.host)
    policy = [("2.3.0", False), ("2.3", True), ("latest", True)]

    result = run_release(
        docker_client,
        rebuilt,
        policy,
        configured(cfg, env),
        cfg,
        expected=identity.Expected(commit, "2.3.0"),
    )

    for name in ("2.3.0", "2.3", "latest"):
        assert app.served(name) == published
    assert "interrupted" in result.warnings[0]
    other = app.images("other", build_labels(other_commit, "2.3.0"))
    with pytest.raises(BuildToolsError, match="refusing to overwrite release tags"):
        run_release(
            docker_client,
            other,
            [("2.3.0", False)],
            configured(cfg, env),
            cfg,
            expected=identity.Expected(other_commit, "2.3.0"),
        )
    assert app.served("2.3.0") == published


def test_a_finished_release_run_again_after_a_newer_one_is_a_no_op_that_says_so(
    docker_client: docker.DockerClient, app: AppRelease
) -> None:
    """27.15: 1.0.0 was released as the highest (its image lists latest among its tags), then
    2.0.0; CI re-runs 1.0.0's release with a rebuild of the same commit. It was refused with
    advice to delete the release tag: it finishes nothing, moves only 1.0.0's own tags (none
    need it) and says the release was done already."""
    env = app.login()
    old, new = "4" * 40, "5" * 40
    cfg = release_config(app.registry.host)
    as_built = {**build_labels(old, "1.0.0"), identity.TAGS_LABEL: "1.0.0,1.0,1,latest"}
    first = app.images("1.0.0", as_built)
    do_release(docker_client, first, [("1.0.0", False), ("1.0", True), ("1", True),
                                      ("latest", True)], env, app.registry.host)  # fmt: skip
    newer = app.images("2.0.0", {**build_labels(new, "2.0.0"), identity.TAGS_LABEL: "2.0.0,2"})
    do_release(docker_client, newer, [("2.0.0", False), ("2", True), ("latest", True)], env,
               app.registry.host)  # fmt: skip
    before = {name: app.served(name) for name in app.tags()}
    docker_client.images.remove(first[0].image_id, force=True)
    # The rebuild is labelled with the tags the policy gives 1.0.0 now that 2.0.0 exists.
    rebuilt = app.images(
        "1.0.0 again", {**build_labels(old, "1.0.0"), identity.TAGS_LABEL: "1.0.0,1.0,1"}
    )

    result = run_release(
        docker_client,
        rebuilt,
        [("1.0.0", False), ("1.0", True), ("1", True)],
        configured(cfg, env),
        cfg,
        expected=identity.Expected(old, "1.0.0", tags="1.0.0,1.0,1"),
    )

    assert {name: app.served(name) for name in app.tags()} == before
    assert [p.action for p in result.pushes] == [publish.UNCHANGED] * 3
    assert not any("delete" in line for line in result.warnings)
    assert any("already holds this commit's app image" in line for line in result.warnings)


@pytest.mark.parametrize(
    ("dirty", "version", "why"),
    [
        (True, "1.0.0", "built from a working tree with uncommitted changes"),
        (False, "1.0.1", "of version 1.0.1, not 1.0.0"),
    ],
    ids=["dirty", "other version"],
)
def test_a_registry_image_of_this_commit_that_is_dirty_or_another_version_is_not_adopted(
    docker_client: docker.DockerClient, app: AppRelease, dirty: bool, version: str, why: str
) -> None:
    """Issue 18.1: an image built from a dirty tree (or of another version) that a registry
    holds under this commit's release tag is never finished as this commit's release."""
    env = app.login()
    commit = "3" * 40
    wrong = app.images("dirty build", build_labels(commit, version, dirty=dirty))
    do_release(docker_client, wrong, [("1.0.0", False)], env, app.registry.host)
    before = {name: app.served(name) for name in app.tags()}
    clean = app.images("clean build", build_labels(commit, "1.0.0"))
    cfg = release_config(app.registry.host)

    with pytest.raises(BuildToolsError) as failure:
        run_release(
            docker_client,
            clean,
            [("1.0.0", False), ("latest", True)],
            configured(cfg, env),
            cfg,
            expected=identity.Expected(commit, "1.0.0"),
        )

    message = str(failure.value)
    assert message.startswith(f"refusing to release: {app.registry.host}/{app.repository}:1.0.0")
    assert why in message and "\n" not in message
    assert {name: app.served(name) for name in app.tags()} == before


def test_a_local_image_that_is_not_this_builds_is_never_released(
    docker_client: docker.DockerClient, make_image: Callable[..., str]
) -> None:
    """Issue 18.1: `invoke build` on a dirty tree, then a clean `invoke release`: the dirty
    image (same first tag) is passed over, to be built anew; a clean one of this build is used."""
    app_repo, nginx_repo = repos()
    commit = "4" * 40
    info = BuildInfo(version="1.0.0", commit=commit, tag="v1.0.0")
    meta = Metadata(info, (tags.ImageTag("1.0.0", False, "release", protected=True),), {}, ())
    dirty = make_image(
        "dirty", labels=build_labels(commit, "1.0.0", dirty=True), tag=f"{app_repo}:1.0.0"
    )
    clean = make_image("clean", labels=build_labels(commit, "1.0.0"), tag=f"{nginx_repo}:1.0.0")

    # The records each build left (as invoke build writes them: one per image ID).
    def record(name: str, image_id: str, source: str) -> BuildRecord:
        tree = "a" * 40 if source == COMMIT else ""
        return BuildRecord(name, "", image_id, commit, source, tree, "", {}, "", "")

    records = {dirty: record("app", dirty, WORKTREE), clean: record("nginx", clean, COMMIT)}

    found, notes = identity.local_images(
        docker_client, [("app", app_repo), ("nginx", nginx_repo)], meta, records.get
    )

    assert [(i.name, i.image_id) for i in found] == [("app", None), ("nginx", clean)]
    assert dirty != clean and len(notes) == 1
    assert f"the local app image {app_repo}:1.0.0 is not this build's" in notes[0]
    assert "built from the working tree" in notes[0]
    # Without a record, the same clean image is never taken on its labels.
    unproven, _ = identity.local_images(docker_client, [("nginx", nginx_repo)], meta)
    assert [i.image_id for i in unproven] == [None]
