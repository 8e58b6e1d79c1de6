"""The SBOM of an image in a real registry with a login, made by the real syft of the attest
extra: it lists the image's Debian packages; a missing image or a wrong login is one line
that never shows the password."""

from __future__ import annotations

import dataclasses
import secrets

import docker
import pytest

import testbed
from buildtools.attest import sbom
from buildtools.engine import push
from buildtools.errors import BuildToolsError
from buildtools.registry import targets
from buildtools.registry.credentials import Credentials
from tests.fixtures.held_images import discard
from tests.fixtures.registry import login_env, release_config


@pytest.fixture
def debian_image(
    docker_client: docker.DockerClient, base_image: str, fast_registry: testbed.LocalRegistry
) -> tuple[str, str]:
    """The tests' Debian base (a dpkg database) pushed to the registry: repository, digest."""
    repository = f"lbt{secrets.token_hex(3)}/sbom"
    ref = f"{fast_registry.host}/{repository}"
    docker_client.images.get(base_image).tag(ref, "base")
    try:
        lines = docker_client.images.push(
            ref,
            "base",
            auth_config={"username": fast_registry.username, "password": fast_registry.password},
            stream=True,
            decode=True,
        )
        digest = push.read_push_stream(lines)
    finally:
        discard(docker_client, f"{ref}:base", prune=False)
    return repository, digest


def target_of(reg: testbed.LocalRegistry) -> targets.Target:
    env = login_env(reg.host, reg.username, reg.password)
    return targets.configured(release_config(reg.host), env)[0]


def test_the_sbom_lists_the_images_debian_packages(
    fast_registry: testbed.LocalRegistry, debian_image: tuple[str, str]
) -> None:
    repository, digest = debian_image
    document = sbom.generate(target_of(fast_registry), repository, digest, env={})
    assert document["bomFormat"] == "CycloneDX"
    debs = {
        c["name"]: c for c in document["components"] if c.get("purl", "").startswith("pkg:deb/")
    }
    # Every Debian system has these; the purl names the distribution it came from.
    assert {"base-files", "dpkg", "libc6"} <= set(debs)
    assert "pkg:deb/debian/dpkg@" in debs["dpkg"]["purl"]
    # syft's scan details (file locations, more CPE guesses) are left out: not the packages'.
    assert not [c for c in document["components"] if "properties" in c]
    summary = sbom.summary(document)
    assert summary["components"] >= len(debs) > 50


def test_an_unknown_digest_or_a_wrong_login_is_one_line_without_the_password(
    fast_registry: testbed.LocalRegistry, debian_image: tuple[str, str]
) -> None:
    repository, digest = debian_image
    target = target_of(fast_registry)
    missing = "sha256:" + "0" * 64
    with pytest.raises(BuildToolsError, match=f"syft could not make the SBOM of .*{missing}"):
        sbom.generate(target, repository, missing, env={})
    wrong = Credentials(fast_registry.username, "not-" + secrets.token_hex(8))
    with pytest.raises(BuildToolsError) as raised:
        sbom.generate(dataclasses.replace(target, credentials=wrong), repository, digest, env={})
    assert "\n" not in str(raised.value)
    assert wrong.password not in str(raised.value)
    assert fast_registry.password not in str(raised.value)


def test_the_login_reaches_syft_through_its_environment_never_its_command_line(
    fast_registry: testbed.LocalRegistry,
) -> None:
    target = target_of(fast_registry)
    env = sbom.syft_env(target, {"PATH": "/usr/bin", "DOCKER_PASSWORD": "other-secret"})
    assert env["SYFT_REGISTRY_AUTH_PASSWORD"] == fast_registry.password
    assert env["SYFT_REGISTRY_AUTH_AUTHORITY"] == fast_registry.host
    assert env["SYFT_REGISTRY_INSECURE_USE_HTTP"] == "true"  # a loopback registry is plain http
    assert env["SYFT_CHECK_FOR_APP_UPDATE"] == "false"
    assert "other-secret" not in env.values()  # the release's other secrets stay here
