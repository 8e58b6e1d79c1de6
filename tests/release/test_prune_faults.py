"""``invoke prune --yes`` while someone tags: a release tag put on a digest after prune planned
to delete it (a promotion of an old ``sha-`` image, a rebuild that makes the same digest) must
survive. The registry API deletes a manifest with every tag on it, so prune looks again at what
points at a digest right before deleting it.

Real docker-registry with deletes on, a proxy in front that holds prune's first ``DELETE`` (its
check that the registry deletes at all, after the plan) while the test tags, real git, the
result read back with skopeo.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

import testbed
from tests.fixtures import history
from tests.fixtures.flaky_proxy import FlakyProxy
from tests.fixtures.git import git_env, init_repo
from tests.fixtures.registry import login_env, repos

ROOT = Path(__file__).resolve().parents[2]
INVOKE = ROOT / ".venv" / "bin" / "invoke"
MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
PROBE = "0000000000000000"  # prune's DELETE of a digest no manifest has


def skopeo_tags(reg: testbed.LocalRegistry, repository: str) -> set[str]:
    done = subprocess.run(
        ["skopeo", "list-tags", "--tls-verify=false", "--creds",
         f"{reg.username}:{reg.password}", f"docker://{reg.host}/{repository}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout)["Tags"])


def retag(reg: testbed.LocalRegistry, repository: str, source: str, tag: str) -> str:
    """Put ``source``'s manifest under ``tag`` too, as a promotion that moves no bytes does."""
    url = f"{reg.url}/v2/{repository}/manifests"
    auth = (reg.username, reg.password)
    body = requests.get(f"{url}/{source}", auth=auth, headers={"Accept": MANIFEST}, timeout=10)
    body.raise_for_status()
    put = requests.put(f"{url}/{tag}", auth=auth, data=body.content,
                       headers={"Content-Type": MANIFEST}, timeout=10)  # fmt: skip
    put.raise_for_status()
    return put.headers["Docker-Content-Digest"]


@dataclass
class Scene:
    """A project whose remote's master has 4 commits, years old by git; with ``keep_commits:
    1`` prune deletes the ``sha-`` tags of the 3 older ones (``old``: the oldest)."""

    project: Path
    env: dict[str, str]
    app: str
    nginx: str
    old: str

    def via(self, proxy: FlakyProxy, reg: testbed.LocalRegistry) -> dict[str, str]:
        """The environment of a run that reaches ``reg`` only through ``proxy``."""
        run_env = {**self.env, "INVOKE_BUILDTOOLS_RELEASE_REGISTRIES": proxy.host}
        return run_env | login_env(proxy.host, reg.username, reg.password)


@pytest.fixture
def scene(tmp_path: Path, fast_registry: testbed.LocalRegistry) -> Scene:
    env = git_env(tmp_path / "home")
    origin = init_repo(tmp_path / "origin", env)
    master = list(reversed([origin.commit(f"m {n}", file="m.txt") for n in range(4)]))
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(origin.path), str(clone)], env=env, check=True)
    app, nginx = repos()
    made = history.make(releases=("1.0.0",), branches={"master": 4}, commits={"master": master})
    for repository in (app, nginx):
        history.push(fast_registry, repository, made)
    project = tmp_path / "project"
    project.mkdir()
    (project / "tasks.py").write_text("from buildtools.tasks import ns  # noqa: F401\n")
    (project / "invoke.yaml").write_text(
        f"buildtools:\n  repo: {clone}\n  app:\n    repository: {app}\n"
        f"  nginx:\n    repository: {nginx}\n  prune:\n    keep_commits: 1\n"
    )
    run_env = {**env, "PATH": os.environ["PATH"]}
    return Scene(project, run_env, app, nginx, f"sha-{master[-1][:7]}")


def test_a_release_tagged_onto_a_doomed_digest_after_the_plan_is_not_deleted(
    scene: Scene, fast_registry: testbed.LocalRegistry
) -> None:
    project, app, nginx, old = scene.project, scene.app, scene.nginx, scene.old
    slow = lambda method, path, agent: method == "DELETE" and PROBE in path  # noqa: E731
    proxy = FlakyProxy(fast_registry.host, slow=slow, delay=3).start()
    run_env = scene.via(proxy, fast_registry)
    try:
        command = [str(INVOKE), "prune", "--yes"]
        child = subprocess.Popen(command, cwd=project, env=run_env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)  # fmt: skip
        deadline = time.monotonic() + 60
        while not any(PROBE in s.path for s in list(proxy.seen)):
            assert child.poll() is None and time.monotonic() < deadline, child.communicate()
            time.sleep(0.02)
        # Prune has read and decided everything; its check is held 3 s: a release is made.
        promoted = retag(fast_registry, app, old, "1.1.0")
        out, err = child.communicate(timeout=120)
    finally:
        proxy.stop()

    assert child.returncode == 0, err
    left = skopeo_tags(fast_registry, app)
    assert "1.1.0" in left and old in left, out
    assert f"kept {proxy.host}/{app}@{promoted}: 1.1.0 points at it now" in out
    # The same old commit of the sidecar, which nobody tagged, went.
    assert old not in skopeo_tags(fast_registry, nginx)


def test_a_registry_that_answers_202_but_keeps_the_manifest_is_an_error_not_a_success(
    scene: Scene, fast_registry: testbed.LocalRegistry
) -> None:
    # A proxy or a misconfigured registry that accepts deletes and does nothing: prune must
    # not report "deleted".
    lying = lambda method, path, agent: method == "DELETE" and PROBE not in path  # noqa: E731
    proxy = FlakyProxy(fast_registry.host, failures=1000, status=202, match=lying, body=b"")
    proxy.start()
    try:
        done = subprocess.run([str(INVOKE), "prune", "--yes"], cwd=scene.project,
                              env=scene.via(proxy, fast_registry), capture_output=True,
                              text=True, timeout=120)  # fmt: skip
    finally:
        proxy.stop()

    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: 6 deletes were answered 202 (accepted) but the registry still serves those "
        f"manifests, first {proxy.host}/{scene.app}@{proxy.failed[0].path.rsplit('/', 1)[1]} "
        "(fix: check the registry's storage.delete setting and its log, and any proxy or cache "
        "in front of it; then run invoke prune --yes again)"
    ]
    assert "deleted 6 tags" not in done.stdout
    assert scene.old in skopeo_tags(fast_registry, scene.app)
