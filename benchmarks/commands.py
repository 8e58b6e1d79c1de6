"""Running `invoke` as a user does, in a child process: its path, wall time, and `invoke ci`
as a CI build runs it (cases 4, 5, 7 and 8)."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from buildtools.errors import BuildToolsError


def invoke_command() -> list[str]:
    script = Path(sys.executable).with_name("invoke")
    return [str(script)] if script.exists() else [sys.executable, "-m", "invoke"]


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise BuildToolsError(
            f"`{' '.join(cmd)}` failed: {(done.stderr or done.stdout).strip()[-300:]}", ""
        )
    return seconds


def timed_with_cpu(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall time of the process, and the CPU time (user + system) it and its children used:
    on a busy machine the wall time waits for the CPU, the CPU time says what the tool did."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = timed(cmd, cwd, env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


# A Travis push build of master (as tests/engine/test_cache.py): a release branch, so `invoke ci`
# builds, smoke-tests and releases.
TRAVIS_MASTER_PUSH = {
    "CI": "true",
    "TRAVIS": "true",
    "TRAVIS_BRANCH": "master",
    "TRAVIS_PULL_REQUEST": "false",
    "TRAVIS_EVENT_TYPE": "push",
}
# What the bench's own environment must not pass to `invoke ci`: it would change the build.
FOREIGN_ENV = ("TRAVIS", "GITHUB_", "GITLAB_", "CI_", "INVOKE_", "DOCKER_")


def invoke_ci(repo: Any, env: dict[str, str], *args: str) -> tuple[float, dict[str, Any], str]:
    """`invoke ci --json [args]` in ``repo``: wall time, its JSON result and its stderr."""
    base = {k: v for k, v in {**os.environ, **repo.env}.items() if not k.startswith(FOREIGN_ENV)}
    started = time.perf_counter()
    done = subprocess.run(
        [*invoke_command(), "ci", "--json", *args],
        cwd=repo.path,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise BuildToolsError(f"invoke ci failed: {done.stderr.strip()[-600:]}", "see above")
    return seconds, json.loads(done.stdout), done.stderr


def master_release(
    repo: Any, env: dict[str, str], registry: Any
) -> tuple[float, dict[str, Any], str]:
    """`invoke ci` of a Travis push of master at ``repo``'s HEAD, released to ``registry``
    (a :class:`testbed.LocalRegistry`) with its login: the release a later run builds on."""
    return invoke_ci(
        repo,
        {
            **env,
            **TRAVIS_MASTER_PUSH,
            "TRAVIS_COMMIT": repo.head(),
            "INVOKE_BUILDTOOLS_RELEASE_REGISTRIES": registry.host,
            "DOCKER_USERNAME": registry.username,
            "DOCKER_PASSWORD": registry.password,
        },
    )
