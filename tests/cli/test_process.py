"""The process around a task, with the real console script and a real engine: a reader that
leaves the output early (`| head -1`) does not stop the build nor decide its exit status."""

from __future__ import annotations

import subprocess

import docker
import pytest

from tests.fixtures.bad_input import DOCKERFILE, INVOKE, REAL_CLI, App
from tests.fixtures.held_images import discard


def build_into_head(app: App, dockerfile: str) -> tuple[int, str]:
    """`invoke build … 2>&1 | head -1`: the first line, and invoke's own exit status."""
    app.repo.write("Dockerfile.piped", dockerfile)
    command = f"{INVOKE} build --only app --dockerfile Dockerfile.piped 2>&1 | head -1"
    done = subprocess.run(
        ["bash", "-c", f"{command}; echo rc=${{PIPESTATUS[0]}}"],
        cwd=app.path,
        env=app.env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    first, status = done.stdout.splitlines()
    assert "Traceback" not in done.stderr, done.stderr
    return int(status.removeprefix("rc=")), first


@pytest.mark.docker
@REAL_CLI
def test_a_failed_build_read_by_head_exits_as_the_build_failed(
    app: App, docker_client: docker.DockerClient, base_image: str
) -> None:
    """The first line went to head, the next raised BrokenPipeError, and the task ended there
    with exit 0: a CI step `invoke build | head` passed with no image built."""
    failing = DOCKERFILE.replace("RUN echo built", "RUN echo one && echo two && false && echo")
    status, first = build_into_head(app, failing)
    assert first  # head got a line of the build
    assert status == 1
    assert docker_client.images.list(name=f"{app.name}/app") == []


@pytest.mark.docker
@REAL_CLI
def test_a_build_read_by_head_still_finishes(
    app: App, docker_client: docker.DockerClient, base_image: str
) -> None:
    """The reader left after one line; the build went on to its end (it stopped at step 2)."""
    status, first = build_into_head(app, DOCKERFILE)
    assert status == 0 and first
    built = docker_client.images.list(name=f"{app.name}/app")
    assert built, "the build stopped when its reader left"
    discard(docker_client, *(image.id for image in built))
