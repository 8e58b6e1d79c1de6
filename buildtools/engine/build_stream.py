"""Following the classic builder's low-level build stream, step by step.

docker-py's high-level ``images.build`` hides the log until the end and reports only the last
line of a failure, so the classic builder (:mod:`buildtools.engine.images`) reads the stream
itself here: which step runs, which came from cache, and what a failing step printed, turned
into one-line errors that name the step.
"""

from __future__ import annotations

import collections
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

import docker
import docker.errors
import requests

from buildtools.engine.build_spec import BuildReporter, BuildSpec
from buildtools.errors import BuildToolsError

STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
TAIL_LINES = 12


@dataclass
class StepState:
    number: int = 0
    total: int = 0
    instruction: str = ""
    started: float = 0.0
    cached: bool = False
    cached_steps: int = 0
    seen_from: bool = False
    tail: collections.deque[str] = field(
        default_factory=lambda: collections.deque(maxlen=TAIL_LINES)
    )


def _lines(chunks: Iterable[dict[str, Any]]) -> Iterator[tuple[str, Any]]:
    """Flatten the decoded build stream into (kind, payload) events."""
    for chunk in chunks:
        if "errorDetail" in chunk or "error" in chunk:
            detail = chunk.get("errorDetail") or {}
            yield "error", detail.get("message") or chunk.get("error") or "unknown error"
        elif "aux" in chunk and isinstance(chunk["aux"], dict) and "ID" in chunk["aux"]:
            yield "id", chunk["aux"]["ID"]
        elif "stream" in chunk:
            for line in str(chunk["stream"]).splitlines():
                if line.strip():
                    yield "line", line.rstrip()
        elif "status" in chunk:
            yield "line", f"{chunk['status']} {chunk.get('progress', '')}".rstrip()


def _step_error(spec: BuildSpec, state: StepState, message: str) -> BuildToolsError:
    noise = ("--->", "Removing intermediate container", "Running in ")
    tail = [line for line in state.tail if not line.lstrip().startswith(noise)][-3:]
    where = f"step {state.number}/{state.total} `{state.instruction}`" if state.number else "setup"
    output = f"; last output: {' | '.join(tail)}" if tail else ""
    return BuildToolsError(
        f"{spec.name} image build failed at {where}: {message.strip()}{output}",
        f"fix that step in {spec.dockerfile.name}; rerun with --verbose for its full output",
    )


_PARSE_ERROR = re.compile(r"dockerfile parse error (?:on )?line (\d+): (.*)", re.IGNORECASE)


def _engine_refused(spec: BuildSpec, state: StepState, explanation: str) -> BuildToolsError:
    """The engine refused the build before any step (e.g. a Dockerfile it cannot parse)."""
    parsed = _PARSE_ERROR.search(explanation)
    if parsed:
        return BuildToolsError(
            f"{spec.dockerfile} line {parsed[1]}: {parsed[2].strip().rstrip('.')}",
            "fix that line of the Dockerfile",
        )
    return _step_error(spec, state, f"the engine refused the build: {explanation}")


def follow(
    client: docker.DockerClient,
    spec: BuildSpec,
    state: StepState,
    reporter: BuildReporter,
    archive: IO[bytes],
    dockerfile: str,
    buildargs: Mapping[str, str] | None = None,
    cache_from: tuple[str, ...] = (),
    target: str = "",
) -> str:
    """Run one build and follow its stream; the image id, or a BuildToolsError for its step."""
    image_id = ""

    def finish_step(now: float) -> None:
        if state.number:
            reporter.step_done(spec.name, state.number, state.cached, now - state.started)

    try:
        stream = client.api.build(
            fileobj=archive,
            custom_context=True,
            dockerfile=dockerfile,
            buildargs=dict(buildargs or {}),
            nocache=spec.nocache,
            cache_from=list(cache_from) or None,
            target=target or None,
            rm=True,
            forcerm=True,
            decode=True,
        )
        for kind, payload in _lines(stream):
            if kind == "error":
                finish_step(time.monotonic())
                raise _step_error(spec, state, payload)
            if kind == "id":
                image_id = payload
                continue
            match = STEP.match(payload)
            if match:
                now = time.monotonic()
                finish_step(now)
                state.number, state.total = int(match[1]), int(match[2])
                state.instruction, state.started, state.cached = match[3], now, False
                # FROM, and an ARG before the first FROM, make no layer: never rebuilt work.
                keyword = state.instruction.split(None, 1)[0].upper() if state.instruction else ""
                if keyword == "FROM" or (keyword == "ARG" and not state.seen_from):
                    state.cached = True
                    state.cached_steps += 1
                state.seen_from = state.seen_from or keyword == "FROM"
                state.tail.clear()
                reporter.step(spec.name, state.number, state.total, state.instruction)
                continue
            if payload.strip() == "---> Using cache":
                state.cached = True
                state.cached_steps += 1
            state.tail.append(payload)
            reporter.output(spec.name, payload)
    except docker.errors.APIError as exc:
        raise _engine_refused(spec, state, str(exc.explanation or exc)) from None
    except requests.exceptions.RequestException as exc:
        reason = type(exc).__name__  # the URL would carry every build arg: leave it out
        raise _step_error(spec, state, f"the engine stopped answering ({reason})") from None
    finish_step(time.monotonic())
    if not image_id:
        raise _step_error(spec, state, "the engine reported no image id")
    return image_id
