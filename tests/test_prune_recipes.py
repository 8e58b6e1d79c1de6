"""The README's scheduled prune jobs: one per CI, each valid YAML that runs `invoke prune --yes`
on a schedule with every branch's history (the last commits of each branch are kept)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SECTION = (ROOT / "README.md").read_text().split("## Keeping the registry tidy", 1)[1]
SECTION = SECTION.split("\n## ", 1)[0]


def recipe(ci: str) -> str:
    found = re.search(rf"<!-- prune recipe: {ci} -->\n(.*?)```\w*\n(.*?)```", SECTION, re.S)
    assert found, f"no prune recipe for {ci}"
    return found.group(2)


def test_github_actions_prunes_weekly_with_full_history_and_a_read_only_token() -> None:
    flow = yaml.safe_load(recipe("GitHub Actions"))
    assert flow[True]["schedule"][0]["cron"]  # YAML 1.1 reads `on` as True
    assert flow["permissions"] == {"contents": "read"}
    steps = flow["jobs"]["prune"]["steps"]
    assert steps[0]["with"]["fetch-depth"] == 0
    assert [s["run"] for s in steps if "run" in s][-1] == "invoke prune --yes"
    assert set(steps[-1]["env"]) == {"DOCKER_USERNAME", "DOCKER_PASSWORD"}


def test_gitlab_prunes_only_in_its_schedule_with_full_history() -> None:
    job = yaml.safe_load(recipe("GitLab CI"))["prune"]
    assert job["variables"]["GIT_DEPTH"] == 0
    assert job["script"][-1] == "invoke prune --yes"
    assert all('$CI_PIPELINE_SOURCE == "schedule"' in rule["if"] for rule in job["rules"])


def test_travis_prunes_only_in_cron_builds_with_full_history() -> None:
    config = yaml.safe_load(recipe("Travis CI"))
    (job,) = config["jobs"]["include"]
    assert job["if"] == "type = cron" and job["script"] == "invoke prune --yes"
    assert config["git"]["depth"] is False


@pytest.mark.parametrize("ci", ["GitHub Actions", "GitLab CI", "Travis CI", "Docker Hub"])
def test_every_recipe_installs_the_package_and_deletes(ci: str) -> None:
    text = recipe(ci)
    assert "invoke prune --yes" in text
    assert ci == "Docker Hub" or "pip install" in text
