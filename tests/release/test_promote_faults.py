"""A promotion that meets a fault: a proxy that acknowledges or serves other bytes than were
sent, a stale read-back, a SIGTERM between two tags; and a promotion run again, which moves
nothing. Against the real htpasswd registry, with no engine.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from typing import Any

import pytest

import testbed
from tests.fixtures.flaky_proxy import FlakyProxy
from tests.fixtures.git import GitRepo
from tests.fixtures.promotion import (
    INVOKE,
    RELEASE_TAGS,
    ROOT,
    behind,
    env_of,
    invoke,
    invoke_env,
    push_master_images,
)
from tests.fixtures.registry_images import RegistryWriter, sha


def test_a_put_answered_with_another_digest_fails_before_any_floating_tag(
    registry: testbed.LocalRegistry, repo: GitRepo, tagged: dict[str, Any]
) -> None:
    """Something between here and the registry acknowledges the app's 1.2.3 manifest under
    another digest (and stores nothing): the promotion stops there, `latest` never moves."""
    push_master_images(tagged)
    stale = "sha256:" + "0" * 64
    proxy = FlakyProxy(
        registry.host,
        failures=1,
        status=201,
        match=lambda method, path, agent: method == "PUT" and path.endswith("/manifests/1.2.3"),
        headers={"Docker-Content-Digest": stale},
    ).start()
    try:
        done = invoke(repo, behind(proxy, tagged, registry), "release")
    finally:
        proxy.stop()

    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert f"verification failed for {proxy.host}/" in done.stderr
    assert f"the registry stored the manifest as {stale}, not sha256:" in done.stderr
    assert "no floating tag was moved" in done.stderr
    for name in ("app", "nginx"):
        assert "latest" not in registry.tags(tagged[name])


@pytest.mark.parametrize("lie", ["child manifest", "config blob"])
def test_bytes_that_are_not_their_digest_stop_the_promotion(
    registry: testbed.LocalRegistry, repo: GitRepo, tagged: dict[str, Any], lie: str
) -> None:
    """Promotion reads an index's child manifests and the image configs by digest: something
    between here and the registry serves other bytes for one (#27 item 3). The release stops
    with one line naming the registry and what it served, and puts no tag."""
    writer: RegistryWriter = tagged["writer"]
    master = tagged["master"]
    for name in ("app", "nginx"):
        writer.index_with_attestation(
            tagged[name], tagged["sha"], master["labels"], env_of(master["buildargs"])
        )
    app = tagged["app"]
    asked = f"/v2/{app}/manifests/sha256:" if lie == "child manifest" else f"/v2/{app}/blobs/"
    other = b'{"schemaVersion": 2, "config": {"Labels": {}}, "layers": []}'
    proxy = FlakyProxy(
        registry.host,
        failures=1,
        status=200,
        body=other,
        match=lambda method, path, agent: method == "GET" and path.startswith(asked),
    ).start()
    try:
        done = invoke(repo, behind(proxy, tagged, registry), "release")
    finally:
        proxy.stop()

    assert done.returncode != 0 and "Traceback" not in done.stderr
    kind = "manifest" if lie == "child manifest" else "blob"
    assert f"registry {proxy.host} served {kind} {app}@sha256:" in done.stderr
    assert f"with bytes of digest {sha(other)}, not sha256:" in done.stderr
    assert len(proxy.failed) == 1
    for name in ("app", "nginx"):
        assert registry.tags(tagged[name]) == [tagged["sha"]]


def test_one_read_back_per_repository_and_a_stale_one_fails(
    registry: testbed.LocalRegistry, repo: GitRepo, tagged: dict[str, Any]
) -> None:
    """Each tag's PUT answer names the digest of the bytes sent; then the last tag put in each
    repository (`latest`) is read back. A cache serving an old digest for it fails the release."""
    push_master_images(tagged)
    stale = "sha256:" + "0" * 64
    proxy = FlakyProxy(
        registry.host,
        failures=1,
        status=200,
        match=lambda method, path, agent: method == "HEAD" and path.endswith("/manifests/latest"),
        headers={"Docker-Content-Digest": stale},
    ).start()
    try:
        failed = invoke(repo, behind(proxy, tagged, registry), "release")
        proxy.seen.clear()
        again = invoke(repo, behind(proxy, tagged, registry), "release")
    finally:
        proxy.stop()

    assert failed.returncode != 0 and "Traceback" not in failed.stderr
    assert f"verification failed for {proxy.host}/{tagged['app']}:latest" in failed.stderr
    assert f"registry serves {stale}" in failed.stderr
    # Run again (the proxy now forwards): it finishes nginx's floating tags, and of the tags
    # it puts reads back only the last (the HEADs before the first PUT are the survey's).
    assert again.returncode == 0, again.stderr
    manifests = [(s.method, s.path) for s in proxy.seen if "/manifests/" in s.path]
    first_put = next(i for i, (method, _) in enumerate(manifests) if method == "PUT")
    nginx = f"/v2/{tagged['nginx']}/manifests/"
    assert manifests[first_put:] == [
        ("PUT", nginx + "1.2"),
        ("PUT", nginx + "1"),
        ("PUT", nginx + "latest"),
        ("HEAD", nginx + "latest"),
    ]


def test_a_promotion_stopped_by_sigterm_says_what_was_left_and_a_rerun_finishes(
    registry: testbed.LocalRegistry, repo: GitRepo, tagged: dict[str, Any]
) -> None:
    """A CI cancels a job with SIGTERM. Between the exact tags, it ends the promotion as Ctrl-C
    does: exit 130, one line saying what was put, no floating tag moved; a re-run finishes.
    The proxy makes each manifest PUT slow, so the signal lands between two of them."""
    push_master_images(tagged)

    puts: list[str] = []
    second_put = threading.Event()

    def slow_manifests(method: str, path: str, agent: str) -> bool:
        if method == "PUT" and "/manifests/" in path:
            puts.append(path)
            if len(puts) == 2:  # the client has the first one's answer: one tag is pushed
                second_put.set()
            time.sleep(1.0)
        return False  # forwarded unchanged

    proxy = FlakyProxy(registry.host, failures=1, match=slow_manifests).start()
    try:
        running = subprocess.Popen(
            [str(INVOKE), "release"],
            cwd=ROOT,
            env=invoke_env(repo, behind(proxy, tagged, registry)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while not second_put.wait(0.05):
            assert time.monotonic() < deadline and running.poll() is None, running.stderr
        running.send_signal(signal.SIGTERM)  # the second exact tag's PUT is under way
        out, err = running.communicate(timeout=60)
    finally:
        proxy.stop()

    assert running.returncode == 130, (running.returncode, out, err)
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("interrupted: pushed 1 of 8 tags;")
    for name in ("app", "nginx"):
        assert set(registry.tags(tagged[name])) <= {tagged["sha"], "1.2.3"}
    again = invoke(repo, tagged["env"], "release")
    assert again.returncode == 0, again.stderr
    for name in ("app", "nginx"):
        assert sorted(registry.tags(tagged[name])) == sorted([*RELEASE_TAGS, tagged["sha"]])


def test_a_promotion_run_again_is_a_no_op_that_says_so(
    registry: testbed.LocalRegistry, repo: GitRepo, tagged: dict[str, Any]
) -> None:
    """27.15: a restarted release (or CI job) of a tag already promoted moves nothing, exits 0
    and says so; it never advises deleting a tag."""
    push_master_images(tagged)
    writer: RegistryWriter = tagged["writer"]
    first = invoke(repo, tagged["env"], "release")
    assert first.returncode == 0, first.stderr
    served = {t: writer.read(tagged["app"], t)[1] for t in registry.tags(tagged["app"])}

    again = invoke(repo, tagged["env"], "release")

    assert again.returncode == 0, again.stderr
    assert "every tag already points at this release's images: nothing to push" in again.stderr
    assert "delete" not in again.stdout + again.stderr
    assert {t: writer.read(tagged["app"], t)[1] for t in registry.tags(tagged["app"])} == served
