"""`invoke compose`: the Compose file for a build's pair, checked as users check it.

Pure parts first (the file's content from plain values), then `invoke compose` itself as a
subprocess on a real git repository (a secret given by name, with a known value in the
environment, is never written), then the file read by Debian's docker-compose (`config`).
The file run for real (`docker-compose up`, `docker stack deploy` on a fresh engine's swarm)
is in test_compose_run.py.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from buildtools.config.schema import ServiceConfig, SmokeConfig
from buildtools.engine import compose, stack_parts
from buildtools.errors import BuildToolsError
from buildtools.plan.tags import ImageTag
from tests.fixtures.git import GitRepo
from tests.fixtures.services import unavailable
from tests.fixtures.sidecar import project_settings

ROOT = Path(__file__).resolve().parents[2]
INVOKE = ROOT / ".venv" / "bin" / "invoke"
APP = compose.Image("registry.example.org/lara/app", "lara/app", "1.2.3")
SIDECAR = compose.Image("registry.example.org/lara/nginx", "lara/nginx", "1.2.3")
SECRET_CFG = SmokeConfig(
    env=("DB_HOST=db", "RAILS_SECRET_KEY_BASE", "GREETING=it costs $5"),
    prepare="bin/rails db:prepare",
    timeout=30,
    services=(
        ServiceConfig("db", "mariadb:11.2", env=("MARIADB_PASSWORD",), ready="mysqladmin ping"),
        ServiceConfig("cache", "redis:7"),
    ),
)


def document(cfg: SmokeConfig, swarm: bool = False, port: int = 8080) -> dict:
    return compose.document(
        cfg, APP, SIDECAR, port, stack_parts.APP_PORT, stack_parts.SIDECAR_PORT, swarm=swarm
    )


def rendered(cfg: SmokeConfig, swarm: bool = False) -> str:
    return compose.render(
        document(cfg, swarm),
        title="LARA",
        version="1.2.3",
        commit="0123abc4567",
        secrets=compose.secret_names(cfg),
        swarm=swarm,
    )


def test_the_pair_runs_as_invoke_up_runs_it() -> None:
    services = document(project_settings().smoke)["services"]
    assert list(services) == ["db", "prepare", "app", "nginx"]
    sidecar = services["nginx"]
    assert sidecar["image"] == "registry.example.org/lara/nginx:1.2.3"
    assert sidecar["environment"] == {"APP_UPSTREAM": f"app:{stack_parts.APP_PORT}"}
    assert sidecar["ports"][0]["target"] == stack_parts.SIDECAR_PORT
    assert sidecar["ports"][0]["published"] == 8080
    assert "ports" not in services["app"]  # only the sidecar publishes a port
    # The app's environment as the smoke test gives it; prepare runs in the app image with it.
    assert services["app"]["environment"]["DB_HOST"] == "db"
    assert services["prepare"]["image"] == services["app"]["image"]
    assert services["prepare"]["environment"] == services["app"]["environment"]
    assert services["prepare"]["command"] == ["sh", "-c", "bin/rails db:prepare db:seed"]


def test_the_app_waits_for_healthy_services_and_a_finished_prepare() -> None:
    services = document(SECRET_CFG)["services"]
    assert services["prepare"]["depends_on"] == {
        "db": {"condition": "service_healthy"},
        "cache": {"condition": "service_started"},  # no ready command: started is ready
    }
    assert services["app"]["depends_on"]["prepare"] == {
        "condition": "service_completed_successfully"
    }
    assert services["app"]["depends_on"]["db"] == {"condition": "service_healthy"}
    assert "healthcheck" not in services["cache"]


def test_readiness_becomes_a_health_check_as_long_as_the_smoke_timeout() -> None:
    check = document(SECRET_CFG)["services"]["db"]["healthcheck"]
    assert check["test"] == ["CMD-SHELL", "mysqladmin ping"]
    interval = int(check["interval"].rstrip("s"))
    assert interval * check["retries"] >= SECRET_CFG.timeout
    assert interval * (check["retries"] - 1) < SECRET_CFG.timeout


def test_secrets_are_named_never_written_and_dollars_stay_literal() -> None:
    services = document(SECRET_CFG)["services"]
    secret = services["app"]["environment"]["RAILS_SECRET_KEY_BASE"]
    assert secret.startswith("${RAILS_SECRET_KEY_BASE:?")
    assert services["db"]["environment"]["MARIADB_PASSWORD"].startswith("${MARIADB_PASSWORD:?")
    assert services["app"]["environment"]["GREETING"] == "it costs $$5"
    assert compose.secret_names(SECRET_CFG) == ["RAILS_SECRET_KEY_BASE", "MARIADB_PASSWORD"]
    assert "RAILS_SECRET_KEY_BASE, MARIADB_PASSWORD" in rendered(SECRET_CFG)


def test_the_swarm_file_differs_only_in_depends_on_as_names() -> None:
    plain, swarm = document(SECRET_CFG), document(SECRET_CFG, swarm=True)
    assert swarm["services"]["app"]["depends_on"] == ["db", "cache", "prepare"]
    for data in (plain, swarm):
        for service in data["services"].values():
            service.pop("depends_on", None)
    assert plain == swarm


def test_the_text_is_the_document_with_comments_each_said_once() -> None:
    text = rendered(SECRET_CFG)
    assert yaml.safe_load(text) == document(SECRET_CFG)
    assert text.count("stack deploy ignores it") == 1  # above the first depends_on only
    assert "# - docker-compose 1.29 ignores `deploy`" in text
    assert "docker stack deploy ignores `depends_on` and `restart`" in text
    lines = text.splitlines()
    healthcheck = next(i for i, line in enumerate(lines) if line.strip() == "healthcheck:")
    assert "smoke.services.db.ready" in lines[healthcheck - 1]


def test_a_title_with_a_line_break_stays_in_its_comment() -> None:
    """`title` is configured text; a line break in it must not end the header's comment and
    turn the rest into keys of the file."""
    text = compose.render(
        document(SECRET_CFG),
        title="LARA\nservices: {}\r\n",
        version="1.2.3",
        commit="0123abc4567",
        secrets=[],
    )
    assert yaml.safe_load(text) == document(SECRET_CFG)
    assert text.splitlines()[0].startswith("# LARA services: {} 1.2.3 (commit 0123abc4567)")


def test_a_service_may_not_take_a_name_of_the_pair() -> None:
    cfg = dataclasses.replace(SECRET_CFG, services=(ServiceConfig("app", "mariadb:11.2"),))
    with pytest.raises(BuildToolsError, match=re.escape("rename buildtools.smoke.services.app")):
        document(cfg)


RELEASE_TAGS = (
    ImageTag("1.2.3", False, "release", protected=True),
    ImageTag("1.2", True, "minor"),
    ImageTag("latest", True, "highest"),
    ImageTag("sha-0123abc", False, "commit"),
)


def test_the_tag_is_the_first_exact_one_or_one_the_build_pushes() -> None:
    assert compose.choose_tag(RELEASE_TAGS) == "1.2.3"
    branch = (ImageTag("master", True, "branch"), ImageTag("sha-0123abc", False, "commit"))
    assert compose.choose_tag(branch) == "sha-0123abc"  # never a tag that moves by default
    assert compose.choose_tag(RELEASE_TAGS, "latest") == "latest"
    listed = re.escape("pass one of 1.2.3, sha-0123abc, 1.2, latest")
    with pytest.raises(BuildToolsError, match=listed):
        compose.choose_tag(RELEASE_TAGS, "1.3")
    with pytest.raises(BuildToolsError, match="no tags"):
        compose.choose_tag(())


def test_a_git_tag_for_the_image_tag_is_refused_naming_the_image_tag() -> None:
    """27.17: --tag of the other tasks is the git tag (v1.2.3); here it is an image tag."""
    with pytest.raises(BuildToolsError) as refused:
        compose.choose_tag(RELEASE_TAGS, "v1.2.3")
    assert refused.value.problem == (
        "--tag 'v1.2.3' is not an image tag this build pushes (--tag names an image tag: "
        "the release v1.2.3 is 1.2.3)"
    )


def test_pinning_names_the_digest_the_registry_gave_for_that_tag() -> None:
    digest = "sha256:" + "ab" * 32
    asked: list[tuple[str, str]] = []

    def lookup(repository: str, tag: str) -> str | None:
        asked.append((repository, tag))
        return digest

    pinned = compose.pin(APP, lookup)
    assert asked == [("lara/app", "1.2.3")]
    assert pinned.ref == f"registry.example.org/lara/app@{digest}"
    with pytest.raises(BuildToolsError, match="not in the registry"):
        compose.pin(APP, lambda repository, tag: None)


# ---- `invoke compose` as users run it ----


def run_compose(repo: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    clean["INVOKE_BUILDTOOLS_REPO"] = str(repo)
    return subprocess.run(
        [str(INVOKE), "compose", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


SECRET_VALUE = "known-secret-value-1f2e3d"
TASK_ENV = {
    "INVOKE_BUILDTOOLS_RELEASE_REGISTRIES": "registry.example.org:5000",
    "INVOKE_BUILDTOOLS_SMOKE_ENV": "DB_HOST=db,RAILS_SECRET_KEY_BASE",
    "RAILS_SECRET_KEY_BASE": SECRET_VALUE,
}


def test_invoke_compose_names_the_release_and_never_writes_a_secret(repo: GitRepo) -> None:
    repo.tag("v1.2.3", annotated=True)
    result = run_compose(repo.path, "--port", "9090", **TASK_ENV)
    assert result.returncode == 0, result.stderr
    assert SECRET_VALUE not in result.stdout + result.stderr
    data = yaml.safe_load(result.stdout)
    services = data["services"]
    assert services["app"]["image"] == "registry.example.org:5000/lara/app:1.2.3"
    assert services["nginx"]["image"] == "registry.example.org:5000/lara/nginx:1.2.3"
    assert services["app"]["environment"]["RAILS_SECRET_KEY_BASE"].startswith(
        "${RAILS_SECRET_KEY_BASE:?"
    )
    assert services["nginx"]["ports"][0]["published"] == 9090
    chosen = run_compose(repo.path, "--tag", "latest", **TASK_ENV)
    assert yaml.safe_load(chosen.stdout)["services"]["app"]["image"].endswith("/lara/app:latest")


def test_invoke_compose_refuses_a_tag_the_build_does_not_push_in_one_line(repo: GitRepo) -> None:
    result = run_compose(repo.path, "--tag", "nope", **TASK_ENV)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"error: --tag 'nope' is not an image tag this build pushes (fix: pass one of "
        f"sha-{repo.head()[:7]}, master, edge)"
    ]


def docker_compose() -> str:
    found = shutil.which("docker-compose")
    if not found:
        unavailable("docker-compose", FileNotFoundError("bash scripts/setup installs it"))
    return str(found)


def test_docker_compose_reads_both_files_and_fills_the_secret_from_the_environment(
    tmp_path: Path,
) -> None:
    for swarm in (False, True):
        path = tmp_path / f"compose-{swarm}.yml"
        path.write_text(rendered(SECRET_CFG, swarm=swarm))
        env = {**os.environ, "RAILS_SECRET_KEY_BASE": SECRET_VALUE, "MARIADB_PASSWORD": "pw"}
        seen = subprocess.run(
            [docker_compose(), "-f", str(path), "config"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert seen.returncode == 0, seen.stderr
        config = yaml.safe_load(seen.stdout)["services"]
        assert config["app"]["environment"]["RAILS_SECRET_KEY_BASE"] == SECRET_VALUE
        # `config` prints a Compose file again, so a literal $ stays escaped: not a variable.
        assert config["app"]["environment"]["GREETING"] == "it costs $$5"
        del env["RAILS_SECRET_KEY_BASE"]
        missing = subprocess.run(
            [docker_compose(), "-f", str(path), "config"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert missing.returncode != 0
        assert "set RAILS_SECRET_KEY_BASE in the environment" in missing.stderr
