"""`invoke release` and the tags a registry already holds: a backport never moves latest, an exact
version is never overwritten unless forced, floating tags move."""

from __future__ import annotations

from collections.abc import Callable

import docker
import docker.errors
import pytest

import testbed
from buildtools.errors import BuildToolsError
from buildtools.facts.buildinfo import BuildInfo
from buildtools.plan import tags
from buildtools.plan.push_order import ReleaseImage
from buildtools.registry.targets import configured, known_versions
from buildtools.release import publish
from tests.fixtures.flaky_proxy import FlakyProxy
from tests.fixtures.publish import (
    AppRelease,
    do_release,
    run_release,
    writes,
)
from tests.fixtures.registry import (
    release_config,
    repos,
    served_digest,
)

pytestmark = [pytest.mark.docker, pytest.mark.registry]


@pytest.fixture
def app(fast_registry: testbed.LocalRegistry, make_image: Callable[..., str]) -> AppRelease:
    return AppRelease(repos()[0], fast_registry, make_image)


# --- tag safety ------------------------------------------------------------------------------


def info_for(
    tag: str, known: tuple[str, ...] = (), commit: str = "c0ffee1" * 5 + "c" * 5
) -> BuildInfo:
    return BuildInfo(version=tag.lstrip("v"), commit=commit, tag=tag, known_versions=known)


def test_a_backport_after_a_higher_release_does_not_move_latest(
    docker_client: docker.DockerClient,
    fast_registry: testbed.LocalRegistry,
    make_image: Callable[..., str],
    app: AppRelease,
) -> None:
    app_repo, env = app.repository, app.login()
    cfg = release_config(fast_registry.host)

    def tagged_release(tag: str, commit: str, image_id: str) -> publish.ReleaseResult:
        found = configured(cfg, env)
        # As in CI: a shallow clone whose git knows no other version tags; the registry does.
        known = known_versions(found, [app_repo])
        policy = tags.choose(info_for(tag, commit=commit), known_versions=known).tags
        images = [ReleaseImage("app", app_repo, image_id)]
        return run_release(docker_client, images, policy, found, cfg)

    tagged_release("v2.0.0", "2000000" * 5 + "2" * 5, make_image("2.0.0"))
    latest_before = served_digest(fast_registry, app_repo, "latest")
    # Without the registry's versions the policy would move latest: the check below matters.
    assert "latest" in [t.name for t in tags.choose(info_for("v1.4.9")).tags]

    backport = tagged_release("v1.4.9", "1409000" * 5 + "1" * 5, make_image("1.4.9"))

    assert [p.tag for p in backport.pushes] == ["1.4.9", "sha-1409000", "1.4", "1"]
    assert [p.action for p in backport.pushes] == ["push"] * 4
    assert served_digest(fast_registry, app_repo, "latest") == latest_before
    assert served_digest(fast_registry, app_repo, "2") == latest_before
    assert served_digest(fast_registry, app_repo, "1") == backport.pushes[0].digest
    assert served_digest(fast_registry, app_repo, "sha-2000000") == latest_before
    assert served_digest(fast_registry, app_repo, "sha-1409000") == backport.pushes[0].digest
    assert fast_registry.tags(app_repo) == [
        "1",
        "1.4",
        "1.4.9",
        "2",
        "2.0",
        "2.0.0",
        "latest",
        "sha-1409000",
        "sha-2000000",
    ]


def test_an_existing_exact_tag_with_other_content_is_refused_unless_forced(
    docker_client: docker.DockerClient,
    fast_registry: testbed.LocalRegistry,
    observed: FlakyProxy,
    app: AppRelease,
) -> None:
    app_repo, env = app.repository, app.login(observed.host)
    tag_list = [("4.0.0", False), ("latest", True)]
    first = app.images("first build")
    do_release(docker_client, first, tag_list, env, observed.host)
    original = served_digest(fast_registry, app_repo, "4.0.0")
    writes_before = len(writes(observed))
    rebuilt = app.images("rebuilt, other content")

    with pytest.raises(BuildToolsError) as failure:
        do_release(docker_client, rebuilt, tag_list, env, observed.host)

    message = str(failure.value)
    assert f"{observed.host}/{app_repo}:4.0.0" in message and "--force" in message
    assert writes(observed)[writes_before:] == []
    assert served_digest(fast_registry, app_repo, "4.0.0") == original
    assert served_digest(fast_registry, app_repo, "latest") == original

    forced = do_release(docker_client, rebuilt, tag_list, env, observed.host, force=True)

    assert [p.action for p in forced.pushes] == ["overwrite", "push"]
    assert forced.pushes[0].previous == original
    assert served_digest(fast_registry, app_repo, "4.0.0") == forced.pushes[0].digest != original
    assert served_digest(fast_registry, app_repo, "latest") == forced.pushes[0].digest


def test_an_existing_sha_tag_is_replaced_without_force_but_an_exact_version_is_not(
    docker_client: docker.DockerClient,
    fast_registry: testbed.LocalRegistry,
    observed: FlakyProxy,
    app: AppRelease,
) -> None:
    app_repo, env = app.repository, app.login(observed.host)
    sha = tags.ImageTag("sha-0123abc", False, "commit 0123abc")
    assert sha.protected is False
    exact = tags.ImageTag("7.1.0", False, "release 7.1.0", protected=True)
    tag_build = [exact, sha, tags.ImageTag("7.1", True, "7.1"), tags.ImageTag("latest", True, "")]
    # The branch build of the commit pushes sha-0123abc first.
    branch_image = app.images("branch build")
    do_release(
        docker_client,
        branch_image,
        [sha, tags.ImageTag("master", True, "branch master")],
        env,
        observed.host,
    )
    branch_digest = served_digest(fast_registry, app_repo, "sha-0123abc")
    assert branch_digest is not None

    # The tag build of the same commit (other metadata, so other content) replaces it.
    tag_image = app.images("tag build")
    result = do_release(docker_client, tag_image, tag_build, env, observed.host)

    assert [(p.tag, p.action) for p in result.pushes] == [
        ("7.1.0", "push"),
        ("sha-0123abc", "overwrite"),
        ("7.1", "push"),
        ("latest", "push"),
    ]
    tag_digest = result.pushes[0].digest
    assert all(p.verified and p.digest == tag_digest for p in result.pushes)
    assert result.pushes[1].previous == branch_digest != tag_digest
    for name in ("7.1.0", "sha-0123abc", "7.1", "latest"):
        assert served_digest(fast_registry, app_repo, name) == tag_digest
    assert served_digest(fast_registry, app_repo, "master") == branch_digest
    writes_before = len(writes(observed))

    # A restarted tag job (another build number, other content): 7.1.0 is protected.
    restarted = app.images("restarted tag build")
    with pytest.raises(BuildToolsError) as failure:
        do_release(docker_client, restarted, tag_build, env, observed.host)

    message = str(failure.value)
    assert f"{observed.host}/{app_repo}:7.1.0" in message and "--force" in message
    assert "sha-0123abc" not in message
    assert writes(observed)[writes_before:] == []
    for name in ("7.1.0", "sha-0123abc", "7.1", "latest"):
        assert served_digest(fast_registry, app_repo, name) == tag_digest
    # A (name, False) pair still counts as protected, as before ImageTag.protected existed.
    cfg = release_config(observed.host)
    with pytest.raises(BuildToolsError) as as_pair:
        run_release(
            None, restarted, [("sha-0123abc", False)], configured(cfg, env), cfg, dry_run=True
        )
    assert f"{observed.host}/{app_repo}:sha-0123abc" in str(as_pair.value)
    assert writes(observed)[writes_before:] == []


def test_floating_tags_move_to_the_new_release_without_force(
    docker_client: docker.DockerClient,
    fast_registry: testbed.LocalRegistry,
    app: AppRelease,
) -> None:
    app_repo, env = app.repository, app.login()
    old = app.images("5.0.0")
    new = app.images("5.0.1")
    do_release(docker_client, old, [("5.0.0", False), ("5.0", True)], env, fast_registry.host)

    result = do_release(
        docker_client, new, [("5.0.1", False), ("5.0", True)], env, fast_registry.host
    )

    assert served_digest(fast_registry, app_repo, "5.0") == result.pushes[0].digest
    assert served_digest(fast_registry, app_repo, "5.0.0") != result.pushes[0].digest
