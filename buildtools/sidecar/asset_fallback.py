"""The engine edge of ``asset_fallback: auto``: read the built app image's files and ENV once.

The decision itself is :func:`buildtools.sidecar.rails_assets.asset_fallback_for`, a pure function.
"""

from __future__ import annotations

import dataclasses
import io
import tarfile

import docker
import docker.errors

from buildtools.config.nginx_checks import check_asset_fallback
from buildtools.config.schema import NginxConfig
from buildtools.sidecar.rails_assets import APP_FILES, APP_HOME, asset_fallback_for


def read_app_files(client: docker.DockerClient, image: str) -> dict[str, str]:
    """The APP_FILES the app image has, by path relative to /lara; the container never starts."""
    container = client.containers.create(image, command=["true"], entrypoint=[])
    files: dict[str, str] = {}
    try:
        for path in APP_FILES:
            try:
                chunks, _ = container.get_archive(f"{APP_HOME}/{path}")
            except docker.errors.NotFound:
                continue
            with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
                member = tar.next()
                handle = tar.extractfile(member) if member else None
                if handle is not None:
                    files[path] = handle.read().decode(errors="replace")
    finally:
        container.remove(force=True)
    return files


def image_env(client: docker.DockerClient, image: str) -> dict[str, str]:
    """The image's ENV as a mapping."""
    pairs = client.images.get(image).attrs["Config"].get("Env") or []
    return dict(pair.partition("=")[::2] for pair in pairs)


def resolve_asset_fallback(
    cfg: NginxConfig, client: docker.DockerClient, app_image: str
) -> NginxConfig:
    """``cfg`` with ``asset_fallback: auto`` replaced by what the app image can do."""
    if check_asset_fallback(cfg.asset_fallback) != "auto":
        return cfg
    decided = asset_fallback_for(read_app_files(client, app_image), image_env(client, app_image))
    return dataclasses.replace(cfg, asset_fallback=decided)
