"""The one place that connects to the Docker Engine and makes sure an image is on it, so every
task fails the same way."""

from __future__ import annotations

import os
from typing import Any

import docker
import docker.errors
import requests

from buildtools.errors import BuildToolsError


class _CertPathAPIClient(docker.APIClient):
    """docker-py's API client, verifying a TLS engine with DOCKER_CERT_PATH's CA only, as the
    Docker CLI does. requests lets ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` (set by many CI
    images and corporate machines for their proxies) replace the session's CA on every call,
    and the engine's own CA is then unknown: "certificate verify failed"."""

    def merge_environment_settings(
        self, url: str | None, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if isinstance(self.verify, str):  # the CA file kwargs_from_env found in DOCKER_CERT_PATH
            settings["verify"] = self.verify
        return settings


class CertPathClient(docker.DockerClient):
    """A DockerClient whose TLS engine is verified with the CA it was given, whatever the
    environment's CA bundle (see :class:`_CertPathAPIClient`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.api = _CertPathAPIClient(*args, **kwargs)


def connect(timeout: int = 600) -> docker.DockerClient:
    """A client for an engine that answers, or a one-line error saying how to start one."""
    where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    tls_verify = os.environ.get("DOCKER_TLS_VERIFY", "") != ""
    try:
        # The client asks the engine for its API version as it is made: that call is the
        # check that the engine answers (a ping after it would only add a round trip).
        client = (CertPathClient if tls_verify else docker.DockerClient).from_env(timeout=timeout)
    except (docker.errors.DockerException, requests.exceptions.RequestException, ValueError) as exc:
        raise _unreachable(where, _reason(exc)) from None
    return client


def _reason(exc: BaseException) -> str:
    """docker-py's error in a few words: the operating system's own (``connection refused``,
    ``name or service not known``) where one caused it, not urllib3's nested reprs."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror.lower()
        cause = cause.__cause__ or cause.__context__
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def _unreachable(where: str, reason: str) -> BuildToolsError:
    """The one line for an engine docker-py could not reach: starting an engine helps only
    when DOCKER_HOST is well formed and docker-py can speak its scheme."""
    if "paramiko" in reason:
        # docker-py speaks ssh:// only with its `ssh` extra, even to shell out to ssh.
        return BuildToolsError(
            f"cannot reach the engine at {where}: this Python has no ssh:// support ({reason})",
            "install this package's ssh extra: pip install 'lara-buildtools[ssh]' "
            "(or pip install 'docker[ssh]')",
        )
    if reason.startswith("Invalid") or "IPv6" in reason or "cast to integer" in reason:
        return BuildToolsError(
            f"DOCKER_HOST={where} is not an engine address ({reason})",
            "set it to unix:///PATH/docker.sock, tcp://HOST:PORT or ssh://USER@HOST, "
            "or unset it for the local engine",
        )
    return BuildToolsError(
        f"no Docker Engine answers at {where} ({reason})",
        "start one with `sudo dockerd &` (Debian package docker.io), "
        "or point DOCKER_HOST at a running engine",
    )


def ensure_image(client: docker.DockerClient, image: str, what: str, fix: str) -> None:
    """``image`` is on this engine, pulled if need be, or one line naming ``what`` needs it and
    ``fix``: checked before a build or a container starts, not halfway through."""
    try:
        client.images.get(image)
        return
    except docker.errors.ImageNotFound:
        pass
    try:
        client.images.pull(image)
    except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
        reason = str(getattr(exc, "explanation", None) or exc).splitlines()[0][:160]
        raise BuildToolsError(
            f"{what} {image} is not present locally and cannot be pulled ({reason})", fix
        ) from None
