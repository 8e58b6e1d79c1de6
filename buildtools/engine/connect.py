"""The one place that connects to the Docker Engine and makes sure an image is on it, so every
task fails the same way."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
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


def _config_dir(env: Mapping[str, str]) -> Path:
    """The Docker CLI's folder: ``DOCKER_CONFIG``, else ``~/.docker``."""
    return Path(env.get("DOCKER_CONFIG") or Path.home() / ".docker")


def _current_context(env: Mapping[str, str]) -> tuple[str, str]:
    """(name, where it was named) of the context the Docker CLI would use."""
    if env.get("DOCKER_CONTEXT"):
        return env["DOCKER_CONTEXT"], "DOCKER_CONTEXT"
    try:
        config = json.loads((_config_dir(env) / "config.json").read_text())
    except (OSError, ValueError):
        return "default", ""
    name = config.get("currentContext") if isinstance(config, dict) else None
    return (name, "the Docker CLI's config.json") if isinstance(name, str) else ("default", "")


def context_env(env: Mapping[str, str]) -> dict[str, str]:
    """The ``DOCKER_*`` variables the Docker CLI's current context stands for, when
    ``DOCKER_HOST`` does not name the engine (the CLI's order: ``DOCKER_HOST``, then
    ``DOCKER_CONTEXT``, then ``currentContext`` in its config.json). Read from the CLI's own
    folder (``DOCKER_CONFIG`` or ~/.docker) as the CLI lays it out, never from the working
    directory; a context's TLS files are laid out as ``DOCKER_CERT_PATH`` wants them."""
    if env.get("DOCKER_HOST"):
        return {}
    name, where = _current_context(env)
    if not name or name == "default":
        return {}
    key = hashlib.sha256(name.encode()).hexdigest()
    contexts = _config_dir(env) / "contexts"
    try:
        meta = json.loads((contexts / "meta" / key / "meta.json").read_text())
        endpoint = meta["Endpoints"]["docker"]
        host = endpoint["Host"]
    except FileNotFoundError:
        raise BuildToolsError(
            f"{where} names the Docker context {name!r}, which does not exist",
            "`docker context ls` lists the contexts; or set DOCKER_HOST to the engine's address",
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BuildToolsError(
            f"{where} names the Docker context {name!r}, which cannot be read ({exc})",
            "fix it with `docker context inspect`, or set DOCKER_HOST to the engine's address",
        ) from None
    found = {"DOCKER_HOST": str(host)}
    tls = contexts / "tls" / key / "docker"
    if (tls / "ca.pem").is_file():
        found["DOCKER_CERT_PATH"] = str(tls)
        if not endpoint.get("SkipTLSVerify"):
            found["DOCKER_TLS_VERIFY"] = "1"
    return found


def connect(timeout: int = 600) -> docker.DockerClient:
    """A client for an engine that answers, or a one-line error saying how to start one.

    A Docker CLI context is honoured as the CLI does: its engine becomes this process's
    ``DOCKER_HOST`` (and TLS variables), so whatever else reads them (the stack's published
    addresses, ``docker compose``) talks to the same engine."""
    found = context_env(os.environ)
    env = {**os.environ, **found}
    where = env.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    kind = CertPathClient if env.get("DOCKER_TLS_VERIFY", "") != "" else docker.DockerClient
    try:
        # The client asks the engine for its API version as it is made: that call is the
        # check that the engine answers (a ping after it would only add a round trip).
        client = kind.from_env(timeout=timeout, environment=env)
    except (docker.errors.DockerException, requests.exceptions.RequestException, ValueError) as exc:
        raise _unreachable(where, _reason(exc)) from None
    os.environ.update(found)
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
