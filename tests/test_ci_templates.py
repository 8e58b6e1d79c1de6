"""The CI files (.travis.yml, ci-templates/, hooks/build), checked without an engine.

tests/test_ci_e2e.py runs `invoke ci` for real once per event kind, each time through another
CI's file; these tests make that enough: every CI file runs the same valid commands with the
checkout and credentials `invoke ci` needs, and every provider's variables for every event
become the build and the release decision the end-to-end test checks for its one provider.
"""

from __future__ import annotations

import re
import shlex
import subprocess

import pytest
import yaml

from buildtools.attest.keys import PASSWORD_ENV, PRIVATE_KEY_ENV
from buildtools.facts.buildinfo import BuildInfo
from buildtools.facts.ci_env import detect
from buildtools.plan.release_rule import decide
from tests.fixtures.ci_files import (
    COMMANDS,
    EVENTS,
    ROOT,
    VARIABLES,
    github_jobs,
    github_secrets_env,
    travis_commands,
)
from tests.fixtures.sidecar import project_settings

RELEASE = "0123456789abcdef0123456789abcdef01234567"
PR_HEAD = "89abcdef0123456789abcdef0123456789abcdef"


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


def test_travis_yml_has_the_structure_travis_expects():
    config = load(".travis.yml")
    assert config["language"] == "python"
    assert "docker" in config["services"]
    assert config["git"]["depth"] is False  # full history and tags for the tag policy
    # A branch safelist must let tag builds through: some entry has to match v1.2.3.
    only = config["branches"]["only"]
    patterns = [re.compile(p.strip("/")) for p in only if p.startswith("/")]
    assert any(p.match("v1.2.3") for p in patterns)
    assert any(p.match("1.2.3-rc.1") for p in patterns)
    assert "master" in only
    assert config["install"] == ["bash scripts/setup"]
    stages = [job["stage"] for job in config["jobs"]["include"]]
    assert stages == ["test", "images"]
    test_job = config["jobs"]["include"][0]
    readme = (ROOT / "README.md").read_text()
    # The test job runs exactly the README's test command.
    assert f"bash scripts/setup && {test_job['script']}" in readme
    # No clear-text secrets: credentials come from encrypted variables only.
    text = (ROOT / ".travis.yml").read_text()
    assert "DOCKER_PASSWORD=" not in text.replace("DOCKER_PASSWORD=<password>", "")
    assert "deploy" not in config  # `invoke ci` decides; PR builds never push


@pytest.mark.parametrize("provider", sorted(COMMANDS))
def test_every_ci_file_runs_the_commands_of_the_travis_job(provider: str):
    """So the one provider the end-to-end test runs for an event stands for the others."""
    assert (
        COMMANDS[provider]() == travis_commands() == ["bash scripts/setup", ".venv/bin/invoke ci"]
    )


@pytest.mark.parametrize(
    "command",
    sorted({c for commands in COMMANDS.values() for c in commands()} | {"bash hooks/build"}),
)
def test_each_command_of_the_ci_files_is_valid(command: str):
    """Scripts parse (bash -n); invoke knows the task and every flag given to it."""
    argv = shlex.split(command)
    if argv[0] == "bash":
        assert (ROOT / argv[1]).is_file(), f"{argv[1]} does not exist"
        check = ["bash", "-n", *argv[1:]]
    else:
        assert argv[0] == ".venv/bin/invoke", f"unexpected command {command!r}"
        check = [str(ROOT / argv[0]), *argv[1:], "--help"]  # parses the flags, runs nothing
    done = subprocess.run(check, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_each_ci_checks_out_history_and_tags():
    """`latest`, `1` and `1.2` move only for the highest release git knows: no shallow clones."""
    assert load(".travis.yml")["git"]["depth"] is False
    for job in github_jobs().values():
        (checkout,) = [s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout@")]
        assert checkout["with"]["fetch-depth"] == 0
    assert load("ci-templates/gitlab-ci.yml")["images"]["variables"]["GIT_DEPTH"] == 0


def test_github_workflow_runs_for_release_branches_tags_and_pull_requests():
    workflow = load("ci-templates/github-actions.yml")
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads `on` as True
    assert set(triggers["push"]["branches"]) == set(project_settings().release.branches)
    assert triggers["push"]["tags"]
    assert "pull_request" in triggers
    assert set(github_secrets_env()) == {
        "DOCKER_USERNAME",
        "DOCKER_PASSWORD",
        PRIVATE_KEY_ENV,
        PASSWORD_ENV,
    }


def test_github_workflow_gives_each_job_least_privilege_and_pins_every_action():
    """The token reads the repository; only the job that runs for pushes (never for pull
    requests) may write packages and gets the registry secrets. An action is a commit, not a
    tag its owner (or whoever takes over the account) can move."""
    workflow = load("ci-templates/github-actions.yml")
    assert workflow["permissions"] == {"contents": "read"}
    writers = {
        name: job["if"]
        for name, job in github_jobs().items()
        if job.get("permissions", {}).get("packages") == "write"
    }
    assert list(writers.values()) == ["github.event_name == 'push'"]
    for name, job in github_jobs().items():
        assert set(job.get("permissions", {}).values()) <= {"read", "write"}
        if name not in writers:
            assert "packages" not in job.get("permissions", {})
            assert not any("secrets." in str(step.get("env", {})) for step in job["steps"])
            assert job["if"] == "github.event_name == 'pull_request'"
        for step in job["steps"]:
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
                assert step["with"].get("persist-credentials") is not True


def test_gitlab_job_speaks_tls_to_its_dind_engine_and_documents_the_plain_fallback():
    """dind's own TLS setup by default: its client certificate from DOCKER_TLS_CERTDIR."""
    variables = load("ci-templates/gitlab-ci.yml")["images"]["variables"]
    assert variables["DOCKER_HOST"] == "tcp://docker:2376"
    assert str(variables["DOCKER_TLS_VERIFY"]) == "1"
    assert variables["DOCKER_CERT_PATH"] == f"{variables['DOCKER_TLS_CERTDIR']}/client"
    text = (ROOT / "ci-templates" / "gitlab-ci.yml").read_text()
    assert "DOCKER_HOST: tcp://docker:2375" in text  # the fallback, as a comment
    assert "tcp://docker:2375" not in str(variables)


def test_gitlab_job_runs_for_tags_branches_and_merge_requests():
    rules = [rule["if"] for rule in load("ci-templates/gitlab-ci.yml")["images"]["rules"]]
    assert rules == ["$CI_COMMIT_TAG", "$CI_COMMIT_BRANCH", "$CI_MERGE_REQUEST_IID"]


@pytest.mark.parametrize("event", EVENTS)
@pytest.mark.parametrize("provider", sorted(VARIABLES))
def test_each_provider_and_event_is_the_build_the_end_to_end_test_checks(provider, event):
    """A push to master releases master, the tag v1.2.3 releases it, a pull request nothing."""
    ref, variables = VARIABLES[provider](event, RELEASE, PR_HEAD)
    ci = detect({"CI": "true", **variables})
    assert ci is not None and ci.provider == provider
    expected = {
        "push": ("master", None, None, RELEASE),
        "tag": (None, "v1.2.3", None, RELEASE),
        "pr": ("feature/x", None, 7, PR_HEAD),
    }[event]
    assert (ci.branch, ci.tag, ci.pull_request, ci.commit) == expected
    assert ref == (ci.tag or ci.branch)  # the CI checked out what it says it builds
    info = BuildInfo(
        version="1.2.3",
        commit=ci.commit or "",
        branch=ci.branch,
        tag=ci.tag,
        pull_request=ci.pull_request,
        ci=ci.provider,
    )
    decision = decide(info, project_settings().release)
    assert decision.release is (event != "pr"), decision.reason
    if event == "pr":
        assert "pull requests are never pushed" in decision.reason


# ---- signing secrets: the key and its password reach only the job that pushes ----

SIGNING = (PRIVATE_KEY_ENV, PASSWORD_ENV)


def test_github_gives_the_signing_key_to_the_release_job_only():
    """Under the names buildtools reads, from secrets of the same names (what `cosign
    generate-key-pair github://…` stores), and in no job that runs for pull requests."""
    for name, job in github_jobs().items():
        env = {k: v for step in job["steps"] for k, v in step.get("env", {}).items()}
        if job["if"] == "github.event_name == 'push'":
            assert {k: env.get(k) for k in SIGNING} == {
                k: f"${{{{ secrets.{k} }}}}" for k in SIGNING
            }, name
        else:
            assert not set(SIGNING) & set(env), name


def test_gitlab_signing_variables_are_protected_never_written_in_the_file():
    """GitLab variables come from the project's settings: the file names them, says to protect
    them (cosign creates them unprotected), and never sets them."""
    text = (ROOT / "ci-templates" / "gitlab-ci.yml").read_text()
    comments = " ".join(line.lstrip("# ") for line in text.splitlines() if line.startswith("#"))
    for name in SIGNING:
        assert name in comments
        assert name not in str(load("ci-templates/gitlab-ci.yml"))
    assert "mark both protected and the password masked" in comments


def test_travis_signing_secrets_go_to_the_images_job_only():
    """The comment under the images job says how to encrypt both for that job's env; no job
    (the test job above all) and no global env sets them in clear text."""
    config = load(".travis.yml")
    assert not any(k in str(config) for k in SIGNING)
    text = (ROOT / ".travis.yml").read_text()
    images_at = text.index("- stage: images")
    encrypts = [line for line in text.splitlines() if "travis encrypt" in line and "COSIGN" in line]
    assert [line.split()[3].strip('"').split("=")[0] for line in encrypts] == [
        PASSWORD_ENV,
        PRIVATE_KEY_ENV,
    ]
    assert all(text.index(line) > images_at for line in encrypts)
    assert "under this job's `env:`" in text[images_at:]


def test_the_readme_shows_cosign_verify_for_each_ci_registry():
    """One `cosign verify` line per CI file's usual registry, each with the flags a release
    without a transparency log needs."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## How CI uses it") : readme.index("## Keeping the registry")]
    lines = [line for line in section.splitlines() if line.startswith("cosign verify ")]
    hosts = {}
    for line in lines:
        command, _, ci = line.partition(" # ")
        hosts[shlex.split(command)[-1].split("/")[0]] = ci.strip()
    assert hosts == {
        "ghcr.io": "GitHub Actions",
        "registry.gitlab.com": "GitLab CI",
        "docker.io": "Travis CI",
    }
    for line in lines:
        assert "--key cosign.pub --insecure-ignore-tlog=true" in line
