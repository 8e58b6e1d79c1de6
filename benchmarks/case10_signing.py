"""Case 10, signed releases: what signing and attesting (signature, provenance, SBOM, smoke test)
adds to a metadata-only re-release, and to a promotion of a built commit on the wire."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import testbed
from benchmarks.case2_push import release_once
from benchmarks.case8_promotion import TRAVIS_TAG_PUSH, tag_ci
from benchmarks.commands import master_release
from benchmarks.harness import Bench, log
from benchmarks.report import Measure, Row, format_bytes
from buildtools.errors import BuildToolsError

RE_RELEASE_LIMIT = 0.01  # of the first release's bytes
PROMOTION_LIMIT = 96_000  # bytes on the wire per registry


def signing_key(where: Path) -> Path:
    """A fresh ECDSA P-256 key (unencrypted PEM) that signs this run's releases."""
    key = ec.generate_private_key(ec.SECP256R1())
    where.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return where


def re_release(bench: Bench, key: Path, runs: int) -> tuple[list[dict], list[dict]]:
    """Case 2's two releases (commit N, then N+1 with only its metadata changed), signed."""
    first: list[dict[str, Any]] = []
    second: list[dict[str, Any]] = []
    for n in range(runs):
        reg = testbed.LocalRegistry(bench.work / f"registry-10-{n}").start()
        try:
            release = dataclasses.replace(
                bench.settings.release,
                registries=(reg.host,),
                branches=("master",),
                signing_key=key,
            )
            settings = dataclasses.replace(bench.settings, release=release)
            env = {"DOCKER_USERNAME": reg.username, "DOCKER_PASSWORD": reg.password}
            bench.commit(f"signed release {n + 1}")
            first.append(release_once(bench, settings, env, reg))
            bench.commit(f"metadata-only change after signed release {n + 1}")
            second.append(release_once(bench, settings, env, reg))
            log(
                f"10: run {n + 1}/{runs}: signed first release {first[-1]['bytes'] / 1e6:.1f} MB "
                f"in {first[-1]['blobs']} blobs, second {second[-1]['bytes'] / 1e3:.1f} kB in "
                f"{second[-1]['blobs']} blobs"
            )
        finally:
            reg.stop()
            shutil.rmtree(reg.root, ignore_errors=True)
    return first, second


def promotion(bench: Bench, key: Path, runs: int) -> list[dict[str, Any]]:
    """Case 8's promotion of a tag on a released commit, with the master release and the
    promotion signed by ``key``: bytes on the wire both ways."""
    repo = bench.project("sign-project")
    env = {
        "INVOKE_BUILDTOOLS_APP_REPOSITORY": f"{bench.prefix}/signed-app",
        "INVOKE_BUILDTOOLS_NGINX_REPOSITORY": f"{bench.prefix}/signed-nginx",
        "INVOKE_BUILDTOOLS_RELEASE_SIGNING_KEY": str(key),
    }
    seed = testbed.LocalRegistry(bench.work / "registry-10-seed").start()
    try:
        _, seeded, _ = master_release(repo, env, seed)
        bench.built += [image["id"] for image in seeded["images"]]
        if not (seeded.get("released") or {}).get("signatures"):
            raise BuildToolsError("the signed master release signed nothing", "")
    finally:
        seed.stop()
    repo.tag("v1.2.3", annotated=True)
    samples = []
    for n in range(runs):
        found = tag_ci(
            bench, repo, seed.root, {**env, **TRAVIS_TAG_PUSH}, promote=True, label=f"10-{n + 1}"
        )
        if not found["signed"]:
            raise BuildToolsError("the signed promotion signed nothing", "")
        samples.append(found)
        log(
            f"10: promotion run {n + 1}/{runs}: {found['up'] / 1e3:.1f} kB up, "
            f"{found['down'] / 1e3:.1f} kB down, signing sent {found['signed_sent']} B"
        )
    return samples


def case_signing(bench: Bench, runs: int) -> tuple[list[Row], str]:
    key = signing_key(bench.work / "signing.pem")
    first, second = re_release(bench, key, runs)
    promoted = promotion(bench, key, runs)
    source = "the registry's storage: blob files new after the release"
    wire = "a TCP relay in front of the registry (bytes both ways, every connection)"
    rows = [
        Row(
            "10a",
            "Signed re-release: bytes uploaded, second release (metadata only) / first",
            Measure([s["bytes"] for s in second], "B", "the same for commit N+1", source),
            Measure(
                [f["bytes"] for f in first],
                "B",
                "pipeline.release (--no-promote) of commit N, signed: signature, provenance, "
                "SBOM of both images",
                source,
            ),
            f"≤ {RE_RELEASE_LIMIT:.0%} of the first",
            all(
                s["bytes"] <= RE_RELEASE_LIMIT * f["bytes"]
                for s, f in zip(second, first, strict=True)
            ),
            note="second release, per run: "
            + "; ".join(f"{format_bytes(s['bytes'])} in {s['blobs']} blobs" for s in second),
        ),
        Row(
            "10b",
            "Signed promotion of a built commit: bytes on the wire both ways, one registry",
            Measure(
                [s["up"] + s["down"] for s in promoted],
                "B",
                "invoke ci --json (Travis build of tag v1.2.3), signing key set: promotion, "
                "proof checked, promoted digests signed and attested",
                wire,
            ),
            None,
            f"≤ {PROMOTION_LIMIT / 1000:.0f} kB per registry",
            all(s["up"] + s["down"] <= PROMOTION_LIMIT for s in promoted),
            note="per run: "
            + "; ".join(
                f"{format_bytes(s['up'])} up, {format_bytes(s['down'])} down, of which signing "
                f"sent {format_bytes(s['signed_sent'])} and the promotion "
                f"{format_bytes(s['promoted_sent'])}"
                for s in promoted
            ),
        ),
    ]
    note = (
        "10a: case 2's two releases with buildtools.release.signing_key set (a fresh P-256 "
        "key): each release signs both images' digest and attaches SLSA provenance and the "
        "CycloneDX SBOM (syft, read from the registry), counted in the registry's storage. "
        "10b: case 8's promotion with the key set for the master release (`invoke ci`: signed, "
        "SBOM and smoke test attested) and for the tag's `invoke ci`, which checks the sha- "
        "images' proof (signature, smoke test, provenance naming the commit) before it promotes "
        f"and then signs the promoted digests, carrying the proof over. {runs} run(s) each."
    )
    return rows, note
