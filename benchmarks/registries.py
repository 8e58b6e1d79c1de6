"""What a registry holds, read from its storage and its API: blob files, manifests and each
layer's size and build step (cases 2, 5 and 6)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests

import testbed
from buildtools.errors import BuildToolsError
from buildtools.plan.manifests import DOCKER_MANIFEST


def registry_blobs(root: Path) -> dict[str, int]:
    """Every blob a filesystem registry stores (layers, configs, manifests): digest → bytes."""
    blobs = root / "data" / "docker" / "registry" / "v2" / "blobs"
    return {
        f"sha256:{data.parent.name}": data.stat().st_size
        for data in blobs.glob("sha256/*/*/data")
        if data.is_file()
    }


def manifest_digests(root: Path) -> set[str]:
    repos = root / "data" / "docker" / "registry" / "v2" / "repositories"
    return {f"sha256:{p.name}" for p in repos.glob("**/_manifests/revisions/sha256/*")}


@dataclasses.dataclass(frozen=True)
class Layer:
    """One layer as a registry stores it: its compressed size and the step that made it."""

    digest: str
    size: int
    created_by: str = ""


def manifest_layers(manifest: dict[str, Any], config: dict[str, Any]) -> list[Layer]:
    """A schema 2 manifest's layers, each with its build step: the image config's history
    entries that are not ``empty_layer`` are the layers, in the same order."""
    layers = manifest.get("layers") or []
    steps = [
        str(h.get("created_by", ""))
        for h in config.get("history") or []
        if not h.get("empty_layer")
    ]
    if len(steps) != len(layers):  # an image without history: sizes still count
        steps = [""] * len(layers)
    return [
        Layer(str(layer["digest"]), int(layer["size"]), step)
        for layer, step in zip(layers, steps, strict=True)
    ]


def history_step(created_by: str) -> str:
    """A history entry as the Dockerfile instruction it came from (the classic builder records
    ``/bin/sh -c #(nop) COPY …`` for instructions and ``/bin/sh -c …`` for RUN)."""
    shell = "/bin/sh -c "
    if shell not in created_by:
        return created_by
    command = created_by.split(shell, 1)[1]
    return (
        command.removeprefix("#(nop) ").strip()
        if command.startswith("#(nop)")
        else f"RUN {command}"
    )


def own_layers(image: list[Layer], *others: list[Layer]) -> list[Layer]:
    """The image's layers that none of ``others`` has: what a host holding those must pull."""
    have = {layer.digest for other in others for layer in other}
    return [layer for layer in image if layer.digest not in have]


def distinct_bytes(*image_layers: list[Layer]) -> int:
    """Compressed bytes of the distinct layers of these images (a shared layer counts once)."""
    return sum({layer.digest: layer.size for group in image_layers for layer in group}.values())


def registry_layers(reg: testbed.LocalRegistry, repository: str, tag: str) -> list[Layer]:
    """The layers of ``repository:tag`` read from the registry's manifest and image config."""
    auth = (reg.username, reg.password)
    resp = requests.get(
        f"{reg.url}/v2/{repository}/manifests/{tag}",
        headers={"Accept": DOCKER_MANIFEST},
        auth=auth,
        timeout=30,
    )
    resp.raise_for_status()
    manifest = resp.json()
    config = requests.get(
        f"{reg.url}/v2/{repository}/blobs/{manifest['config']['digest']}", auth=auth, timeout=30
    )
    config.raise_for_status()
    return manifest_layers(manifest, config.json())


def push_image(
    client: docker.DockerClient, image: str, reg: testbed.LocalRegistry, repository: str, tag: str
) -> None:
    """Tag ``image`` into the registry and push it, reading the stream to the end for errors."""
    ref = f"{reg.host}/{repository}"
    client.api.tag(image, ref, tag)
    auth = {"username": reg.username, "password": reg.password}
    for line in client.api.push(ref, tag=tag, stream=True, decode=True, auth_config=auth):
        if "error" in line or "errorDetail" in line:
            raise BuildToolsError(f"push of {ref}:{tag} failed: {line.get('error')}", "")
