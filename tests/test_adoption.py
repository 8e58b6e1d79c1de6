"""LARA adopts lara-buildtools by following the README alone.

The README's adoption section holds each literal step in a fenced block after an
``<!-- adopt: NAME -->`` marker. These tests read those blocks and apply them, unchanged, to
``tests/fixtures/lara_app`` (a repository laid out like LARA's, built from Debian packages),
then run the tasks as LARA's CI would. Only what cannot exist here is swapped, through the
environment and never by editing the blocks: the registry (ghcr.io → a local htpasswd
registry), the image repositories, the base images (Docker Hub → the local Debian image; the
``node`` image of the front-end stage → Debian's nodejs and npm on it, through the
``NODE_IMAGE`` build arg) and ``mariadb:11.2`` (the local MariaDB image, tagged so for the
test). The fixture's Dockerfile, unicorn.rb, Procfile, database config, layout and
``lara-typescript/`` (a dependency-free package with LARA's script names; its output
git-ignored and required by application.js and .css) follow LARA's own (read at 12d8fa6).
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import subprocess
import time
from collections.abc import Iterator

import docker
import docker.errors
import pytest
import yaml

import testbed
from buildtools.attest.keys import load_signing_key
from buildtools.config import schema
from buildtools.registry.credentials import variable_names
from tests.fixtures.adoption import (
    FIXTURE,
    FRONT_END,
    FRONT_END_OUTPUTS,
    SERVICE_IMAGE,
    STEPS,
    apply_readme,
    ci_environment,
    github_ci_step,
    github_job,
    invoke,
    lara_repo,
    smoke_settings,
    step,
)
from tests.fixtures.bad_input import NO_ENGINE, one_error
from tests.fixtures.cosign_cli import cosign_for
from tests.fixtures.held_images import discard, local_tags
from tests.fixtures.signing import cosign_format, new_ec_key


def test_the_readme_has_every_step():
    assert set(STEPS) == {
        "install",
        "invoke.yaml",
        "Dockerfile, before its FROM",
        "Dockerfile, after ADD . $APP_HOME",
        "Dockerfile, after ENV LARA_IMAGE_VERSION",
        "unicorn on TCP",
        "GitHub Actions build job",
        ".travis.yml",
    }


def test_the_invoke_yaml_holds_only_overrides_and_loads():
    section = yaml.safe_load(step("invoke.yaml"))["buildtools"]
    settings = schema.load(schema.merged(section), FIXTURE)
    assert settings.warnings == ()
    assert settings.release.registries == ("ghcr.io",)
    assert settings.release.branches == ("*",)
    assert settings.sha_prefix == "git-"
    assert settings.nginx.image.dockerfile == schema.SIDECAR_DIR / "Dockerfile"
    (db,) = settings.smoke.services
    assert (db.name, db.image) == ("db", SERVICE_IMAGE)
    restated = [key for key, value in leaves(section) if default_of(key) == value]
    assert restated == [], "the README's invoke.yaml should hold only what differs"


def leaves(section: dict, prefix: str = "") -> list[tuple[str, object]]:
    found = []
    for key, value in section.items():
        path = f"{prefix}{key}"
        found += leaves(value, f"{path}.") if isinstance(value, dict) else [(path, value)]
    return found


def default_of(key: str) -> object:
    value: object = schema.DEFAULTS
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def test_the_github_job_gives_invoke_ci_what_the_config_names():
    """ghcr.io's credentials under the names invoke looks up, from GITHUB_TOKEN; every secret
    smoke.env names bare comes from the step's env."""
    job = github_job()
    assert job["permissions"] == {"contents": "read", "packages": "write"}
    checkout = job["steps"][0]
    assert checkout["uses"].startswith("actions/checkout@") and checkout["with"]["fetch-depth"] == 0
    env = github_ci_step()["env"]
    user_var, pass_var = variable_names("ghcr.io")
    assert env[user_var] == "${{ github.actor }}"
    assert env[pass_var] == "${{ secrets.GITHUB_TOKEN }}"
    bare = {entry for entry in smoke_settings().env if "=" not in entry}
    assert bare == {"RAILS_SECRET_KEY_BASE"}
    assert bare <= set(env)
    # The signing key and its password, as `cosign generate-key-pair github://…` names them,
    # and the extra that signing needs.
    assert env["COSIGN_PRIVATE_KEY"] == "${{ secrets.COSIGN_PRIVATE_KEY }}"
    assert env["COSIGN_PASSWORD"] == "${{ secrets.COSIGN_PASSWORD }}"
    (install,) = [s["run"] for s in job["steps"] if s.get("run", "").startswith("pip install")]
    assert install.startswith('pip install "lara-buildtools[attest] @ git+https://')


def test_no_ci_job_builds_the_front_end_before_the_image():
    """Its output is git-ignored, so a release (built from the commit's tree) would not see it:
    the Dockerfile builds it, and neither CI sets up Node or runs npm."""
    github = yaml.safe_dump(github_job())
    travis = step(".travis.yml")
    for text in (github, travis):
        assert "npm" not in text and "node" not in text.lower(), text
    stage = step("Dockerfile, before its FROM")
    assert stage.startswith("ARG NODE_IMAGE=") and "AS lara-typescript" in stage
    assert "npm ci" in stage and "npm run build:webpack" in stage
    copies = step("Dockerfile, after ADD . $APP_HOME").splitlines()
    assert len(copies) == len(FRONT_END_OUTPUTS)
    for line, output in zip(copies, FRONT_END_OUTPUTS, strict=True):
        assert line.startswith("COPY --from=lara-typescript /lara/")
        assert output.rsplit("/", 1)[0] in line


def test_the_travis_config_releases_to_docker_hub():
    travis = yaml.safe_load(step(".travis.yml"))
    assert travis["script"] == ["invoke ci"] and travis["git"]["depth"] is False
    overrides = dict(entry.split("=", 1) for entry in travis["env"]["global"])
    section = schema.merged(yaml.safe_load(step("invoke.yaml"))["buildtools"])
    section["release"]["registries"] = overrides["INVOKE_BUILDTOOLS_RELEASE_REGISTRIES"]
    section["app"]["repository"] = overrides["INVOKE_BUILDTOOLS_APP_REPOSITORY"]
    section["nginx"]["repository"] = overrides["INVOKE_BUILDTOOLS_NGINX_REPOSITORY"]
    settings = schema.load(section, FIXTURE)
    assert settings.release.registries == ("docker.io",)
    assert settings.app.repository == "concordconsortium/lara"
    assert travis["install"] == [
        'pip install "lara-buildtools[attest] @ git+https://github.com/<you>/lara-buildtools'
        '@<version>"'
    ]


def test_the_travis_signing_key_recipe_gives_buildtools_the_key(tmp_path):
    """The README's `travis encrypt "COSIGN_PRIVATE_KEY=…"` line: what it would encrypt, once
    exported by the shell as Travis does (`export NAME=VALUE`), is a key buildtools loads."""
    password = secrets.token_urlsafe(12)
    (tmp_path / "cosign.key").write_bytes(cosign_format(new_ec_key(), password, n=1024))
    comments = [line.strip() for line in step(".travis.yml").splitlines()]
    (encrypt,) = [c for c in comments if c.startswith('# travis encrypt "COSIGN_PRIVATE_KEY=')]
    assert "# travis encrypt COSIGN_PASSWORD=<the key's password> --add env.global" in comments
    # `travis encrypt ARG --add env.global` encrypts ARG: print it instead.
    command = encrypt.removeprefix("# travis encrypt ").removesuffix(" --add env.global")
    show = subprocess.run(
        ["bash", "-c", f"printf '%s' {command}"], cwd=tmp_path, capture_output=True, text=True
    )
    assert show.returncode == 0 and show.stdout.startswith("COSIGN_PRIVATE_KEY="), show.stderr
    exported = subprocess.run(
        ["bash", "-c", f'export {show.stdout}\nprintf "%s" "$COSIGN_PRIVATE_KEY"'],
        capture_output=True,
        text=True,
    )
    assert exported.returncode == 0, exported.stderr
    key = load_signing_key(
        None, {"COSIGN_PRIVATE_KEY": exported.stdout, "COSIGN_PASSWORD": password}
    )
    assert key is not None and key.source == "$COSIGN_PRIVATE_KEY"


# ---- the fixture, adopted and run as LARA's CI would ----


@pytest.fixture
def service_image(docker_client: docker.DockerClient, mariadb_image: str) -> Iterator[str]:
    """``mariadb:11.2`` as the README names it: the local MariaDB image under that name, unless
    the engine has the real one; the tag is removed afterwards only if this test made it."""
    made = False
    try:
        docker_client.images.get(SERVICE_IMAGE)
    except docker.errors.ImageNotFound:
        repository, _, tag = SERVICE_IMAGE.partition(":")
        made = docker_client.images.get(mariadb_image).tag(repository, tag)
    yield SERVICE_IMAGE
    if made:
        with contextlib.suppress(docker.errors.APIError):
            docker_client.images.remove(SERVICE_IMAGE, noprune=True)


@pytest.fixture
def node_image(docker_client: docker.DockerClient, base_image: str) -> str:
    """The front-end stage's Node image: Debian's nodejs and npm on the local base (built once,
    then cached by the engine), for the ``node`` image Docker Hub would give."""
    return testbed.ensure_service_image(docker_client, "node", base_image)


@pytest.fixture
def image_prefix(docker_client: docker.DockerClient) -> Iterator[str]:
    """A unique repository prefix; every local image under it is untagged afterwards. noprune
    keeps the parent layers: they are the classic builder's cache for the next run."""
    prefix = f"lbtadopt{secrets.token_hex(3)}"
    yield prefix
    for _, ref in local_tags(docker_client):
        if ref.startswith(f"{prefix}/") or f"/{prefix}/" in ref:
            discard(docker_client, ref, prune=False)


@pytest.mark.docker
@pytest.mark.registry
def test_lara_adopts_it_by_the_readme_and_ci_releases(
    docker_client,
    base_image,
    node_image,
    fast_registry,
    service_image,
    image_prefix,
    cosign_keys,
    tmp_path,
):
    repo, git = lara_repo(tmp_path, "lara")
    apply_readme(repo.path, git)
    commit = repo.commit("adopt lara-buildtools")
    # What the old recipe's npm step left in the checkout: git-ignored, so the tree is clean,
    # and a release (built from the commit's tree) must not ship it.
    for output in FRONT_END_OUTPUTS:
        (repo.path / output).parent.mkdir(parents=True, exist_ok=True)
        (repo.path / output).write_text("/* stale: built by npm before the image build */\n")
    assert repo.git("status", "--porcelain") == ""
    private_key, public_key, key_password = cosign_keys

    registry = fast_registry
    app_repo, nginx_repo = f"{image_prefix}/lara", f"{image_prefix}/lara-nginx"
    github = {
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_REF": "refs/heads/master",
        "GITHUB_REF_NAME": "master",
        "GITHUB_REF_TYPE": "branch",
        "GITHUB_SHA": commit,
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "concord-consortium/lara",
        "GITHUB_RUN_ID": "4242",
        "GITHUB_RUN_NUMBER": "42",
    }
    # What cannot be reached here, swapped by the environment only.
    swapped = {
        "INVOKE_BUILDTOOLS_RELEASE_REGISTRIES": registry.host,
        "INVOKE_BUILDTOOLS_APP_REPOSITORY": app_repo,
        "INVOKE_BUILDTOOLS_NGINX_REPOSITORY": nginx_repo,
        "INVOKE_BUILDTOOLS_APP_BASE_IMAGE": base_image,
        "INVOKE_BUILDTOOLS_NGINX_BASE_IMAGE": base_image,
        "INVOKE_BUILDTOOLS_APP_BUILD_ARGS": f"NODE_IMAGE={node_image}",
        "INVOKE_BUILDTOOLS_RELEASE_RETRY_BASE_DELAY": "0.2",
    }
    # The job's own env, its expressions given their values, ghcr.io's names for the registry's.
    values = {
        "${{ github.actor }}": registry.username,
        "${{ secrets.GITHUB_TOKEN }}": registry.password,
        "${{ secrets.RAILS_SECRET_KEY_BASE }}": secrets.token_hex(64),
        "${{ secrets.COSIGN_PRIVATE_KEY }}": private_key.read_text(),
        "${{ secrets.COSIGN_PASSWORD }}": key_password,
    }
    renamed = dict(zip(variable_names("ghcr.io"), variable_names(registry.host), strict=True))
    ci_step = github_ci_step()
    step_env = {renamed.get(k, k): values[v] for k, v in ci_step["env"].items()}
    env = ci_environment(git, {**github, **swapped, **step_env})

    version = invoke(repo, env, "version", "--format", "json")
    assert version.returncode == 0, version.stderr
    info = json.loads(version.stdout)
    assert (info["commit"], info["branch"]) == (commit, "master")

    plan = invoke(repo, env, "build", "--dry-run", "--json")
    assert plan.returncode == 0, plan.stderr
    stage_plan, app_plan, nginx_plan = json.loads(plan.stdout)
    assert (stage_plan["target"], stage_plan["tags"]) == (
        "lara-typescript",
        [f"{app_repo}:cache-lara-typescript-master"],
    )
    assert f"{app_repo}:git-{commit[:7]}" in app_plan["tags"]
    assert nginx_plan["dockerfile"] == str(schema.SIDECAR_DIR / "Dockerfile")

    started = time.monotonic()
    done = subprocess.run(
        ["bash", "-c", ci_step["run"]],
        cwd=repo.path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    seconds = time.monotonic() - started
    log = done.stdout + done.stderr
    assert done.returncode == 0, log
    assert "smoke test passed" in log, log
    summary = [line for line in log.splitlines() if line.startswith(("ci:", "[app] step"))]
    print(f"\ninvoke ci (build, smoke test, release) took {seconds:.0f} s", *summary, sep="\n")

    expected = sorted([f"git-{commit[:7]}", "master", "edge"])
    # The front-end stage goes beside the app, the next runner's cache for npm ci and webpack.
    app_tags = [t for t in registry.tags(app_repo) if not t.startswith("sha256-")]
    assert app_tags == sorted([*expected, "cache-lara-typescript-master"]), log
    nginx_tags = [t for t in registry.tags(nginx_repo) if not t.startswith("sha256-")]
    assert nginx_tags == expected, log

    # Signed with the key from the job's secrets: cosign itself accepts it.
    assert "NOT SIGNED" not in log, log
    cosign = cosign_for(registry, tmp_path / "cosign")
    for repository in (app_repo, nginx_repo):
        verified = cosign.verify(public_key, f"{registry.host}/{repository}:git-{commit[:7]}")
        assert verified.returncode == 0, verified.stderr

    pushed = docker_client.images.pull(
        f"{registry.host}/{app_repo}",
        tag=f"git-{commit[:7]}",
        auth_config={"username": registry.username, "password": registry.password},
    )
    image_env = dict(e.split("=", 1) for e in pushed.attrs["Config"]["Env"])
    assert image_env["LARA_IMAGE_VERSION"] == info["version"]
    assert image_env["LARA_COMMIT"] == commit and image_env["LARA_BRANCH"] == "master"
    assert "3000/tcp" in pushed.attrs["Config"]["ExposedPorts"]
    files = docker_client.containers.run(
        pushed.id,
        [
            "sh",
            "-c",
            "cat config/version.yml; echo ---; cat docker/prod/Procfile; echo ---;"
            " cat public/assets/application-*.js public/assets/application-*.css"
            " public/example-interactives/index.html",
        ],
        remove=True,
        network_mode="none",
    ).decode()
    version_yml, procfile, front_end = files.split("---\n")
    assert yaml.safe_load(version_yml)["commit"] == commit
    assert procfile.strip() == "web: bundle exec unicorn -c docker/prod/unicorn.rb"
    # The front end the Dockerfile built, compiled into the fingerprinted assets, not the stale
    # copy in the checkout.
    assert FRONT_END in front_end and ".lara-typescript-built" in front_end, front_end
    assert "example interactive" in front_end and "stale" not in front_end, front_end


@pytest.mark.parametrize("args", [["build"], ["build", "--dry-run"], ["ci"]])
def test_without_the_metadata_block_the_build_stops_first(tmp_path, args):
    """LARA's Dockerfile without its ARG LARA_VERSION / ENV LARA_IMAGE_VERSION lines: one line
    naming the fix, before any engine call (no engine answers here)."""
    repo, git = lara_repo(tmp_path, "lara")
    apply_readme(repo.path, git)
    path = repo.path / "Dockerfile"
    kept = [
        line
        for line in path.read_text().splitlines(keepends=True)
        if not re.match(r"(ARG|ENV) LARA_|\s+LARA_\w+=|RUN .*LARA_VERSION_YML", line)
    ]
    path.write_text("".join(kept))
    repo.commit("no metadata block")
    env = ci_environment(git, NO_ENGINE)
    error = one_error(invoke(repo, env, *args))
    assert "Dockerfile declares no ARG LARA_VERSION in its last stage" in error
    assert "ARG LARA_VERSION / ENV LARA_IMAGE_VERSION=$LARA_VERSION" in error


def test_the_travis_job_plans_docker_hub_images(tmp_path):
    """The adopted repository under Travis with the README's env.global: a master push plans
    Docker Hub's repositories with LARA's tags (a dry run: no engine answers here)."""
    repo, git = lara_repo(tmp_path, "lara")
    apply_readme(repo.path, git)
    commit = repo.commit("adopt lara-buildtools")
    travis = yaml.safe_load(step(".travis.yml"))
    overrides = dict(entry.split("=", 1) for entry in travis["env"]["global"])
    push = {
        "CI": "true",
        "TRAVIS": "true",
        "TRAVIS_BRANCH": "master",
        "TRAVIS_TAG": "",
        "TRAVIS_PULL_REQUEST": "false",
        "TRAVIS_COMMIT": commit,
        "TRAVIS_EVENT_TYPE": "push",
    }
    env = ci_environment(git, {**push, **overrides, **NO_ENGINE})
    plan = invoke(repo, env, "build", "--dry-run", "--json")
    assert plan.returncode == 0, plan.stderr
    stage_plan, app_plan, nginx_plan = json.loads(plan.stdout)
    assert stage_plan["tags"] == ["concordconsortium/lara:cache-lara-typescript-master"]
    assert f"concordconsortium/lara:git-{commit[:7]}" in app_plan["tags"]
    assert f"concordconsortium/lara-nginx:git-{commit[:7]}" in nginx_plan["tags"]
