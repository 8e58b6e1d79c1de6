"""Run the built pair (app + nginx sidecar) as it runs in production, for people and smoke tests.

The containers share a user-defined network, so the sidecar finds the app, and the app its
services (a database), by name through Docker's DNS. For people (``invoke up``) only the
sidecar publishes a port: on 127.0.0.1 when the engine is on this machine, on all of the
engine host's addresses when ``DOCKER_HOST`` names another one (:func:`engine_host`). The smoke
test publishes nothing and asks from inside the stack's network (:func:`fetch`), so it works
wherever the engine is. What the app needs is configured, not assumed (:class:`SmokeConfig`):
its environment (secrets by name only), service containers with a readiness command, and a
command to prepare it (create the database) before it starts.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import re
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from secrets import token_hex
from typing import Any
from urllib.parse import urlsplit

import docker
import docker.errors
import requests

from buildtools.config.registry_address import is_loopback
from buildtools.config.schema import ServiceConfig, SmokeConfig
from buildtools.engine import connect
from buildtools.errors import INTERRUPTED, BuildToolsError, redact_text

APP_PORT = 3000
SIDECAR_PORT = 80
# Set on everything `invoke up` starts: it removes only what carries it.
OWNER_LABEL = "org.concord.lara.buildtools.stack"
# A fingerprinted stylesheet or script the page links (Sprockets: 64 hex, webpack: 20).
FINGERPRINTED = re.compile(r'(?:href|src)="(/[^"?#]+-[0-9a-f]{20,64}\.(?:css|js))"')
LOG_LINES = 5
# One HTTP/1.0 GET with bash's /dev/tcp: $1 host, $2 port, $3 path (arguments, never spliced
# into the script). HTTP/1.0, so nginx closes the connection at the end and never chunks.
HTTP_GET = (
    'exec 3<>"/dev/tcp/$1/$2" || exit 7\n'
    "printf 'GET %s HTTP/1.0\\r\\nHost: %s\\r\\nUser-Agent: lara-buildtools-smoke\\r\\n\\r\\n'"
    ' "$3" "$1" >&3\n'
    "cat <&3\n"
)
FETCH_TIMEOUT = 10


@dataclass(frozen=True)
class Stack:
    name: str
    url: str

    @property
    def network(self) -> str:
        return f"{self.name}-net"

    @property
    def app(self) -> str:
        return f"{self.name}-app"

    @property
    def sidecar(self) -> str:
        return f"{self.name}-nginx"

    def service(self, service: str) -> str:
        return f"{self.name}-{service}"


def run_name(prefix: str, commit: str) -> str:
    """A stack name of its own for one run, ``<prefix>-<7 hex>-<6 random hex>``: two runs of
    one commit on one engine (a re-run, a CI matrix) would otherwise share the name, and each
    one's :func:`up` would remove the other's containers."""
    return f"{prefix}-{commit[:7]}-{token_hex(3)}"


LOCAL_SCHEMES = ("", "unix", "npipe", "fd")


def engine_host(docker_host: str | None) -> str:
    """The host name (or address) under which the engine's published ports are reached from
    here: the host of a ``tcp://`` or ``ssh://`` DOCKER_HOST, ``127.0.0.1`` for a local engine
    (unset, ``unix://``, ``npipe://``). An IPv6 address comes in brackets, ready for a URL."""
    parts = urlsplit(docker_host or "")
    if parts.scheme in LOCAL_SCHEMES or not parts.hostname:
        return "127.0.0.1"
    return f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname


def publish_address(docker_host: str | None) -> str:
    """Where ``invoke up`` binds the sidecar's port on the engine's host: its loopback when that
    is this machine (nobody else should reach a test stack), else every address, since the
    engine's loopback is not reachable from here (GitLab's dind, an ``ssh://`` build host)."""
    return "127.0.0.1" if is_loopback(engine_host(docker_host)) else "0.0.0.0"


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


def free_port(address: str = "127.0.0.1") -> int:
    """A port free on ``address`` now. Chosen here, not by the engine: two engines on one host
    (a CI runner's and a test's) each hand out the same ports, unaware of the other."""
    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


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
        # On this machine the port is chosen here (see free_port); a remote engine picks its own.
        host_port = port or (free_port() if bind == "127.0.0.1" else None)
        sidecar = client.containers.run(
            nginx_image,
            name=stack.sidecar,
            network=stack.network,
            labels=owner,
            environment={"APP_UPSTREAM": f"{stack.app}:{APP_PORT}"},
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
            url = f"http://{engine_host(docker_host)}:{published[0]['HostPort']}"
            stack = Stack(name, url)
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


@dataclass(frozen=True)
class Response:
    """An HTTP answer as the smoke test reads it; header names in lower case."""

    status: int
    headers: dict[str, str]
    text: str


class _Received:
    """The bytes a response arrived as, in the one shape :class:`http.client.HTTPResponse`
    reads from (a socket's ``makefile``)."""

    def __init__(self, raw: bytes) -> None:
        self._file = io.BytesIO(raw)

    def makefile(self, *_: Any, **__: Any) -> io.BytesIO:
        return self._file


def parse_response(raw: bytes) -> Response:
    """An HTTP/1.x response as bytes, as :data:`HTTP_GET` reads it, parsed by the standard
    library's own HTTP client (status line, headers, a chunked body joined). ``ValueError`` if
    it is not an HTTP response."""
    response = http.client.HTTPResponse(_Received(raw))  # type: ignore[arg-type]
    try:
        response.begin()
        body = response.read()
    except (http.client.HTTPException, OSError) as exc:
        first = raw.split(b"\n", 1)[0][:60].decode("iso-8859-1")
        raise ValueError(f"not an HTTP response: {first!r} ({type(exc).__name__})") from None
    headers = {name.lower(): value for name, value in response.getheaders()}
    return Response(response.status, headers, body.decode("utf-8", "replace"))


def in_network_url(stack: Stack, path: str = "") -> str:
    """The URL the smoke test asks, as any container on the stack's network would."""
    return f"http://{stack.sidecar}:{SIDECAR_PORT}{path}"


class NoAnswer(BuildToolsError):
    """The sidecar gave no HTTP answer; ``reason`` is what was seen instead."""

    def __init__(self, url: str, reason: str, sidecar: str) -> None:
        super().__init__(f"GET {url}: no answer ({reason})", f"see docker logs {sidecar}")
        self.reason = reason


def fetch(client: docker.DockerClient, stack: Stack, path: str) -> Response:
    """GET ``path`` from the sidecar by its name on the stack's network, run inside the sidecar
    through the engine's exec API, never through a port published on this machine.

    Why this way: the engine may be elsewhere (GitLab's dind, ``ssh://``), where a published
    port is not on this machine's loopback; but the exec API goes wherever the engine is. Why in
    the sidecar: it is in the stack already (no image to pull, no container to clean up) and
    its image has bash, whose ``/dev/tcp`` is the HTTP client (its HEALTHCHECK uses it too:
    no curl in the image). Its own name resolves to its address on the stack's network, so the
    request takes the path a peer's would, and checks that nginx listens beyond its loopback.
    :class:`NoAnswer` when there is no answer (nothing listens, the sidecar stopped); a plain
    ``BuildToolsError`` at once when the sidecar cannot run the check (no bash in it)."""
    url = in_network_url(stack, path)
    command = ["timeout", str(FETCH_TIMEOUT), "bash", "-c", HTTP_GET, "lara-smoke"]
    try:
        sidecar = client.containers.get(stack.sidecar)
        result = sidecar.exec_run([*command, stack.sidecar, str(SIDECAR_PORT), path], demux=True)
    except docker.errors.APIError as exc:
        reason = str(exc.explanation or exc).splitlines()[0][:120]
        raise NoAnswer(url, reason, stack.sidecar) from None
    out, err = result.output or (None, None)
    if result.exit_code in (126, 127):  # the shell's "not executable" / "not found"
        # Not a sidecar that has yet to answer: waiting the smoke timeout would not help.
        said = ((err or b"") + (out or b"")).decode("utf-8", "replace").strip().splitlines()
        raise BuildToolsError(
            f"the smoke test cannot ask {url}: the sidecar image has no bash or timeout to "
            f"run its HTTP check in ({said[-1][:160] if said else f'exit {result.exit_code}'})",
            "base the sidecar on Debian or the official nginx image (both have bash; "
            "its health check needs it too), or add bash to your nginx.dockerfile",
        )
    try:
        return parse_response(out or b"")
    except ValueError:
        lines = (err or b"").decode("utf-8", "replace").strip().splitlines()
        reason = lines[-1] if lines else f"exit {result.exit_code}"
        raise NoAnswer(url, reason, stack.sidecar) from None


def wait_for(client: docker.DockerClient, stack: Stack, path: str, seconds: float = 60) -> None:
    """Until the sidecar answers ``path`` with 200 inside the stack's network."""
    deadline = time.monotonic() + seconds
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            answer = fetch(client, stack, path)
            if answer.status == 200:
                return
            last = f"HTTP {answer.status}"
        except NoAnswer as exc:
            last = exc.reason
        time.sleep(0.3)
    raise BuildToolsError(
        f"{in_network_url(stack, path)} did not answer 200 within {seconds:.0f}s ({last})",
        f"see `docker logs {stack.app}` and `docker logs {stack.sidecar}`",
    )


def check(
    client: docker.DockerClient, stack: Stack, cfg: SmokeConfig, expect: str
) -> dict[str, Any]:
    """The checks through the sidecar, from inside the stack's network (:func:`fetch`): the page
    answers 200 and shows ``expect``; a fingerprinted asset it links is served ``immutable``
    from the sidecar's disk."""
    page = fetch(client, stack, cfg.path)
    if page.status != 200 or expect not in page.text:
        seen = f"HTTP {page.status}" if page.status != 200 else "a page without it"
        raise BuildToolsError(
            f"smoke test: GET {cfg.path} through the sidecar should show {expect!r}, got {seen}",
            "rebuild the images for this commit, or set buildtools.smoke.path/expect",
        )
    match = FINGERPRINTED.search(page.text)
    asset = None
    if match:
        asset = match[1]
        served = fetch(client, stack, asset)
        cache_control = served.headers.get("cache-control", "")
        if served.status != 200 or "immutable" not in cache_control:
            raise BuildToolsError(
                f"smoke test: {asset} answered HTTP {served.status} with Cache-Control "
                f"{cache_control!r} through the sidecar",
                "check that assets were precompiled into public/ (invoke nginx.config)",
            )
    url = in_network_url(stack)
    return {"url": url, "path": cfg.path, "expected": expect, "asset": asset}


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
