"""Run the built pair (app + nginx sidecar) as it runs in production, for people and smoke tests.

The containers share a user-defined network, so the sidecar finds the app, and the app its
services (a database), by name through Docker's DNS. For people (``invoke up``) only the
sidecar publishes a port: on 127.0.0.1 when the engine is on this machine, on all of the
engine host's addresses when ``DOCKER_HOST`` names another one
(:func:`~buildtools.engine.ports.engine_host`). The smoke test publishes nothing and asks from
inside the stack's network (:func:`~buildtools.engine.stack_probe.fetch`), so it works
wherever the engine is. What the app needs is configured, not assumed (:class:`SmokeConfig`):
its environment (secrets by name only), service containers with a readiness command, and a
command to prepare it (create the database) before it starts.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from secrets import token_hex
from typing import Any

import docker
import docker.errors
import requests

from buildtools.config.schema import ServiceConfig, SmokeConfig
from buildtools.engine import connect
from buildtools.engine.ports import engine_host, engine_is_here, free_port, publish_address
from buildtools.engine.stack_parts import APP_PORT, SIDECAR_PORT, Stack
from buildtools.engine.stack_probe import check, wait_for
from buildtools.errors import INTERRUPTED, BuildToolsError, redact_text

# Set on everything `invoke up` starts: it removes only what carries it.
OWNER_LABEL = "org.concord.lara.buildtools.stack"
LOG_LINES = 5


def run_name(prefix: str, commit: str) -> str:
    """A stack name of its own for one run, ``<prefix>-<7 hex>-<6 random hex>``: two runs of
    one commit on one engine (a re-run, a CI matrix) would otherwise share the name, and each
    one's :func:`up` would remove the other's containers."""
    return f"{prefix}-{commit[:7]}-{token_hex(3)}"


def _not_ours(kind: str, name: str, stack: str) -> BuildToolsError:
    return BuildToolsError(
        f"a {kind} named {name} exists and was not started by invoke up: leaving it alone",
        f"remove it yourself (docker {kind} rm {name}) or pass --name with another prefix "
        f"than {stack!r}",
    )


def _owned(labels: dict[str, str] | None, name: str) -> bool:
    return (labels or {}).get(OWNER_LABEL) == name


def down(client: docker.DockerClient, name: str) -> None:
    """Remove the stack's containers and network; absent parts are fine, foreign ones (same
    name, not started by us) are refused before anything is removed."""
    stack = Stack(name, "")
    containers = []
    owned = client.containers.list(all=True, filters={"label": f"{OWNER_LABEL}={name}"})
    names = [stack.sidecar, stack.app, *(c.name for c in owned)]
    for container_name in dict.fromkeys(names):
        with contextlib.suppress(docker.errors.NotFound):
            container = client.containers.get(container_name)
            if not _owned(container.labels, name):
                raise _not_ours("container", container_name, name)
            containers.append(container)
    networks = [n for n in client.networks.list(names=[stack.network]) if n.name == stack.network]
    for network in networks:
        if not _owned(network.attrs.get("Labels"), name):
            raise _not_ours("network", stack.network, name)
    for container in containers:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)
    for network in networks:
        network.remove()


def resolve_env(entries: Sequence[str], env: Mapping[str, str], key: str) -> dict[str, str]:
    """``KEY=VALUE`` entries as given, bare ``KEY`` from ``env``: a secret is named in the
    config, never written there, and its value is never printed."""
    resolved: dict[str, str] = {}
    for entry in entries:
        name, sep, value = entry.partition("=")
        if sep:
            resolved[name] = value
        elif env.get(name):
            resolved[name] = env[name]
        else:
            raise BuildToolsError(
                f"buildtools.{key} takes {name} from the environment, but it is not set",
                f"export {name} (a CI secret), or give it a value in buildtools.{key}",
            )
    return resolved


def secret_values(cfg: SmokeConfig, env: Mapping[str, str]) -> list[str]:
    """The values of every bare-named (secret) entry: never shown, even in container logs."""
    entries = [*cfg.env, *(e for s in cfg.services for e in s.env)]
    return [env[e] for e in entries if "=" not in e and env.get(e)]


def _log_tail(container: Any, lines: int = LOG_LINES) -> list[str]:
    try:
        text = container.logs(tail=lines).decode("utf-8", "replace")
    except docker.errors.APIError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]


def report_logs(
    client: docker.DockerClient,
    name: str,
    say: Callable[[str], None],
    secrets: Sequence[str] = (),
) -> None:
    """The last lines of every container of the stack: what a failed check needs beside it."""
    for container in client.containers.list(all=True, filters={"label": f"{OWNER_LABEL}={name}"}):
        for line in _log_tail(container):
            say(redact_text(f"  {container.name}: {line}", secrets))


def _wait_ready(
    container: Any, service: ServiceConfig, timeout: int, secrets: Sequence[str] = ()
) -> None:
    """Run the service's readiness command in it until it succeeds."""
    deadline = time.monotonic() + timeout
    last = "not started"
    while time.monotonic() < deadline:
        container.reload()
        if container.status == "exited":
            raise BuildToolsError(
                f"service {service.name} ({service.image}) exited before it was ready",
                f"see its log: docker logs {container.name}",
            )
        if not service.ready:
            return
        result = container.exec_run(["sh", "-c", service.ready])
        if result.exit_code == 0:
            return
        output = (result.output or b"").decode("utf-8", "replace").strip().splitlines()
        last = redact_text(output[-1], secrets) if output else f"exit {result.exit_code}"
        time.sleep(0.5)
    raise BuildToolsError(
        f"service {service.name} was not ready within {timeout}s (`{service.ready}`: {last})",
        f"raise buildtools.smoke.timeout, or check docker logs {container.name}",
    )


def _prepare(
    client: docker.DockerClient,
    stack: Stack,
    app_image: str,
    cfg: SmokeConfig,
    app_env: dict[str, str],
    owner: dict[str, str],
    secrets: Sequence[str] = (),
) -> None:
    container = client.containers.run(
        app_image,
        ["sh", "-c", cfg.prepare],
        name=f"{stack.name}-prepare",
        network=stack.network,
        environment=app_env,
        labels=owner,
        detach=True,
    )
    try:
        status = container.wait(timeout=cfg.timeout)
    except requests.exceptions.RequestException:
        raise BuildToolsError(
            f"`{cfg.prepare}` did not finish within {cfg.timeout}s",
            "raise buildtools.smoke.timeout, or check the command",
        ) from None
    if status.get("StatusCode") != 0:
        tail = redact_text(" | ".join(_log_tail(container, 3)), secrets)
        raise BuildToolsError(
            f"`{cfg.prepare}` in the app image exited {status.get('StatusCode')}: {tail}",
            "fix buildtools.smoke.prepare or what it needs (services, smoke.env)",
        )


def up(
    client: docker.DockerClient,
    app_image: str,
    nginx_image: str,
    name: str = "lara",
    port: int = 0,
    cfg: SmokeConfig | None = None,
    env: Mapping[str, str] | None = None,
    keep_failed: bool = False,
    publish: bool = True,
) -> Stack:
    """Start services, prepare the app, start app and sidecar (replacing an earlier stack of
    that name); wait until the sidecar answers ``cfg.path`` inside the stack's network. A
    half-started stack is removed (``keep_failed``: left for the caller to read its logs, then
    remove). With ``publish`` the sidecar's port is published (:func:`publish_address`) and
    ``Stack.url`` is where it answers from here (``DOCKER_HOST`` from ``env``); without, nothing
    is published and the URL is empty."""
    cfg = cfg or SmokeConfig()
    env = env if env is not None else {}
    app_env = resolve_env(cfg.env, env, "smoke.env")
    secrets = secret_values(cfg, env)
    service_envs = {
        s.name: resolve_env(s.env, env, f"smoke.services.{s.name}.env") for s in cfg.services
    }
    for service in cfg.services:
        connect.ensure_image(
            client,
            service.image,
            f"service {service.name}: image",
            f"pull or build it first, or set buildtools.smoke.services.{service.name}.image",
        )
    down(client, name)
    stack = Stack(name, "")
    owner = {OWNER_LABEL: name}
    client.networks.create(stack.network, driver="bridge", labels=owner)
    try:
        for service in cfg.services:
            container = client.containers.run(
                service.image,
                name=stack.service(service.name),
                network=stack.network,
                environment=service_envs[service.name],
                labels=owner,
                detach=True,
            )
            client.networks.get(stack.network).disconnect(container)
            client.networks.get(stack.network).connect(container, aliases=[service.name])
            _wait_ready(container, service, cfg.timeout, secrets)
        if cfg.prepare:
            _prepare(client, stack, app_image, cfg, app_env, owner, secrets)
        client.containers.run(
            app_image,
            name=stack.app,
            network=stack.network,
            environment=app_env,
            labels=owner,
            detach=True,
        )
        docker_host = env.get("DOCKER_HOST")
        bind = publish_address(docker_host)
        here = publish and engine_is_here(client, docker_host)
        # A loopback DOCKER_HOST that is not this machine's engine (a tunnel) still binds its
        # own loopback, reached through a forwarded port: only the URL's note differs.
        tunnel = publish and not here and bind == "127.0.0.1"
        # On this machine the port is chosen here (see free_port); another engine picks its own.
        host_port = port or (free_port() if here else None)
        sidecar = client.containers.run(
            nginx_image,
            name=stack.sidecar,
            network=stack.network,
            labels=owner,
            # X-Cache-Status where people look at the stack (invoke up), not in a smoke test.
            environment={
                "APP_UPSTREAM": f"{stack.app}:{APP_PORT}",
                "LARA_CACHE_STATUS": "on" if publish else "off",
            },
            ports={f"{SIDECAR_PORT}/tcp": (bind, host_port)} if publish else {},
            detach=True,
        )
        sidecar.reload()
        published = (sidecar.attrs["NetworkSettings"].get("Ports") or {}).get(f"{SIDECAR_PORT}/tcp")
        if sidecar.status != "running" or (publish and not published):
            tail = " | ".join(_log_tail(sidecar, 3)) or "no output"
            raise BuildToolsError(
                f"the sidecar {stack.sidecar} stopped at start ({sidecar.status}): {tail}",
                f"see docker logs {stack.sidecar}",
            )
        if publish:
            host_port = published[0]["HostPort"]
            url = f"http://{engine_host(docker_host)}:{host_port}"
            note = (
                f"the engine at {docker_host} is not this machine's (a tunnel or a forwarded "
                f"port): port {host_port} is on its host's loopback; forward it too "
                f"(ssh -L {host_port}:127.0.0.1:{host_port} …) to open the URL"
                if tunnel
                else ""
            )
            stack = Stack(name, url, note)
        wait_for(client, stack, cfg.path, cfg.timeout)
    except BuildToolsError:
        if not keep_failed:
            down(client, name)
        raise
    except KeyboardInterrupt:
        down(client, name)
        raise BuildToolsError(
            f"interrupted: the containers and network started for {name} were removed",
            "run it again",
            exit_code=INTERRUPTED,
        ) from None
    except docker.errors.APIError as exc:
        if not keep_failed:
            down(client, name)
        raise BuildToolsError(
            f"could not start {name}: {exc.explanation or exc}",
            "free the port (or pass --port), or check `docker ps` for a conflicting container",
        ) from None
    return stack


def smoke(
    client: docker.DockerClient,
    app_image: str,
    nginx_image: str,
    expect: str,
    name: str,
    cfg: SmokeConfig | None = None,
    env: Mapping[str, str] | None = None,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Start everything, check through the sidecar, always clean up. On a failure, the last
    lines of every container's log are said before the one-line error. Nothing is published:
    the checks run inside the stack's network, so they pass wherever the engine is."""
    cfg = cfg or SmokeConfig()
    expect = cfg.expect or expect
    try:
        stack = up(
            client, app_image, nginx_image, name, cfg=cfg, env=env, keep_failed=True, publish=False
        )
        return check(client, stack, cfg, expect)
    except BuildToolsError as exc:
        hidden = secret_values(cfg, env or {})
        report_logs(client, name, say, hidden)
        raise exc.redact(hidden) from None
    finally:
        down(client, name)
