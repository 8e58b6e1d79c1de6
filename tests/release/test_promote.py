"""Promotion against the real htpasswd registry, with no Docker Engine: `invoke release` of a
tag on a commit whose ``sha-`` images the registry holds (made here through the registry API,
with the labels and ENV a master build of that commit gives) puts them under the release tags.
skopeo, a client that is not ours, reads what was put."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import signal
import subprocess
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import testbed
from buildtools.registry.credentials import variable_names
from tests.fixtures import invoke_cli
from tests.fixtures.flaky_proxy import FlakyProxy
from tests.fixtures.git import GitRepo
from tests.fixtures.registry import login_env, repos
from tests.fixtures.registry_images import (
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    RegistryWriter,
    sha,
    skopeo_inspect,
)

ROOT = Path(__file__).resolve().parents[2]
INVOKE = ROOT / ".venv" / "bin" / "invoke"
RELEASE_TAGS = ["1.2.3", "1.2", "1", "latest"]


def invoke_env(repo: GitRepo, env: dict[str, str]) -> dict[str, str]:
    """The environment of an ``invoke`` for ``repo``, with no Docker Engine to talk to."""
    base = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    return {
        **base,
        "INVOKE_BUILDTOOLS_REPO": str(repo.path),
        "DOCKER_HOST": "unix:///nonexistent/docker.sock",  # no engine here
        **env,
    }


def invoke(
    repo: GitRepo, env: dict[str, str], *args: str, real_cli: bool = False
) -> subprocess.CompletedProcess[str]:
    """``invoke …`` in this project for ``repo``, with no Docker Engine to talk to: in this
    process (tests/fixtures/invoke_cli.py says what that keeps), or as the console script."""
    return invoke_cli.run(args, ROOT, invoke_env(repo, env), real_cli=real_cli)


def build_plan(repo: GitRepo, env: dict[str, str]) -> dict[str, Any]:
    """What `invoke build` would give the app image of the checked-out commit."""
    done = invoke(repo, env, "build", "--dry-run", "--json", "--only", "app")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)[-1]


def env_of(buildargs: dict[str, str]) -> list[str]:
    """The ENV the project's Dockerfile sets from those build args (its metadata block)."""
    names = ("LARA_BRANCH", "LARA_TAG", "LARA_COMMIT", "LARA_BUILD_DATE", "LARA_BUILD_URL")
    return [
        "PATH=/usr/local/bin:/usr/bin:/bin",
        "RAILS_ENV=production",
        f"LARA_VERSION={buildargs['LARA_VERSION']}",
        f"LARA_IMAGE_VERSION={buildargs['LARA_VERSION']}",
        *(f"{name}={buildargs[name]}" for name in names),
    ]


@pytest.fixture
def setup(registry: testbed.LocalRegistry, repo: GitRepo) -> dict[str, Any]:
    """A commit master built and released (its sha- images in the registry, as the master
    build labelled them), then tagged v1.2.3."""
    app_repo, nginx_repo = repos()
    env = {
        "INVOKE_BUILDTOOLS_APP_REPOSITORY": app_repo,
        "INVOKE_BUILDTOOLS_NGINX_REPOSITORY": nginx_repo,
        "INVOKE_BUILDTOOLS_RELEASE_REGISTRIES": registry.host,
        "INVOKE_BUILDTOOLS_RELEASE_RETRY_BASE_DELAY": "0.01",
        **login_env(registry.host, registry.username, registry.password),
    }
    master = build_plan(repo, env)
    commit = repo.head()
    repo.tag("v1.2.3", annotated=True)
    return {
        "env": env,
        "app": app_repo,
        "nginx": nginx_repo,
        "commit": commit,
        "sha": f"sha-{commit[:7]}",
        "master": master,
        "writer": RegistryWriter(registry),
    }


def layer_files(data: bytes) -> dict[str, tuple[bytes, int, int, int]]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as tar:
        return {
            m.name: (tar.extractfile(m).read(), m.mode, m.uid, m.gid)  # type: ignore[union-attr]
            for m in tar.getmembers()
        }


@pytest.mark.parametrize("kind", [DOCKER_MANIFEST, OCI_MANIFEST])
def test_release_of_a_tag_promotes_the_tested_images_without_an_engine(
    registry: testbed.LocalRegistry,
    repo: GitRepo,
    setup: dict[str, Any],
    tmp_path: Path,
    kind: str,
) -> None:
    writer: RegistryWriter = setup["writer"]
    master = setup["master"]
    sources = {}
    for name in ("app", "nginx"):
        sources[name] = writer.image(
            setup[name], master["labels"], env_of(master["buildargs"]), kind, tag=setup["sha"]
        )

    done = invoke(repo, setup["env"], "release", real_cli=True)  # the console script itself

    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and registry.password not in done.stdout + done.stderr
    tagged = build_plan(repo, setup["env"])  # what `invoke build` gives at v1.2.3
    version_yml = invoke(repo, setup["env"], "version", "--format", "yaml").stdout
    for name in ("app", "nginx"):
        repository = setup[name]
        source_body, source_digest = sources[name]
        assert f"{repository}:{setup['sha']} {source_digest}" in done.stdout
        assert sorted(registry.tags(repository)) == sorted([*RELEASE_TAGS, setup["sha"]])
        assert writer.read(repository, setup["sha"])[1] == source_digest  # sha- stays tested
        digests = set()
        for tag in RELEASE_TAGS:
            body, digest = writer.read(repository, tag)
            digests.add(digest)
            (row,) = [line for line in done.stdout.splitlines() if f" {repository}:{tag} " in line]
            assert row.split()[0] == "pushed" and row.split()[-1] == digest
            # The progress line counts what that tag's PUT sent: its manifest.
            size = f"{len(body)} B" if len(body) < 1000 else f"{len(body) / 1000:.1f} kB"
            assert f"  {tag}: {digest} ({size} sent, verified)" in done.stderr
            seen = skopeo_inspect(registry, f"{repository}:{tag}", tmp_path)
            assert seen["Digest"] == digest
            assert seen["Labels"] == tagged["labels"]
        assert len(digests) == 1
        manifest = json.loads(body)
        source = json.loads(source_body)
        assert manifest["mediaType"] == kind
        config = json.loads(writer.read_blob(repository, manifest["config"]["digest"]))
        assert config["config"]["Labels"] == tagged["labels"]
        if name == "nginx":
            assert manifest["layers"] == source["layers"]
            continue
        assert manifest["layers"][:-1] == source["layers"]
        assert manifest["layers"][-1]["mediaType"] == source["layers"][0]["mediaType"]
        assert config["config"]["Env"] == env_of(tagged["buildargs"])
        added = writer.read_blob(repository, manifest["layers"][-1]["digest"])
        assert config["rootfs"]["diff_ids"][-1] == sha(gzip.decompress(added))
        assert layer_files(added) == {
            "lara/config/version.yml": (version_yml.encode(), 0o644, 0, 0)
        }
        assert "tag: v1.2.3" in version_yml

    # Again, as JSON: everything is in place, nothing is put.
    again = invoke(repo, setup["env"], "release", "--json")
    assert again.returncode == 0, again.stderr
    result = json.loads(again.stdout)
    assert result["pushed"] == 0 and result["unchanged"] == 8
    assert {p["source_digest"] for p in result["promoted"]} == {
        sources["app"][1],
        sources["nginx"][1],
    }


def test_an_index_is_promoted_without_its_attestation(
    registry: testbed.LocalRegistry, repo: GitRepo, setup: dict[str, Any], tmp_path: Path
) -> None:
    writer: RegistryWriter = setup["writer"]
    master = setup["master"]
    for name in ("app", "nginx"):
        writer.index_with_attestation(
            setup[name], setup["sha"], master["labels"], env_of(master["buildargs"])
        )

    done = invoke(repo, setup["env"], "release", "--json")

    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert any("dropped 1 attestation manifest" in line for line in result["warnings"])
    tagged = build_plan(repo, setup["env"])
    for name in ("app", "nginx"):
        repository = setup[name]
        body, digest = writer.read(repository, "1.2.3")
        assert sha(body) == digest
        assert {p["digest"] for p in result["pushes"] if p["repository"] == repository} == {digest}
        raw = skopeo_inspect(registry, f"{repository}:1.2.3", tmp_path, raw=True)
        assert raw["mediaType"] == OCI_INDEX
        (entry,) = raw["manifests"]  # the attestation is gone
        assert entry["platform"] == {"architecture": "amd64", "os": "linux"}
        seen = skopeo_inspect(registry, f"{repository}:1.2.3", tmp_path)
        assert seen["Labels"] == tagged["labels"]


def test_an_image_no_engine_runs_falls_back_to_building(
    registry: testbed.LocalRegistry, repo: GitRepo, setup: dict[str, Any]
) -> None:
    writer: RegistryWriter = setup["writer"]
    master = setup["master"]
    writer.image(setup["app"], master["labels"], env_of(master["buildargs"]), tag=setup["sha"])
    writer.artifact(setup["nginx"], setup["sha"], master["labels"])

    done = invoke(repo, setup["env"], "release")

    line = (
        f"not promoting: {registry.host}/{setup['nginx']}:{setup['sha']}: its "
        f"{OCI_MANIFEST} manifest has a config of type application/vnd.cncf.helm.config.v1+json"
    )
    assert line in done.stderr
    # The fallback builds, which needs the engine this machine does not have here.
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "Docker" in done.stderr
    assert sorted(registry.tags(setup["app"])) == [setup["sha"]]


def test_an_image_of_another_commit_is_never_promoted(
    registry: testbed.LocalRegistry, repo: GitRepo, setup: dict[str, Any]
) -> None:
    writer: RegistryWriter = setup["writer"]
    master = setup["master"]
    other = {**master["labels"], "org.opencontainers.image.revision": "f" * 40}
    for name in ("app", "nginx"):
        writer.image(setup[name], other, env_of(master["buildargs"]), tag=setup["sha"])

    done = invoke(repo, setup["env"], "release")

    assert (
        f"{setup['app']}:{setup['sha']} is not this commit's tested image: built from commit "
        "fffffff" in done.stderr
    )
    assert done.returncode != 0
    assert sorted(registry.tags(setup["app"])) == [setup["sha"]]


def test_no_promote_builds(
    registry: testbed.LocalRegistry, repo: GitRepo, setup: dict[str, Any]
) -> None:
    writer: RegistryWriter = setup["writer"]
    master = setup["master"]
    for name in ("app", "nginx"):
        writer.image(setup[name], master["labels"], env_of(master["buildargs"]), tag=setup["sha"])

    done = invoke(repo, setup["env"], "release", "--no-promote")

    assert done.returncode != 0 and "not promoting" not in done.stderr  # it went to the engine
    assert sorted(registry.tags(setup["app"])) == [setup["sha"]]


def test_a_dry_run_says_what_it_would_promote_and_puts_nothing(
    registry: testbed.LocalRegistry, repo: GitRepo, setup: dict[str, Any]
) -> None:
    writer: RegistryWriter = setup["writer"]
    master = setup["master"]
    digest = ""
    for name in ("app", "nginx"):
        _, digest = writer.image(
            setup[name], master["labels"], env_of(master["buildargs"]), tag=setup["sha"]
        )

    done = invoke(repo, setup["env"], "release", "--dry-run")

    assert done.returncode == 0, done.stderr
    assert f"would promote {registry.host} {setup['nginx']}:{setup['sha']} {digest}" in (
        done.stdout
    )
    # Where the login goes, before anything is put (#27 item 2): htpasswd, so the registry.
    user_var, pass_var = variable_names(registry.host)
    assert (
        f"credentials for {registry.host} ({user_var}/{pass_var}) go to "
        f"http://{registry.host} (Basic auth, every request)"
    ) in done.stdout.splitlines()
    # 27.16: every column of the table is named; the digest is what the tag points at now.
    lines = done.stdout.splitlines()
    header = next(line for line in lines if line.startswith("ACTION"))
    assert header.split() == ["ACTION", "REGISTRY", "REPOSITORY:TAG", "KIND", "DIGEST", "NOW"]
    row = next(line for line in lines if f" {setup['app']}:1.2.3 " in line)
    assert row.split()[0::4] == ["would", "immutable"] and row.split()[-1] == "none"
    assert sorted(registry.tags(setup["app"])) == [setup["sha"]]


@pytest.mark.parametrize(
    "value, expected", [("never", ""), ("off", ""), ("sometimes", "auto or never")]
)
def test_release_promote_never_builds_and_a_bad_value_is_one_line(
    registry: testbed.LocalRegistry,
    repo: GitRepo,
    setup: dict[str, Any],
    value: str,
    expected: str,
) -> None:
    writer: RegistryWriter = setup["writer"]
    master = setup["master"]
    for name in ("app", "nginx"):
        writer.image(setup[name], master["labels"], env_of(master["buildargs"]), tag=setup["sha"])

    done = invoke(repo, {**setup["env"], "INVOKE_BUILDTOOLS_RELEASE_PROMOTE": value}, "release")

    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "not promoting" not in done.stderr and expected in done.stderr
    assert sorted(registry.tags(setup["app"])) == [setup["sha"]]


SMOKE_LABEL = "org.concord.lara.build.smoke-test"


def travis_tag(setup: dict[str, Any]) -> dict[str, str]:
    """A Travis tag build of v1.2.3 at the setup's commit."""
    return {
        **setup["env"],
        "CI": "true",
        "TRAVIS": "true",
        "TRAVIS_PULL_REQUEST": "false",
        "TRAVIS_EVENT_TYPE": "push",
        "TRAVIS_BRANCH": "v1.2.3",
        "TRAVIS_TAG": "v1.2.3",
        "TRAVIS_COMMIT": setup["commit"],
    }


def test_ci_promotes_only_images_pushed_after_a_smoke_test(
    registry: testbed.LocalRegistry, repo: GitRepo, setup: dict[str, Any]
) -> None:
    """`invoke release` (or `invoke ci --no-smoke`) pushed the sha- images without a smoke
    test: `invoke ci` of the tag does not promote them as tested; it says so and builds."""
    writer: RegistryWriter = setup["writer"]
    master = setup["master"]
    untested = {**master["labels"], SMOKE_LABEL: "none"}
    for name in ("app", "nginx"):
        writer.image(setup[name], untested, env_of(master["buildargs"]), tag=setup["sha"])

    done = invoke(repo, travis_tag(setup), "ci")

    line = (
        f"ci: not promoting: {registry.host}/{setup['app']}:{setup['sha']} was pushed "
        "without a smoke test; building"
    )
    assert line in done.stdout, done.stdout + done.stderr
    assert ": build, smoke test, release (" in done.stdout.splitlines()[0]
    assert "ci: promoted" not in done.stdout
    # Building needs the engine this machine does not have here.
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert sorted(registry.tags(setup["app"])) == [setup["sha"]]


def test_ci_promotes_images_pushed_after_a_smoke_test_and_they_keep_saying_so(
    registry: testbed.LocalRegistry, repo: GitRepo, setup: dict[str, Any], tmp_path: Path
) -> None:
    writer: RegistryWriter = setup["writer"]
    master = setup["master"]
    tested = {**master["labels"], SMOKE_LABEL: "passed-before-push"}
    for name in ("app", "nginx"):
        writer.image(setup[name], tested, env_of(master["buildargs"]), tag=setup["sha"])

    done = invoke(repo, travis_tag(setup), "ci")

    assert done.returncode == 0, done.stdout + done.stderr
    # 14: the first line says what the run does: it announced a build before it promoted.
    first = done.stdout.splitlines()[0]
    assert first.startswith("ci: travis build of tag v1.2.3 at "), done.stdout
    assert ": promote this commit's tested images (nothing to build), release (" in first
    assert "build, smoke test" not in done.stdout
    assert "no smoke test here (invoke ci smoke-tested them before it pushed" in done.stdout
    for name in ("app", "nginx"):
        seen = skopeo_inspect(registry, f"{setup[name]}:1.2.3", tmp_path)
        assert seen["Labels"][SMOKE_LABEL] == "passed-before-push"
        assert seen["Labels"]["org.opencontainers.image.version"] == "1.2.3"


def behind(proxy: FlakyProxy, setup: dict[str, Any], registry: testbed.LocalRegistry):
    """The setup's environment with the registry reached through ``proxy``."""
    env = {k: v for k, v in setup["env"].items() if not k.startswith("DOCKER_")}
    return {
        **env,
        "INVOKE_BUILDTOOLS_RELEASE_REGISTRIES": proxy.host,
        **login_env(proxy.host, registry.username, registry.password),
    }


def test_a_put_answered_with_another_digest_fails_before_any_floating_tag(
    registry: testbed.LocalRegistry, repo: GitRepo, setup: dict[str, Any]
) -> None:
    """Something between here and the registry acknowledges the app's 1.2.3 manifest under
    another digest (and stores nothing): the promotion stops there, `latest` never moves."""
    writer: RegistryWriter = setup["writer"]
    master = setup["master"]
    for name in ("app", "nginx"):
        writer.image(setup[name], master["labels"], env_of(master["buildargs"]), tag=setup["sha"])
    stale = "sha256:" + "0" * 64
    proxy = FlakyProxy(
        registry.host,
        failures=1,
        status=201,
        match=lambda method, path, agent: method == "PUT" and path.endswith("/manifests/1.2.3"),
        headers={"Docker-Content-Digest": stale},
    ).start()
    try:
        done = invoke(repo, behind(proxy, setup, registry), "release")
    finally:
        proxy.stop()

    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert f"verification failed for {proxy.host}/" in done.stderr
    assert f"the registry stored the manifest as {stale}, not sha256:" in done.stderr
    assert "no floating tag was moved" in done.stderr
    for name in ("app", "nginx"):
        assert "latest" not in registry.tags(setup[name])


@pytest.mark.parametrize("lie", ["child manifest", "config blob"])
def test_bytes_that_are_not_their_digest_stop_the_promotion(
    registry: testbed.LocalRegistry, repo: GitRepo, setup: dict[str, Any], lie: str
) -> None:
    """Promotion reads an index's child manifests and the image configs by digest: something
    between here and the registry serves other bytes for one (#27 item 3). The release stops
    with one line naming the registry and what it served, and puts no tag."""
    writer: RegistryWriter = setup["writer"]
    master = setup["master"]
    for name in ("app", "nginx"):
        writer.index_with_attestation(
            setup[name], setup["sha"], master["labels"], env_of(master["buildargs"])
        )
    app = setup["app"]
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
        done = invoke(repo, behind(proxy, setup, registry), "release")
    finally:
        proxy.stop()

    assert done.returncode != 0 and "Traceback" not in done.stderr
    kind = "manifest" if lie == "child manifest" else "blob"
    assert f"registry {proxy.host} served {kind} {app}@sha256:" in done.stderr
    assert f"with bytes of digest {sha(other)}, not sha256:" in done.stderr
    assert len(proxy.failed) == 1
    for name in ("app", "nginx"):
        assert registry.tags(setup[name]) == [setup["sha"]]


def test_one_read_back_per_repository_and_a_stale_one_fails(
    registry: testbed.LocalRegistry, repo: GitRepo, setup: dict[str, Any]
) -> None:
    """Each tag's PUT answer names the digest of the bytes sent; then the last tag put in each
    repository (`latest`) is read back. A cache serving an old digest for it fails the release."""
    writer: RegistryWriter = setup["writer"]
    master = setup["master"]
    for name in ("app", "nginx"):
        writer.image(setup[name], master["labels"], env_of(master["buildargs"]), tag=setup["sha"])
    stale = "sha256:" + "0" * 64
    proxy = FlakyProxy(
        registry.host,
        failures=1,
        status=200,
        match=lambda method, path, agent: method == "HEAD" and path.endswith("/manifests/latest"),
        headers={"Docker-Content-Digest": stale},
    ).start()
    try:
        failed = invoke(repo, behind(proxy, setup, registry), "release")
        proxy.seen.clear()
        again = invoke(repo, behind(proxy, setup, registry), "release")
    finally:
        proxy.stop()

    assert failed.returncode != 0 and "Traceback" not in failed.stderr
    assert f"verification failed for {proxy.host}/{setup['app']}:latest" in failed.stderr
    assert f"registry serves {stale}" in failed.stderr
    # Run again (the proxy now forwards): it finishes nginx's floating tags, and of the tags
    # it puts reads back only the last (the HEADs before the first PUT are the survey's).
    assert again.returncode == 0, again.stderr
    manifests = [(s.method, s.path) for s in proxy.seen if "/manifests/" in s.path]
    first_put = next(i for i, (method, _) in enumerate(manifests) if method == "PUT")
    nginx = f"/v2/{setup['nginx']}/manifests/"
    assert manifests[first_put:] == [
        ("PUT", nginx + "1.2"),
        ("PUT", nginx + "1"),
        ("PUT", nginx + "latest"),
        ("HEAD", nginx + "latest"),
    ]


def test_a_promotion_stopped_by_sigterm_says_what_was_left_and_a_rerun_finishes(
    registry: testbed.LocalRegistry, repo: GitRepo, setup: dict[str, Any]
) -> None:
    """A CI cancels a job with SIGTERM. Between the exact tags, it ends the promotion as Ctrl-C
    does: exit 130, one line saying what was put, no floating tag moved; a re-run finishes.
    The proxy makes each manifest PUT slow, so the signal lands between two of them."""
    writer: RegistryWriter = setup["writer"]
    master = setup["master"]
    for name in ("app", "nginx"):
        writer.image(setup[name], master["labels"], env_of(master["buildargs"]), tag=setup["sha"])

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
            env=invoke_env(repo, behind(proxy, setup, registry)),
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
        assert set(registry.tags(setup[name])) <= {setup["sha"], "1.2.3"}
    again = invoke(repo, setup["env"], "release")
    assert again.returncode == 0, again.stderr
    for name in ("app", "nginx"):
        assert sorted(registry.tags(setup[name])) == sorted([*RELEASE_TAGS, setup["sha"]])


def test_a_promotion_run_again_is_a_no_op_that_says_so(
    registry: testbed.LocalRegistry, repo: GitRepo, setup: dict[str, Any]
) -> None:
    """27.15: a restarted release (or CI job) of a tag already promoted moves nothing, exits 0
    and says so; it never advises deleting a tag."""
    writer: RegistryWriter = setup["writer"]
    master = setup["master"]
    for name in ("app", "nginx"):
        writer.image(setup[name], master["labels"], env_of(master["buildargs"]), tag=setup["sha"])
    first = invoke(repo, setup["env"], "release")
    assert first.returncode == 0, first.stderr
    served = {t: writer.read(setup["app"], t)[1] for t in registry.tags(setup["app"])}

    again = invoke(repo, setup["env"], "release")

    assert again.returncode == 0, again.stderr
    assert "every tag already points at this release's images: nothing to push" in again.stderr
    assert "delete" not in again.stdout + again.stderr
    assert {t: writer.read(setup["app"], t)[1] for t in registry.tags(setup["app"])} == served


def test_an_image_that_already_says_what_the_release_writes_is_released_as_it_is() -> None:
    """Hostile pass: `invoke release` run again on a branch rewrote the branch build's own
    sha- image (a new version.yml layer: a new digest) and moved `main` to it. An image whose
    labels already say everything the release writes is its release: same manifest, same
    digest; any label that differs still means a rewrite."""
    from buildtools.plan.manifest_rewrite import Changes, SourceImage
    from buildtools.release.promote import already_released

    labels = {"org.opencontainers.image.version": "0.1.0-main.1", "org.x.tags": "main"}
    config = json.dumps({"config": {"Labels": labels}}).encode()
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    manifest = json.dumps({"config": {"digest": config_digest}, "layers": []}).encode()
    source = SourceImage(manifest, DOCKER_MANIFEST, configs={config_digest: config})

    same = already_released(source, Changes(labels=dict(labels)))
    assert same is not None
    assert (same.digest, same.manifest, same.blobs) == (source.digest, manifest, ())
    assert same.image_id == config_digest
    other = {**labels, "org.opencontainers.image.version": "1.0.0"}
    assert already_released(source, Changes(labels=other)) is None
