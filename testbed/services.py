"""Service images the example's smoke test needs, built from this folder on the local base."""

from __future__ import annotations

from pathlib import Path

import docker
import docker.errors

from buildtools.errors import BuildToolsError

# Each service is a folder beside this module: testbed/<name>/Dockerfile.
SERVICES_DIR = Path(__file__).resolve().parent
SERVICE_REPOSITORY = "lara-buildtools"


def ensure_service_image(client: docker.DockerClient, name: str, base: str) -> str:
    """A service image the example's smoke test needs (``mariadb``), built from
    ``testbed/<name>`` on the local base; cached by the engine, so cheap once built. An image
    of that tag carried over from another engine (docker save/load, e.g. onto a test's remote
    engine) is a cache source too: a loaded image alone is no cache to the classic builder."""
    context = SERVICES_DIR / name
    if not (context / "Dockerfile").is_file():
        raise BuildToolsError(
            f"no service {name!r} in {SERVICES_DIR}", f"add {SERVICES_DIR / name / 'Dockerfile'}"
        )
    ref = f"{SERVICE_REPOSITORY}/{name}:latest"
    try:
        client.images.get(ref)
        cache_from = [ref]
    except docker.errors.ImageNotFound:
        cache_from = []
    try:
        client.images.build(
            path=str(context),
            tag=ref,
            buildargs={"BASE_IMAGE": base},
            cache_from=cache_from,
            rm=True,
            forcerm=True,
        )
    except (docker.errors.BuildError, docker.errors.APIError) as exc:
        reason = str(getattr(exc, "msg", None) or exc).splitlines()[-1][:200]
        raise BuildToolsError(
            f"building the {name} service image failed: {reason}",
            f"docker build testbed/{name} by hand to see the whole log",
        ) from None
    return ref
