"""``invoke prune`` end to end: real docker-registry processes with deletes on, a real git remote
with branches kept and deleted, an artificial history pushed through the API, and the result
read back with skopeo (a registry client that is not ours)."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import testbed
from buildtools.facts.versions import parse_version
from tests.fixtures import history
from tests.fixtures.flaky_proxy import FlakyProxy
from tests.fixtures.git import GitRepo, git_env, init_repo
from tests.fixtures.registry import login_env, repos

ROOT = Path(__file__).resolve().parents[1]
INVOKE = ROOT / ".venv" / "bin" / "invoke"
KEEP_COMMITS = 2


@dataclass
class Scene:
    """A project whose remote has ``master`` and ``feature-x`` (``old`` was deleted there after
    this clone fetched it), and the tags the rules keep and delete in every repository."""

    project: Path
    env: dict[str, str]
    app: str
    nginx: str
    keep: dict[str, set[str]]  # by repository (cosign's tags name each one's own digests)
    delete: set[str]

    def invoke(
        self, *args: str, hosts: list[str], **kw
    ) -> subprocess.Popen | subprocess.CompletedProcess:
        env = {**self.env, "INVOKE_BUILDTOOLS_RELEASE_REGISTRIES": ",".join(hosts)}
        command = [str(INVOKE), "prune", *args]
        if kw.get("background"):
            return subprocess.Popen(command, cwd=self.project, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)  # fmt: skip
        return subprocess.run(command, cwd=self.project, env=env, capture_output=True, text=True)


def commits(repo: GitRepo, branch: str, count: int) -> list[str]:
    """``count`` new commits on ``branch``, newest first."""
    return list(
        reversed([repo.commit(f"{branch} {n}", file=f"{branch}.txt") for n in range(count)])
    )


def skopeo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=60)


def listed(reg: testbed.LocalRegistry, repository: str) -> set[str]:
    done = skopeo("list-tags", "--tls-verify=false", "--creds", f"{reg.username}:{reg.password}",
                  f"docker://{reg.host}/{repository}")  # fmt: skip
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout)["Tags"])


def inspect_ok(reg: testbed.LocalRegistry, repository: str, tag: str) -> bool:
    where = f"docker://{reg.host}/{repository}:{tag}"
    creds = f"{reg.username}:{reg.password}"
    done = skopeo("inspect", "--raw", "--tls-verify=false", "--creds", creds, where)
    return done.returncode == 0


@pytest.fixture
def scene(
    tmp_path: Path, fast_registry: testbed.LocalRegistry, second: testbed.LocalRegistry
) -> Scene:
    env = git_env(tmp_path / "home")
    origin = init_repo(tmp_path / "origin", env)
    master = commits(origin, "master", 5)
    origin.git("checkout", "-q", "-b", "feature-x")
    feature = commits(origin, "feature-x", 2)
    origin.git("checkout", "-q", "-b", "old", master[0])
    old = commits(origin, "old", 2)
    origin.git("checkout", "-q", "master")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(origin.path), str(clone)], env=env, check=True)
    origin.git("branch", "-D", "old")  # gone from the remote; the clone still has its commits

    app, nginx = repos()
    now = dt.datetime.now(dt.UTC)
    made = history.make(branches={"master": 5, "feature-x": 2, "old": 2}, prs=(2, 45),
                        caches=("build",), signed=("2.0.0", "1.1.0"), now=now,
                        commits={"master": master, "feature-x": feature, "old": old})  # fmt: skip
    keep = {}
    delete = {f"sha-{c[:7]}" for c in master[KEEP_COMMITS:] + old} | {"old", "pr-45"}
    for reg in (fast_registry, second):
        for repository in (app, nginx):
            keep[repository] = set(history.push(reg, repository, made)) - delete

    project = tmp_path / "project"
    project.mkdir()
    (project / "tasks.py").write_text("from buildtools.tasks import ns  # noqa: F401\n")
    (project / "invoke.yaml").write_text(
        f"buildtools:\n  repo: {clone}\n  app:\n    repository: {app}\n"
        f"  nginx:\n    repository: {nginx}\n  prune:\n    keep_commits: {KEEP_COMMITS}\n"
    )
    run_env = {**env, "PATH": os.environ["PATH"]}
    for reg in (fast_registry, second):
        run_env |= login_env(reg.host, reg.username, reg.password)
    return Scene(project, run_env, app, nginx, keep, delete)


def test_prune_keeps_exactly_what_the_rules_say_in_every_registry_and_a_rerun_deletes_nothing(
    scene: Scene, fast_registry: testbed.LocalRegistry, second: testbed.LocalRegistry
) -> None:
    regs, hosts = (fast_registry, second), [fast_registry.host, second.host]
    dry = scene.invoke(hosts=hosts)
    assert dry.returncode == 0, dry.stderr
    assert (
        f"delete {fast_registry.host}/{scene.app}:old (no branch of that name on the remote)"
        in dry.stdout
    )
    assert f"keep   {second.host}/{scene.nginx}:1.0.0 (release)" in dry.stdout
    assert f"would delete {4 * len(scene.delete)} tags" in dry.stdout
    for reg in regs:
        for repository in (scene.app, scene.nginx):
            assert listed(reg, repository) == scene.keep[repository] | scene.delete

    done = scene.invoke("--yes", "--json", hosts=hosts)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert {d["tag"] for r in result["repositories"] for d in r["delete"]} == scene.delete
    for reg in regs:
        for repository in (scene.app, scene.nginx):
            assert listed(reg, repository) == scene.keep[repository]
            releases = [t for t in scene.keep[repository] if parse_version(t)]
            assert len(releases) == 6 and all(inspect_ok(reg, repository, t) for t in releases)

    again = scene.invoke("--yes", hosts=hosts)
    assert again.returncode == 0, again.stderr
    assert "deleted 0 tags" in again.stdout and "deleted " + fast_registry.host not in again.stdout


def test_an_interrupted_prune_loses_no_kept_tag_and_a_rerun_finishes_it(
    scene: Scene, fast_registry: testbed.LocalRegistry, second: testbed.LocalRegistry
) -> None:
    slow = lambda method, path, agent: method == "DELETE" and "0000000000000000" not in path  # noqa: E731
    proxies = [FlakyProxy(r.host, slow=slow, delay=30).start() for r in (fast_registry, second)]
    hosts = [p.host for p in proxies]
    for proxy, reg in zip(proxies, (fast_registry, second), strict=True):
        scene.env |= login_env(proxy.host, reg.username, reg.password)
    try:
        child = scene.invoke("--yes", hosts=hosts, background=True)
        deadline = time.monotonic() + 60
        while not any(s.method == "DELETE" and s.status == 202 for p in proxies for s in p.seen):
            assert child.poll() is None and time.monotonic() < deadline, child.stderr.read()
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)  # after its first delete, before the answer
        child.wait(10)
    finally:
        for proxy in proxies:
            proxy.stop()
    left = {
        (r.host, repo): listed(r, repo)
        for r in (fast_registry, second)
        for repo in (scene.app, scene.nginx)
    }
    # Every kept tag is still there; one delete was done, and not all of them.
    assert all(scene.keep[repo] <= tags for (_, repo), tags in left.items())
    assert any(tags != scene.keep[repo] | scene.delete for (_, repo), tags in left.items())
    assert any(tags != scene.keep[repo] for (_, repo), tags in left.items())

    done = scene.invoke("--yes", hosts=[fast_registry.host, second.host])
    assert done.returncode == 0, done.stderr
    for reg in (fast_registry, second):
        for repository in (scene.app, scene.nginx):
            assert listed(reg, repository) == scene.keep[repository]


def test_a_registry_that_refuses_deletes_is_one_line_and_nothing_is_deleted_anywhere(
    scene: Scene, fast_registry: testbed.LocalRegistry, no_delete_registry: testbed.LocalRegistry
) -> None:
    made = history.make(branches={"gone": 1}, prs=(45,), now=dt.datetime.now(dt.UTC))
    for repository in (scene.app, scene.nginx):
        history.push(no_delete_registry, repository, made)
    scene.env |= login_env(
        no_delete_registry.host, no_delete_registry.username, no_delete_registry.password
    )
    done = scene.invoke("--yes", hosts=[fast_registry.host, no_delete_registry.host])
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: registry {no_delete_registry.host} refuses deletes (HTTP 405): "
        "nothing was deleted (fix: set storage.delete.enabled: true in the registry's config "
        "and restart it, or leave "
        "this registry out (INVOKE_BUILDTOOLS_RELEASE_REGISTRIES))"
    ]
    assert listed(fast_registry, scene.app) == scene.keep[scene.app] | scene.delete
