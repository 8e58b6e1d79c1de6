"""The sidecar image's build context and build args (the Dockerfile is buildtools/sidecar/).

``invoke build`` fills a temporary folder with :func:`sidecar_context` and builds it with
:func:`sidecar_buildargs`; the config files in it are rendered by
:mod:`buildtools.sidecar.nginx_conf`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from buildtools.config.nginx_checks import check_upstream
from buildtools.config.schema import NginxConfig
from buildtools.errors import BuildToolsError
from buildtools.sidecar.nginx_conf import render_config, render_upstream


def sidecar_buildargs(cfg: NginxConfig, app_image_id: str) -> dict[str, str]:
    """Build args for the sidecar Dockerfile: the nginx base, the app image to copy public/ from."""
    if not app_image_id:
        raise BuildToolsError(
            "no app image to copy public/ from", "build the app image first (invoke build)"
        )
    return {
        "BASE_IMAGE": cfg.image.base_image,
        "APP_IMAGE": app_image_id,
        "APP_UPSTREAM": check_upstream(cfg.upstream),
    }


def sidecar_context(cfg: NginxConfig, dest: Path) -> Path:
    """Fill ``dest`` with the sidecar's build context; build it with ``dockerfile="Dockerfile"``.

    Copies ``cfg.image.context`` (the entrypoint) and ``cfg.image.dockerfile``, then writes
    ``nginx.conf`` and ``upstream.conf`` rendered from ``cfg``. Returns ``dest``.
    """
    config_text = render_config(cfg)
    source, dockerfile = cfg.image.context, cfg.image.dockerfile
    if not source.is_dir():
        raise BuildToolsError(
            f"the nginx build context {source} is not a directory",
            "set buildtools.nginx.context to the folder holding docker-entrypoint.sh, or leave "
            "it empty for the packaged one",
        )
    if not dockerfile.is_file():
        raise BuildToolsError(
            f"the nginx Dockerfile {dockerfile} does not exist",
            "set buildtools.nginx.dockerfile, or leave it empty for the packaged one",
        )
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, dest, dirs_exist_ok=True)
    shutil.copyfile(dockerfile, dest / "Dockerfile")
    entrypoint = dest / "docker-entrypoint.sh"
    if not entrypoint.is_file():
        raise BuildToolsError(
            f"{source} has no docker-entrypoint.sh",
            "copy buildtools/sidecar/docker-entrypoint.sh there, or leave buildtools.nginx.context "
            "empty for the packaged one",
        )
    entrypoint.chmod(0o755)
    (dest / "nginx.conf").write_text(config_text)
    (dest / "upstream.conf").write_text(render_upstream(cfg.upstream))
    return dest
