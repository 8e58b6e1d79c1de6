"""`invoke release` against a real Docker Engine and real htpasswd-protected registries.

The images are tiny (``FROM scratch`` plus a one-line file) so a push takes milliseconds; what
is pushed, in which order, and with which digest is read back through the registry's HTTP API
with plain ``requests`` calls, independent of the code under test. Faults are real too: a
closed port, a wrong password, and a proxy that answers 503 in front of the real registry.
"""

from __future__ import annotations

import dataclasses
import io
import os
import secrets
import subprocess
from collections.abc import Callable
from pathlib import Path

import docker
import docker.errors
import pytest

import testbed
from buildtools.config import schema
from buildtools.errors import BuildToolsError
from buildtools.plan import metadata
from buildtools.registry.credentials import variable_names
from buildtools.release import progress
from tests.fixtures.flaky_proxy import FlakyProxy
from tests.fixtures.git import GitRepo
from tests.fixtures.held_images import discard, local_tags
from tests.fixtures.project import commit_example
from tests.fixtures.publish import (
    RELEASE_TAGS,
    AppRelease,
    RecordingReporter,
    do_release,
    image_pair,
    record_stand_ins,
    writes,
)
from tests.fixtures.registry import (
    login_env,
    repos,
    served_digest,
)

ROOT = Path(__file__).resolve().parents[2]
INVOKE = ROOT / ".venv" / "bin" / "invoke"

pytestmark = [pytest.mark.docker, pytest.mark.registry]


@pytest.fixture
def app(fast_registry: testbed.LocalRegistry, make_image: Callable[..., str]) -> AppRelease:
    return AppRelease(repos()[0], fast_registry, make_image)


# --- a release, end to end -------------------------------------------------------------------


def test_release_pushes_both_images_with_every_tag_and_the_digests_are_the_served_ones(
    docker_client: docker.DockerClient,
    fast_registry: testbed.LocalRegistry,
    observed: FlakyProxy,
    make_image: Callable[..., str],
) -> None:
    images = image_pair(make_image)
    app_repo, nginx_repo = (image.repository for image in images)
    env = login_env(observed.host, fast_registry.username, fast_registry.password)

    result = do_release(docker_client, images, RELEASE_TAGS, env, observed.host)

    expected = sorted(name for name, _ in RELEASE_TAGS)
    assert fast_registry.tags(app_repo) == expected
    assert fast_registry.tags(nginx_repo) == expected
    assert len(result.pushes) == 10
    summary = result.text()
    for push in result.pushes:
        served = served_digest(fast_registry, push.repository, push.tag)
        assert push.verified and push.digest == served, push.reference
        assert f"{push.repository}:{push.tag}" in summary and served in summary
    # Both images differ, so their digests do; every tag of one image has one digest.
    app_digests = {p.digest for p in result.pushes if p.image == "app"}
    nginx_digests = {p.digest for p in result.pushes if p.image == "nginx"}
    assert len(app_digests) == len(nginx_digests) == 1 and app_digests != nginx_digests
    # The order the registry saw: every exact tag of both images before any floating one.
    manifest_puts = [w.rsplit("/", 1)[1] for w in writes(observed) if "/manifests/" in w]
    assert manifest_puts == ["1.2.3", "sha-0123abc"] * 2 + ["1.2", "1", "latest"] * 2
    # The registry-qualified local tags made for the push are gone again.
    leftovers = [t for _, t in local_tags(docker_client) if observed.host in t]
    assert leftovers == []


def test_running_a_finished_release_again_pushes_nothing_and_succeeds(
    docker_client: docker.DockerClient,
    fast_registry: testbed.LocalRegistry,
    observed: FlakyProxy,
    make_image: Callable[..., str],
) -> None:
    images = image_pair(make_image)
    env = login_env(observed.host, fast_registry.username, fast_registry.password)
    first = do_release(docker_client, images, RELEASE_TAGS, env, observed.host)
    writes_before = len(writes(observed))

    again = do_release(docker_client, images, RELEASE_TAGS, env, observed.host)

    assert writes(observed)[writes_before:] == []
    assert [p.action for p in again.pushes] == ["unchanged"] * 10
    assert [p.digest for p in again.pushes] == [p.digest for p in first.pushes]
    assert again.as_dict()["pushed"] == 0 and again.as_dict()["unchanged"] == 10


def test_dry_run_lists_every_push_and_touches_nothing(
    docker_client: docker.DockerClient,
    fast_registry: testbed.LocalRegistry,
    observed: FlakyProxy,
    make_image: Callable[..., str],
) -> None:
    images = image_pair(make_image)
    app_repo, nginx_repo = (image.repository for image in images)
    env = login_env(observed.host, fast_registry.username, fast_registry.password)

    def own_tags() -> list[str]:  # this test's: other tests tag and untag meanwhile
        ours = {image.image_id for image in images}
        every = local_tags(docker_client)
        return sorted(t for i, t in every if i in ours or app_repo in t or nginx_repo in t)

    local_before = own_tags()
    assert local_before  # the images' own tags

    result = do_release(docker_client, images, RELEASE_TAGS, env, observed.host, dry_run=True)

    listed = {(p["registry"], p["repository"], p["tag"]) for p in result.as_dict()["pushes"]}
    assert listed == {
        (observed.host, repo, name) for repo in (app_repo, nginx_repo) for name, _ in RELEASE_TAGS
    }
    header, *table = result.text().splitlines()
    assert header.split() == ["ACTION", "REGISTRY", "REPOSITORY:TAG", "KIND", "DIGEST", "NOW"]
    assert all(line.startswith("would push") for line in table)
    assert writes(observed) == []
    assert fast_registry.tags(app_repo) == [] and fast_registry.tags(nginx_repo) == []
    assert own_tags() == local_before  # no registry-qualified tag is made


def test_two_registries_get_every_tag(
    docker_client: docker.DockerClient,
    fast_registry: testbed.LocalRegistry,
    second: testbed.LocalRegistry,
    app: AppRelease,
) -> None:
    app_repo = app.repository
    images = app.images("app")
    env = {
        **login_env(fast_registry.host, fast_registry.username, fast_registry.password),
        **login_env(second.host, second.username, second.password),
    }
    tag_list = [("2.0.0", False), ("latest", True)]

    result = do_release(docker_client, images, tag_list, env, fast_registry.host, second.host)

    for reg in (fast_registry, second):
        assert reg.tags(app_repo) == ["2.0.0", "latest"]
    assert {p.registry for p in result.pushes} == {fast_registry.host, second.host}
    assert [p.floating for p in result.pushes] == [False, False, True, True]


def test_progress_shows_each_push_its_layers_bytes_and_digest(
    docker_client: docker.DockerClient,
    fast_registry: testbed.LocalRegistry,
    app: AppRelease,
) -> None:
    app_repo, env = app.repository, app.login()
    images = app.images("progress")
    for terminal in (False, True):  # plain lines in CI logs; a byte progress bar on a terminal
        out = io.StringIO()
        reporter = progress.LineReporter(out, terminal=terminal)
        tag = f"7.0.{int(terminal)}"

        result = do_release(
            docker_client, images, [(tag, False)], env, fast_registry.host, reporter=reporter
        )

        shown = out.getvalue()
        assert f"pushing {fast_registry.host}/{app_repo}:{tag}" in shown
        assert f"{tag}: {result.pushes[0].digest} (" in shown and "sent, verified)" in shown
        if not terminal:  # the first push uploads the layer; the second finds it there
            assert ": Pushed" in shown and "(0 B sent" not in shown
        else:
            assert ": Layer already exists" in shown and "(0 B sent, verified)" in shown


# --- credentials -----------------------------------------------------------------------------


def test_wrong_password_is_one_clear_error_without_retries_and_nothing_is_pushed(
    docker_client: docker.DockerClient,
    fast_registry: testbed.LocalRegistry,
    observed: FlakyProxy,
    app: AppRelease,
) -> None:
    app_repo = app.repository
    images = app.images("app")
    wrong = "not-the-" + secrets.token_hex(6)
    env = login_env(observed.host, fast_registry.username, wrong)
    reporter = RecordingReporter()

    with pytest.raises(BuildToolsError) as failure:
        do_release(docker_client, images, RELEASE_TAGS, env, observed.host, reporter=reporter)

    message = str(failure.value)
    assert "rejected the login" in message and fast_registry.username in message
    assert "DOCKER_PASSWORD_127_0_0_1_" in message
    assert wrong not in message and fast_registry.password not in message
    assert reporter.retries.seen == []
    # One anonymous ping to see that a login is needed, then the login attempt: no retries.
    assert [(s.method, s.path) for s in observed.seen] == [("GET", "/v2/")] * 3
    assert writes(observed) == [] and fast_registry.tags(app_repo) == []


def test_missing_credentials_for_two_registries_are_one_error_before_any_push(
    docker_client: docker.DockerClient,
    fast_registry: testbed.LocalRegistry,
    second: testbed.LocalRegistry,
    app: AppRelease,
) -> None:
    app_repo = app.repository
    images = app.images("app")
    with pytest.raises(BuildToolsError) as failure:
        do_release(docker_client, images, RELEASE_TAGS, {}, fast_registry.host, second.host)
    message = str(failure.value)
    assert fast_registry.host in message and second.host in message
    assert "require a login" in message
    for reg in (fast_registry, second):
        user_var, pass_var = variable_names(reg.host)
        assert user_var in message and pass_var in message
        assert reg.tags(app_repo) == []


def test_generic_travis_variables_work_for_a_single_registry(
    docker_client: docker.DockerClient,
    fast_registry: testbed.LocalRegistry,
    app: AppRelease,
) -> None:
    app_repo = app.repository
    images = app.images("app")
    env = {"DOCKER_USERNAME": fast_registry.username, "DOCKER_PASSWORD": fast_registry.password}

    do_release(docker_client, images, [("0.1.0", False)], env, fast_registry.host)

    assert fast_registry.tags(app_repo) == ["0.1.0"]


# --- bad input (tests/fixtures/bad_input.py) ---


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
    from buildtools.facts.read import Run
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

    context = commit_example(repo)  # a release builds the commit's own files
    for command in commands:
        repo.git(*command)
    section = schema.merged(
        {
            "app": {"repository": app_repo, "context": str(context)},
            "nginx": {"repository": nginx_repo},
            "release": {"branches": branches},
        }
    )
    settings = dataclasses.replace(schema.load(section, ROOT), repo=repo.path)
    meta = metadata.of_run(Run.read(settings, {}))
    assert pushed in meta.tag_names
    ids = {}
    for name, repository in (("app", app_repo), ("nginx", nginx_repo)):
        # What `invoke build` made: stand-ins with its labels, tags and build records.
        ids[name] = image_id = make_image(repository, labels=dict(meta.labels))
        for ref in meta.local_refs(repository):
            docker_client.images.get(image_id).tag(ref)
    record_stand_ins(repo.path, app_repo, nginx_repo, ids, {})

    base = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    env = {
        **base,
        "INVOKE_BUILDTOOLS_REPO": str(repo.path),
        "INVOKE_BUILDTOOLS_APP_CONTEXT": str(context),
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
