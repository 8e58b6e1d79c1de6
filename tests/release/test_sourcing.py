"""A release is the commit's own files, against the real engine, git and registry.

Each case is something a careless (or hostile) user can do to a checkout before `invoke
release` (issue #26, cases 1-5): what the registry then holds must be exactly what the commit
holds. The app is a tiny one committed in a real repository (its Dockerfile copies the
context to /lara), so a case costs a cached build; what the released image holds is read by
running it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import requests

import testbed
from buildtools.engine.records import Store
from tests.fixtures import invoke_cli
from tests.fixtures.git import GitRepo
from tests.fixtures.held_images import discard, local_tags
from tests.fixtures.registry import ACCEPT, login_env, repos

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY . /lara/
RUN mkdir -p /lara/public
ARG LARA_VERSION
ENV LARA_IMAGE_VERSION=$LARA_VERSION
"""


@pytest.fixture
def app(
    docker_client: docker.DockerClient,
    base_image: str,
    fast_registry: testbed.LocalRegistry,
    repo: GitRepo,
) -> Iterator[dict[str, Any]]:
    """A tiny app committed on master (context ``app/``), and the environment that releases
    it to a registry of its own."""
    repo.write("app/Dockerfile", DOCKERFILE)
    repo.write("app/.dockerignore", "Dockerfile\n")
    repo.write("app/committed.txt", "committed\n")
    repo.commit("the app")
    app_repo, nginx_repo = repos()
    env = {
        "INVOKE_BUILDTOOLS_REPO": str(repo.path),
        "INVOKE_BUILDTOOLS_APP_CONTEXT": str(repo.path / "app"),
        "INVOKE_BUILDTOOLS_APP_DOCKERFILE": str(repo.path / "app" / "Dockerfile"),
        "INVOKE_BUILDTOOLS_APP_BUILD_ARGS": "",
        "INVOKE_BUILDTOOLS_APP_REPOSITORY": app_repo,
        "INVOKE_BUILDTOOLS_NGINX_REPOSITORY": nginx_repo,
        "INVOKE_BUILDTOOLS_RELEASE_REGISTRIES": fast_registry.host,
        "INVOKE_BUILDTOOLS_RELEASE_RETRY_BASE_DELAY": "0.01",
        "INVOKE_BUILDTOOLS_CACHE_PULL": "false",
        **login_env(fast_registry.host, fast_registry.username, fast_registry.password),
    }
    yield {"repo": repo, "env": env, "app_repo": app_repo, "nginx_repo": nginx_repo}
    for _, ref in local_tags(docker_client):
        if app_repo in ref or nginx_repo in ref:
            discard(docker_client, ref)


def run(app: dict[str, Any], *args: str) -> Any:
    """``invoke …`` for the app's checkout, in this process."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("INVOKE_")}
    ci = ("TRAVIS", "GITHUB", "GITLAB", "CI", "SOURCE_")
    base = {k: v for k, v in base.items() if not k.startswith(ci)}
    return invoke_cli.run(args, ROOT, {**base, **app["env"]}, real_cli=False)


def release(app: dict[str, Any]) -> dict[str, Any]:
    done = run(app, "release", "--json")
    assert done.returncode == 0, done.stderr
    return {"json": json.loads(done.stdout), "stderr": done.stderr}


def config_digest(registry: testbed.LocalRegistry, repository: str, tag: str) -> str:
    """The config digest of ``repository:tag`` in ``registry``: the ID of the image pushed."""
    answer = requests.get(
        f"{registry.url}/v2/{repository}/manifests/{tag}",
        auth=(registry.username, registry.password),
        headers={"Accept": ACCEPT},
        timeout=10,
    )
    answer.raise_for_status()
    return str(answer.json()["config"]["digest"])


def released_files(
    client: docker.DockerClient, app: dict[str, Any], registry: testbed.LocalRegistry
) -> str:
    """What the app image the registry holds under this commit's tag has under /lara (each
    file's name and content), run by its ID."""
    image_id = config_digest(registry, app["app_repo"], f"sha-{app['repo'].head()[:7]}")
    script = 'cd /lara && for f in $(find . -type f | sort); do echo "$f: $(cat $f)"; done'
    return client.containers.run(image_id, ["sh", "-c", script], remove=True).decode()


def test_an_untracked_file_never_reaches_a_release(
    docker_client: docker.DockerClient, app: dict[str, Any], fast_registry: testbed.LocalRegistry
) -> None:
    app["repo"].write("app/untracked.txt", "not committed\n")  # untracked_is_dirty: false

    built = run(app, "build", "--json")
    release(app)

    files = released_files(docker_client, app, fast_registry)
    assert "./committed.txt: committed" in files and "untracked" not in files
    assert built.returncode == 0, built.stderr
    assert built.stderr.count("1 untracked file in the build context left out") == 1
    assert "commit them, or build the working tree with invoke build --worktree" in built.stderr


def test_an_ignored_file_never_reaches_a_release(
    docker_client: docker.DockerClient, app: dict[str, Any], fast_registry: testbed.LocalRegistry
) -> None:
    repo = app["repo"]
    repo.write(".gitignore", "build/\n")
    repo.commit("ignore build/")
    repo.write("app/build/out.js", "built outside git\n")  # ignored by git, not by docker
    app["env"]["INVOKE_BUILDTOOLS_GIT_UNTRACKED_IS_DIRTY"] = "true"

    files = (release(app), released_files(docker_client, app, fast_registry))[1]

    assert "./committed.txt: committed" in files and "out.js" not in files


@pytest.mark.parametrize("hide", ["--skip-worktree", "--assume-unchanged"])
def test_an_edit_hidden_from_git_status_never_reaches_a_release(
    docker_client: docker.DockerClient,
    app: dict[str, Any],
    fast_registry: testbed.LocalRegistry,
    hide: str,
) -> None:
    repo = app["repo"]
    repo.write("app/committed.txt", "edited, hidden from git status\n")
    repo.git("update-index", hide, "app/committed.txt")
    assert repo.git("status", "--porcelain") == ""  # git calls the tree clean

    files = (release(app), released_files(docker_client, app, fast_registry))[1]

    assert "./committed.txt: committed" in files and "hidden" not in files


def test_a_build_of_another_context_is_never_released_as_this_commit(
    docker_client: docker.DockerClient,
    app: dict[str, Any],
    fast_registry: testbed.LocalRegistry,
    tmp_path: Path,
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "Dockerfile").write_text(DOCKERFILE)
    (other / "committed.txt").write_text("another directory's content\n")
    sha = f"sha-{app['repo'].head()[:7]}"

    built = run(app, "build", "--json", "--context", str(other))
    release(app)

    files = released_files(docker_client, app, fast_registry)
    assert "./committed.txt: committed" in files and "another directory" not in files
    assert built.returncode == 0, built.stderr
    assert built.stderr.count("building the working tree: not releasable") == 1
    (app_built, _) = json.loads(built.stdout)
    assert app_built["tags"] == [f"{app['app_repo']}:{sha}-dirty"]  # never the commit's tag
    labels = docker_client.images.get(app_built["id"]).labels
    assert labels["org.concord.lara.build.dirty"] == "true"


def test_an_image_changed_after_its_build_is_rebuilt_not_released(
    docker_client: docker.DockerClient, app: dict[str, Any], fast_registry: testbed.LocalRegistry
) -> None:
    built = run(app, "build", "--json")
    assert built.returncode == 0, built.stderr
    (app_built, _) = json.loads(built.stdout)
    # Changed in the engine: `docker commit` keeps every label; re-tagged under its name.
    container = docker_client.containers.run(
        app_built["id"], ["sh", "-c", "echo planted > /lara/planted.txt"], detach=True
    )
    container.wait()
    repository, _, tag = app_built["tags"][0].rpartition(":")
    changed = container.commit(repository=repository, tag=tag)
    container.remove()
    assert changed.labels == docker_client.images.get(app_built["id"]).labels

    done = release(app)

    files = released_files(docker_client, app, fast_registry)
    assert "./committed.txt: committed" in files and "planted" not in files
    assert app_built["source"] == "commit"
    (note,) = [w for w in done["json"]["warnings"] if "is not this build's" in w]
    assert note.startswith(f"the local app image {app_built['tags'][0]} is not this build's")
    assert "no build record names it" in note


def test_a_clean_build_is_released_as_it_is_with_its_record(
    docker_client: docker.DockerClient, app: dict[str, Any], fast_registry: testbed.LocalRegistry
) -> None:
    built = run(app, "build", "--json")
    assert built.returncode == 0, built.stderr
    ids = {b["name"]: b["id"] for b in json.loads(built.stdout)}

    release(app)

    sha = f"sha-{app['repo'].head()[:7]}"
    pushed = {
        name: config_digest(fast_registry, app[f"{name}_repo"], sha) for name in ("app", "nginx")
    }
    assert pushed == ids  # nothing rebuilt: the records prove both images
    store = Store.of(app["repo"].path)
    assert store is not None
    record = store.load(ids["app"])
    assert record is not None and record.source == "commit"
    assert record.commit == app["repo"].head()
    assert record.context_tree == app["repo"].git("rev-parse", "HEAD:app")
    assert record.build_args["LARA_COMMIT"] == app["repo"].head()
    nginx = store.load(ids["nginx"])
    assert nginx is not None and nginx.releasable and nginx.build_args["APP_IMAGE"] == ids["app"]


def test_a_worktree_build_is_the_directory_labelled_so_and_never_released(
    docker_client: docker.DockerClient, app: dict[str, Any], fast_registry: testbed.LocalRegistry
) -> None:
    app["repo"].write("app/untracked.txt", "not committed\n")
    sha = f"sha-{app['repo'].head()[:7]}"

    built = run(app, "build", "--json", "--only", "app", "--worktree")

    assert built.returncode == 0, built.stderr
    assert built.stderr.count("building the working tree: not releasable (--worktree)") == 1
    assert "left out" not in built.stderr
    (image,) = json.loads(built.stdout)
    assert image["tags"] == [f"{app['app_repo']}:{sha}-dirty"] and image["source"] == "worktree"
    labels = docker_client.images.get(image["id"]).labels
    assert labels["org.concord.lara.build.dirty"] == "true"
    assert labels["org.opencontainers.image.version"].endswith("+dirty")
    out = docker_client.containers.run(image["id"], ["cat", "/lara/untracked.txt"], remove=True)
    assert out == b"not committed\n"
    store = Store.of(app["repo"].path)
    assert store is not None
    record = store.load(image["id"])
    assert record is not None and record.source == "worktree" and not record.releasable

    release(app)

    assert "untracked" not in released_files(docker_client, app, fast_registry)


def test_the_dry_run_says_which_source_the_build_would_use(app: dict[str, Any]):
    """`invoke build --dry-run --json` shows what the build sends: the commit's tree for a
    clean checkout, the directory once the tree is dirty."""
    repo: GitRepo = app["repo"]
    clean = run(app, "build", "--dry-run", "--json", "--only", "app")
    assert clean.returncode == 0, clean.stderr
    (spec,) = json.loads(clean.stdout)
    assert spec["source"] == f"commit {repo.head()[:7]}"
    repo.write("app/committed.txt", "edited, not committed\n")
    dirty = run(app, "build", "--dry-run", "--json", "--only", "app")
    assert dirty.returncode == 0, dirty.stderr
    assert json.loads(dirty.stdout)[-1]["source"] == "directory"
