"""`invoke release` against a real Docker Engine and real htpasswd-protected registries.

The images are tiny (``FROM scratch`` plus a one-line file) so a push takes milliseconds; what
is pushed, in which order, and with which digest is read back through the registry's HTTP API
with plain ``requests`` calls, independent of the code under test. Faults are real too: a
closed port, a wrong password, and a proxy that answers 503 in front of the real registry.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

import testbed
from buildtools import progress, release, tags
from buildtools.buildinfo import BuildInfo
from buildtools.config import ReleaseConfig
from buildtools.credentials import variable_names
from buildtools.errors import BuildToolsError
from buildtools.metadata import Metadata
from buildtools.pushplan import ReleaseImage
from buildtools.targets import configured, known_versions, preflight, retry_policy
from tests.fixtures.flaky_proxy import FlakyProxy
from tests.fixtures.git import GitRepo
from tests.fixtures.held_images import local_tags
from tests.fixtures.registry import (
    login_env,
    release_config,
    repos,
    served_digest,
)

ROOT = Path(__file__).resolve().parents[1]
INVOKE = ROOT / ".venv" / "bin" / "invoke"
RELEASE_TAGS = [
    ("1.2.3", False),
    ("sha-0123abc", False),
    ("1.2", True),
    ("1", True),
    ("latest", True),
]

pytestmark = [pytest.mark.docker, pytest.mark.registry]


class Retries:
    """Records retry notices the way a user sees them on stderr."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int, str]] = []

    def __call__(self, what: str, attempt: int, delay: float, reason: str) -> None:
        self.seen.append((what, attempt, reason))


class RecordingReporter(progress.QuietReporter):
    def __init__(self) -> None:
        self.retries = Retries()

    def retry(self, what: str, attempt: int, delay: float, reason: str) -> None:
        self.retries(what, attempt, delay, reason)


def run_release(
    client: docker.DockerClient | None,
    images: list[ReleaseImage],
    tag_list: Sequence,
    found: list,
    cfg: ReleaseConfig,
    **options,
) -> release.ReleaseResult:
    """What `invoke release` does once the images exist: check every registry, then push."""
    preflight(found, [image.repository for image in images])
    return release.push_all(client, images, tag_list, found, retry=retry_policy(cfg), **options)


def do_release(
    client: docker.DockerClient,
    images: list[ReleaseImage],
    tag_list: list,
    env: dict[str, str],
    *hosts: str,
    retries: int = 3,
    force: bool = False,
    dry_run: bool = False,
    reporter: progress.PushReporter | None = None,
) -> release.ReleaseResult:
    cfg = release_config(*hosts, retries=retries)
    found = configured(cfg, env)
    return run_release(
        client, images, tag_list, found, cfg, force=force, dry_run=dry_run, reporter=reporter
    )


@dataclass
class AppRelease:
    """The set-up most release tests share: a fresh app repository in the test's registry,
    tiny images for it, and the login (for the registry itself or a proxy in front of it)."""

    repository: str
    registry: testbed.LocalRegistry
    make_image: Callable[..., str]

    def login(self, host: str | None = None) -> dict[str, str]:
        return login_env(host or self.registry.host, self.registry.username, self.registry.password)

    def images(self, text: str = "app", labels: dict[str, str] | None = None) -> list[ReleaseImage]:
        return [ReleaseImage("app", self.repository, self.make_image(text, labels=labels))]

    def tags(self) -> list[str]:
        return self.registry.tags(self.repository)

    def served(self, tag: str) -> str | None:
        return served_digest(self.registry, self.repository, tag)


@pytest.fixture
def app(fast_registry: testbed.LocalRegistry, make_image: Callable[..., str]) -> AppRelease:
    return AppRelease(repos()[0], fast_registry, make_image)


def build_labels(commit: str, version: str, dirty: bool = False) -> dict[str, str]:
    """The labels `invoke build` gives an image of ``commit`` (those a release checks)."""
    return {
        "org.opencontainers.image.revision": commit,
        "org.opencontainers.image.version": version + ("+dirty" if dirty else ""),
        "org.concord.lara.build.dirty": "true" if dirty else "false",
    }


def image_pair(make_image: Callable[..., str]) -> list[ReleaseImage]:
    """An app and an nginx image, each made fresh, in repositories of their own."""
    app_repo, nginx_repo = repos()
    return [
        ReleaseImage("app", app_repo, make_image("app")),
        ReleaseImage("nginx", nginx_repo, make_image("nginx")),
    ]


def writes(proxy: FlakyProxy) -> list[str]:
    """Requests that change the registry (uploads and manifest puts), as ``METHOD path``."""
    return [
        f"{s.method} {s.path}"
        for s in proxy.seen
        if s.method in ("POST", "PUT", "PATCH", "DELETE") and not s.injected
    ]


@pytest.fixture
def observed(fast_registry: testbed.LocalRegistry) -> Iterator[FlakyProxy]:
    """A proxy that fails nothing: it only records what reaches the registry, in order."""
    proxy = FlakyProxy(fast_registry.host).start()
    yield proxy
    proxy.stop()


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
    assert all(line.startswith("would push") for line in result.text().splitlines())
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


# --- faults ----------------------------------------------------------------------------------


def test_registry_down_is_retried_then_a_clear_error(
    docker_client: docker.DockerClient, make_image: Callable[..., str], closed_port: int
) -> None:
    closed = f"127.0.0.1:{closed_port}"  # nothing listens there
    app_repo, _ = repos()
    images = [ReleaseImage("app", app_repo, make_image("app"))]
    env = login_env(closed, "someone", "secret-" + secrets.token_hex(4))
    cfg = release_config(closed, retries=3)
    seen = Retries()
    found = configured(cfg, env, on_retry=seen)

    started = time.monotonic()
    with pytest.raises(BuildToolsError) as failure:
        run_release(docker_client, images, RELEASE_TAGS, found, cfg)

    message = str(failure.value)
    assert f"registry {closed} is unreachable" in message
    assert "failed 4 times" in message and "connection refused" in message
    assert [attempt for _, attempt, _ in seen.seen] == [1, 2, 3]
    assert time.monotonic() - started < 5  # bounded: 3 short waits


def test_flaky_registry_in_front_of_the_api_release_succeeds_after_retries(
    docker_client: docker.DockerClient,
    fast_registry: testbed.LocalRegistry,
    app: AppRelease,
) -> None:
    proxy = FlakyProxy(fast_registry.host, failures=3).start()  # the first 3 requests get 503
    try:
        app_repo = app.repository
        images = app.images("app")
        env = login_env(proxy.host, fast_registry.username, fast_registry.password)
        seen = Retries()
        cfg = release_config(proxy.host, retries=5)
        found = configured(cfg, env, on_retry=seen)

        result = run_release(docker_client, images, [("3.0.0", False)], found, cfg)

        assert len(proxy.failed) == 3
        assert [why for _, _, why in seen.seen] == ["HTTP 503"] * 3
        assert result.pushes[0].verified
        assert fast_registry.tags(app_repo) == ["3.0.0"]
    finally:
        proxy.stop()


def test_flaky_registry_during_the_push_release_succeeds_after_retries(
    docker_client: docker.DockerClient,
    fast_registry: testbed.LocalRegistry,
    app: AppRelease,
) -> None:
    # Fail the engine's first request (its /v2/ ping: it then pushes without a login and
    # reports "unauthorized") and later its first manifest upload ("received unexpected HTTP
    # status: 503"). Both must be retried; neither is a wrong password.
    failed: set[str] = set()

    def engine_request(method: str, path: str, agent: str) -> bool:
        if "docker/" not in agent:
            return False
        kind = "ping" if path == "/v2/" else "manifest" if "/manifests/" in path else None
        if kind and method in ("GET", "PUT") and kind not in failed:
            failed.add(kind)
            return True
        return False

    proxy = FlakyProxy(fast_registry.host, failures=2, match=engine_request).start()
    try:
        app_repo = app.repository
        images = app.images("app")
        env = login_env(proxy.host, fast_registry.username, fast_registry.password)
        reporter = RecordingReporter()

        result = do_release(
            docker_client, images, [("3.1.0", False)], env, proxy.host, reporter=reporter
        )

        assert [(s.method, s.path.rsplit("/", 1)[-1]) for s in proxy.failed] == [
            ("GET", ""),
            ("PUT", "3.1.0"),
        ]
        reasons = [why for _, _, why in reporter.retries.seen]
        assert len(reasons) == 2
        assert "unauthorized" in reasons[0] and "login check passed" in reasons[0]
        assert "503" in reasons[1]
        push = result.pushes[0]
        assert push.attempts == 3 and push.verified
        assert push.digest == served_digest(fast_registry, app_repo, "3.1.0")
    finally:
        proxy.stop()


def test_permanent_push_errors_are_not_retried(
    docker_client: docker.DockerClient,
    fast_registry: testbed.LocalRegistry,
    app: AppRelease,
) -> None:
    # A registry that refuses manifests: the proxy answers every manifest PUT with 400 and
    # the registry-style body a real "manifest invalid" has.
    proxy = FlakyProxy(
        fast_registry.host,
        failures=100,
        status=400,
        match=lambda method, path, agent: method == "PUT" and "/manifests/" in path,
        body=b'{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid"}]}',
    ).start()
    try:
        app_repo = app.repository
        images = app.images("app")
        env = login_env(proxy.host, fast_registry.username, fast_registry.password)
        reporter = RecordingReporter()

        with pytest.raises(BuildToolsError) as failure:
            do_release(docker_client, images, RELEASE_TAGS, env, proxy.host, reporter=reporter)

        message = str(failure.value)
        assert f"push of {proxy.host}/{app_repo}:1.2.3 failed" in message
        assert "manifest invalid" in message
        assert "after 0 of 5 tags; no floating tag was moved" in message
        assert reporter.retries.seen == [] and len(proxy.failed) == 1
        assert fast_registry.tags(app_repo) == []
    finally:
        proxy.stop()


def test_a_registry_serving_another_digest_than_was_pushed_fails_verification(
    docker_client: docker.DockerClient,
    fast_registry: testbed.LocalRegistry,
    app: AppRelease,
) -> None:
    # A stale cache in front of the registry: our digest check (HEAD on the manifest) gets
    # an old digest back. The push must not be reported as done, and no floating tag moves.
    stale = "sha256:" + "0" * 64
    proxy = FlakyProxy(
        fast_registry.host,
        failures=1,
        status=200,
        match=lambda method, path, agent: method == "HEAD" and "/manifests/" in path,
        headers={"Docker-Content-Digest": stale},
    ).start()
    try:
        app_repo = app.repository
        images = app.images("app")
        env = login_env(proxy.host, fast_registry.username, fast_registry.password)

        with pytest.raises(BuildToolsError) as failure:
            do_release(docker_client, images, [("6.0.0", False), ("latest", True)], env, proxy.host)

        message = str(failure.value)
        assert f"verification failed for {proxy.host}/{app_repo}:6.0.0" in message
        assert f"registry serves {stale}" in message
        assert "no floating tag was moved" in message
        assert fast_registry.tags(app_repo) == ["6.0.0"]
    finally:
        proxy.stop()


# --- tag safety ------------------------------------------------------------------------------


def info_for(
    tag: str, known: tuple[str, ...] = (), commit: str = "c0ffee1" * 5 + "c" * 5
) -> BuildInfo:
    return BuildInfo(version=tag.lstrip("v"), commit=commit, tag=tag, known_versions=known)


def test_a_backport_after_a_higher_release_does_not_move_latest(
    docker_client: docker.DockerClient,
    fast_registry: testbed.LocalRegistry,
    make_image: Callable[..., str],
    app: AppRelease,
) -> None:
    app_repo, env = app.repository, app.login()
    cfg = release_config(fast_registry.host)

    def tagged_release(tag: str, commit: str, image_id: str) -> release.ReleaseResult:
        found = configured(cfg, env)
        # As in CI: a shallow clone whose git knows no other version tags; the registry does.
        known = known_versions(found, [app_repo])
        policy = tags.plan(info_for(tag, commit=commit), known_versions=known).tags
        images = [ReleaseImage("app", app_repo, image_id)]
        return run_release(docker_client, images, policy, found, cfg)

    tagged_release("v2.0.0", "2000000" * 5 + "2" * 5, make_image("2.0.0"))
    latest_before = served_digest(fast_registry, app_repo, "latest")
    # Without the registry's versions the policy would move latest: the check below matters.
    assert "latest" in [t.name for t in tags.plan(info_for("v1.4.9")).tags]

    backport = tagged_release("v1.4.9", "1409000" * 5 + "1" * 5, make_image("1.4.9"))

    assert [p.tag for p in backport.pushes] == ["1.4.9", "sha-1409000", "1.4", "1"]
    assert [p.action for p in backport.pushes] == ["push"] * 4
    assert served_digest(fast_registry, app_repo, "latest") == latest_before
    assert served_digest(fast_registry, app_repo, "2") == latest_before
    assert served_digest(fast_registry, app_repo, "1") == backport.pushes[0].digest
    assert served_digest(fast_registry, app_repo, "sha-2000000") == latest_before
    assert served_digest(fast_registry, app_repo, "sha-1409000") == backport.pushes[0].digest
    assert fast_registry.tags(app_repo) == [
        "1",
        "1.4",
        "1.4.9",
        "2",
        "2.0",
        "2.0.0",
        "latest",
        "sha-1409000",
        "sha-2000000",
    ]


def test_an_existing_exact_tag_with_other_content_is_refused_unless_forced(
    docker_client: docker.DockerClient,
    fast_registry: testbed.LocalRegistry,
    observed: FlakyProxy,
    app: AppRelease,
) -> None:
    app_repo, env = app.repository, app.login(observed.host)
    tag_list = [("4.0.0", False), ("latest", True)]
    first = app.images("first build")
    do_release(docker_client, first, tag_list, env, observed.host)
    original = served_digest(fast_registry, app_repo, "4.0.0")
    writes_before = len(writes(observed))
    rebuilt = app.images("rebuilt, other content")

    with pytest.raises(BuildToolsError) as failure:
        do_release(docker_client, rebuilt, tag_list, env, observed.host)

    message = str(failure.value)
    assert f"{observed.host}/{app_repo}:4.0.0" in message and "--force" in message
    assert writes(observed)[writes_before:] == []
    assert served_digest(fast_registry, app_repo, "4.0.0") == original
    assert served_digest(fast_registry, app_repo, "latest") == original

    forced = do_release(docker_client, rebuilt, tag_list, env, observed.host, force=True)

    assert [p.action for p in forced.pushes] == ["overwrite", "push"]
    assert forced.pushes[0].previous == original
    assert served_digest(fast_registry, app_repo, "4.0.0") == forced.pushes[0].digest != original
    assert served_digest(fast_registry, app_repo, "latest") == forced.pushes[0].digest


def test_an_existing_sha_tag_is_replaced_without_force_but_an_exact_version_is_not(
    docker_client: docker.DockerClient,
    fast_registry: testbed.LocalRegistry,
    observed: FlakyProxy,
    app: AppRelease,
) -> None:
    app_repo, env = app.repository, app.login(observed.host)
    sha = tags.ImageTag("sha-0123abc", False, "commit 0123abc")
    assert sha.protected is False
    exact = tags.ImageTag("7.1.0", False, "release 7.1.0", protected=True)
    tag_build = [exact, sha, tags.ImageTag("7.1", True, "7.1"), tags.ImageTag("latest", True, "")]
    # The branch build of the commit pushes sha-0123abc first.
    branch_image = app.images("branch build")
    do_release(
        docker_client,
        branch_image,
        [sha, tags.ImageTag("master", True, "branch master")],
        env,
        observed.host,
    )
    branch_digest = served_digest(fast_registry, app_repo, "sha-0123abc")
    assert branch_digest is not None

    # The tag build of the same commit (other metadata, so other content) replaces it.
    tag_image = app.images("tag build")
    result = do_release(docker_client, tag_image, tag_build, env, observed.host)

    assert [(p.tag, p.action) for p in result.pushes] == [
        ("7.1.0", "push"),
        ("sha-0123abc", "overwrite"),
        ("7.1", "push"),
        ("latest", "push"),
    ]
    tag_digest = result.pushes[0].digest
    assert all(p.verified and p.digest == tag_digest for p in result.pushes)
    assert result.pushes[1].previous == branch_digest != tag_digest
    for name in ("7.1.0", "sha-0123abc", "7.1", "latest"):
        assert served_digest(fast_registry, app_repo, name) == tag_digest
    assert served_digest(fast_registry, app_repo, "master") == branch_digest
    writes_before = len(writes(observed))

    # A restarted tag job (another build number, other content): 7.1.0 is protected.
    restarted = app.images("restarted tag build")
    with pytest.raises(BuildToolsError) as failure:
        do_release(docker_client, restarted, tag_build, env, observed.host)

    message = str(failure.value)
    assert f"{observed.host}/{app_repo}:7.1.0" in message and "--force" in message
    assert "sha-0123abc" not in message
    assert writes(observed)[writes_before:] == []
    for name in ("7.1.0", "sha-0123abc", "7.1", "latest"):
        assert served_digest(fast_registry, app_repo, name) == tag_digest
    # A (name, False) pair still counts as protected, as before ImageTag.protected existed.
    cfg = release_config(observed.host)
    with pytest.raises(BuildToolsError) as as_pair:
        run_release(
            None, restarted, [("sha-0123abc", False)], configured(cfg, env), cfg, dry_run=True
        )
    assert f"{observed.host}/{app_repo}:sha-0123abc" in str(as_pair.value)
    assert writes(observed)[writes_before:] == []


def test_floating_tags_move_to_the_new_release_without_force(
    docker_client: docker.DockerClient,
    fast_registry: testbed.LocalRegistry,
    app: AppRelease,
) -> None:
    app_repo, env = app.repository, app.login()
    old = app.images("5.0.0")
    new = app.images("5.0.1")
    do_release(docker_client, old, [("5.0.0", False), ("5.0", True)], env, fast_registry.host)

    result = do_release(
        docker_client, new, [("5.0.1", False), ("5.0", True)], env, fast_registry.host
    )

    assert served_digest(fast_registry, app_repo, "5.0") == result.pushes[0].digest
    assert served_digest(fast_registry, app_repo, "5.0.0") != result.pushes[0].digest


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
    repo.tag("v3.1.4")
    commit = repo.head()
    app_repo, nginx_repo = repos()
    # The images `invoke build` would have made for this commit (tiny stand-ins, same labels).
    label = build_labels(commit, "3.1.4")
    app_id = make_image("app", labels=label, tag=f"{app_repo}:3.1.4")
    nginx_id = make_image("nginx", labels=label, tag=f"{nginx_repo}:3.1.4")
    password = fast_registry.password
    env = {
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
    # The second run (--json) found everything in place: nothing pushed, quiet stderr.
    data = json.loads(json_run.stdout)
    assert data["version"] == "3.1.4" and data["pushed"] == 0 and data["unchanged"] == 10
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
        expected=release.Expected(commit, "2.3.0"),
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
            expected=release.Expected(other_commit, "2.3.0"),
        )
    assert app.served("2.3.0") == published


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
            expected=release.Expected(commit, "1.0.0"),
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

    found, notes = release.local_images(
        docker_client, [("app", app_repo), ("nginx", nginx_repo)], meta
    )

    assert [(i.name, i.image_id) for i in found] == [("app", None), ("nginx", clean)]
    assert dirty != clean and len(notes) == 1
    assert f"the local app image {app_repo}:1.0.0 is not this build's" in notes[0]
    assert "uncommitted changes" in notes[0]
