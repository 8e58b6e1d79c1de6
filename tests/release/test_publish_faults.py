"""`invoke release` against a registry that is down, flaky (a proxy answering 503 in front of the
real one), refusing, or serving another digest than was pushed: retried where it may help, one
clear error otherwise."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

import docker
import docker.errors
import pytest

import testbed
from buildtools.errors import BuildToolsError
from buildtools.plan.push_order import ReleaseImage
from buildtools.registry.targets import configured
from tests.fixtures.flaky_proxy import FlakyProxy
from tests.fixtures.publish import (
    RELEASE_TAGS,
    AppRelease,
    RecordingReporter,
    Retries,
    do_release,
    run_release,
)
from tests.fixtures.registry import (
    login_env,
    release_config,
    repos,
    served_digest,
)

pytestmark = [pytest.mark.docker, pytest.mark.registry]


@pytest.fixture
def app(fast_registry: testbed.LocalRegistry, make_image: Callable[..., str]) -> AppRelease:
    return AppRelease(repos()[0], fast_registry, make_image)


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
