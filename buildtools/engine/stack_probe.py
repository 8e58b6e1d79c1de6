"""Asking a running stack over HTTP from inside its network: one GET run in the sidecar through
the engine's exec API (:func:`fetch`), the wait until the sidecar answers, and the smoke test's
checks of the page and of a fingerprinted asset.

Apart from starting the stack (:mod:`buildtools.engine.stack`) because it is the HTTP client
side: a request, the parsing of an answer, and what counts as no answer.
"""

from __future__ import annotations

import http.client
import io
import re
import time
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors

from buildtools.config.schema import SmokeConfig
from buildtools.engine.stack_parts import SIDECAR_PORT, Stack
from buildtools.errors import BuildToolsError

# A fingerprinted stylesheet or script the page links (Sprockets: 64 hex, webpack: 20).
FINGERPRINTED = re.compile(r'(?:href|src)="(/[^"?#]+-[0-9a-f]{20,64}\.(?:css|js))"')
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
