"""A task is an ordered list of steps over one plan: each step's outcome is a value, a skipped
step says why, and --dry-run shows the steps as a real run would take them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from buildtools.release import progress, steps
from buildtools.release.steps import Outcomes, Session, Step
from tests.fixtures.git import GitRepo

ROOT = Path(__file__).resolve().parents[2]
INVOKE = ROOT / ".venv" / "bin" / "invoke"


def session(said: list[str]) -> Session:
    return Session(said.append, progress.QuietReporter(), build_display=False)


def test_steps_run_in_order_over_one_plan_and_each_outcome_is_kept() -> None:
    said: list[str] = []
    seen: list[dict[str, object]] = []

    def count(plan: dict[str, int], done: Outcomes, _: Session) -> int:
        seen.append(dict(done))
        return plan["n"] + len(done)

    task = [
        Step("first", count),
        Step("never here", count, lambda plan: "not for this plan", loud=lambda plan: True),
        Step("quietly skipped", count, lambda plan: "nothing to do"),
        Step("last", count),
    ]
    done = steps.run(task, {"n": 10}, session(said))

    assert dict(done) == {"first": 10, "never here": None, "quietly skipped": None, "last": 13}
    assert seen == [{}, {"first": 10, "never here": None, "quietly skipped": None}]
    assert done.skipped("never here") == "not for this plan" and done.skipped("last") is None
    assert said == ["not for this plan"]  # only a loud step's skip is said
    assert steps.listing(task, {"n": 10}) == [
        "  run   first",
        "  skip  never here: not for this plan",
        "  skip  quietly skipped: nothing to do",
        "  run   last",
    ]


def dry_run(repo: GitRepo, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRAVIS", "GITHUB", "CI"))}
    env.update(INVOKE_BUILDTOOLS_REPO=str(repo.path), DOCKER_HOST="unix:///nonexistent/docker.sock")
    return subprocess.run(
        [str(INVOKE), "build", "--dry-run", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_a_build_dry_run_lists_its_steps_with_their_skip_reasons_without_an_engine(
    repo: GitRepo,
) -> None:
    done = dry_run(repo)
    no_cache = dry_run(repo, "--no-cache")

    assert done.returncode == 0 and no_cache.returncode == 0, done.stderr + no_cache.stderr
    tail = done.stdout.splitlines()[-3:]
    assert tail == ["steps without --dry-run:", "  run   look up cache", "  run   build"]
    assert no_cache.stdout.splitlines()[-2:] == [
        "  skip  look up cache: --no-cache",
        "  run   build",
    ]
