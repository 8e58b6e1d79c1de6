"""images.build against the real engine: labels in one step, exactly as given."""

from __future__ import annotations

import signal
import subprocess
import time
import uuid

import docker
import docker.errors
import pytest

from buildtools.engine import build_spec, images
from tests.fixtures.bad_input import (
    DOCKERFILE,
    INVOKE,
    NO_ENGINE,
    REAL_CLI,
    App,
    fails_in_one_line,
    one_error,
    whole_rows,
)
from tests.fixtures.held_images import discard


def test_labels_arrive_verbatim_in_a_single_step(docker_client, base_image, tmp_path):
    (tmp_path / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN true\n")
    labels = {
        "org.example.quoted": 'say "hi" \\ to $HOME and ${PATH}',
        "org.example.url": "https://ci.example.org/builds/7?x=1&y=2",
        "org.example.empty": "",
    }
    ref = f"lara-test/labels-{uuid.uuid4().hex[:8]}:t"
    spec = build_spec.BuildSpec(
        name="probe",
        dockerfile=tmp_path / "Dockerfile",
        context=tmp_path,
        tags=(ref,),
        buildargs={"BASE_IMAGE": base_image},
        labels=labels,
    )
    try:
        built = images.build(docker_client, spec)
        image = docker_client.images.get(ref)
        assert image.id == built.id
        for key, value in labels.items():
            assert image.labels[key] == value
        label_steps = [
            entry
            for entry in docker_client.api.history(built.id)
            if "LABEL" in entry["CreatedBy"] and "org.example" in entry["CreatedBy"]
        ]
        assert len(label_steps) == 1
        assert built.steps == 4  # ARG, FROM, RUN, then the one LABEL step
    finally:
        discard(docker_client, ref)


@pytest.mark.parametrize(
    ("text", "target", "folded"),
    [
        ("FROM base\nRUN true\n", "", True),
        ("FROM base AS deps\nFROM base\n", "deps", False),  # a stage's build carries no labels
        ("# escape=`\nFROM base\nRUN true\n", "", False),  # our quoting assumes the backslash
        ("# escape=\\\nFROM base\n", "", True),
    ],
)
def test_the_label_step_ends_the_dockerfile_where_its_quoting_holds(
    text: str, target: str, folded: bool
) -> None:
    assert images.label_in_dockerfile(text, target) is folded


def test_the_label_step_is_one_quoted_line() -> None:
    (line,) = images.label_step({"b": 'say "hi" $HOME', "a": "x\ny"})
    assert line == 'LABEL "a"="x y" "b"="say \\"hi\\" \\$HOME"'
    assert images.label_step({}) == []


# --- bad input (tests/fixtures/bad_input.py) ---

# An app Dockerfile that is not there: (case, task args, environment, invoke.yaml extra lines, the
# error line must contain)
ONE_LINE_FAILURES = [
    (
        "an app Dockerfile that is not there",
        ["build", "--dry-run"],
        {**NO_ENGINE, "INVOKE_BUILDTOOLS_APP_DOCKERFILE": "Dockerfile.nope"},
        "",
        "Dockerfile not found: ",
    ),
]


@pytest.mark.parametrize("row", whole_rows(ONE_LINE_FAILURES))
def test_bad_input_is_one_line_and_a_non_zero_exit(app: App, row: tuple) -> None:
    fails_in_one_line(app, *row)


@pytest.mark.docker
@REAL_CLI
def test_build_failures_are_one_line_and_tag_nothing(
    app: App, docker_client: docker.DockerClient, base_image: str
) -> None:
    app.repo.write("Dockerfile.typo", DOCKERFILE.replace("RUN echo", "RUNN echo"))
    (app.path / "Dockerfile.latin1").write_bytes("# caf\xe9\n".encode("latin-1") + b"FROM x\n")

    typo = one_error(app.invoke("build", "--only", "app", "--dockerfile", "Dockerfile.typo"))
    latin = one_error(app.invoke("build", "--only", "app", "--dockerfile", "Dockerfile.latin1"))
    no_block = one_error(app.invoke("build", "--dockerfile", "Dockerfile.noblock"))

    assert "Dockerfile.typo line 3: unknown instruction: RUNN" in typo
    assert "%7B" not in typo and "BASE_IMAGE" not in typo  # no URL-encoded build args
    assert "Dockerfile.latin1 is not UTF-8 text" in latin
    assert "Dockerfile.noblock declares no ARG LARA_VERSION in its last stage" in no_block
    assert docker_client.images.list(name=f"{app.name}/app") == []


@pytest.mark.docker
@REAL_CLI
def test_ctrl_c_during_a_build_exits_130_with_one_line(
    app: App, docker_client: docker.DockerClient, base_image: str
) -> None:
    app.repo.write("Dockerfile.slow", DOCKERFILE.replace("RUN echo", "RUN sleep 30 && echo"))
    proc = subprocess.Popen(
        [str(INVOKE), "build", "--only", "app", "--no-cache", "--dockerfile", "Dockerfile.slow"],
        cwd=app.path,
        env=app.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    seen = ""
    # The step's own command: another test's container may run `sleep 300` meanwhile.
    while "sleep 30 && echo built" not in seen and time.monotonic() < deadline:
        time.sleep(0.5)
        seen = " ".join(
            " ".join(c.attrs["Config"].get("Cmd") or [])
            for c in docker_client.containers.list(ignore_removed=True)  # others' come and go
        )
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    line = one_error(done, code=130)
    assert line.startswith("interrupted: the app image build stopped at step")
    assert docker_client.images.list(name=f"{app.name}/app") == []


@pytest.mark.docker
@REAL_CLI
def test_a_base_pinned_by_the_digest_invoke_bases_prints_builds_on_that_image(
    app: App, docker_client: docker.DockerClient, base_image: str
) -> None:
    """27.19: `invoke bases` says the digest of what it made; `base_image: name@sha256:…` then
    builds on exactly that image (a local import has no registry digest: the engine took the
    pin for a Docker Hub name and failed to pull it)."""
    made = subprocess.run(
        [str(INVOKE), "bases"], cwd=app.path, env=app.env, capture_output=True, text=True
    )
    assert made.returncode == 0, made.stderr
    (pin_line,) = [line for line in made.stderr.splitlines() if line.startswith("pin it: ")]
    pinned = pin_line.removeprefix("pin it: base_image: ")
    assert pinned == f"lara-buildtools/debian@{docker_client.images.get(base_image).id}"
    app.repo.write("Dockerfile.pinned", DOCKERFILE.replace("RUN echo built", "RUN echo pinned"))
    env = {"INVOKE_BUILDTOOLS_APP_BASE_IMAGE": pinned}

    done = app.invoke("build", "--only", "app", "--dockerfile", "Dockerfile.pinned", env=env)

    assert done.returncode == 0, done.stderr
    (built,) = docker_client.images.list(name=f"{app.name}/app")
    base_layers = docker_client.images.get(base_image).attrs["RootFS"]["Layers"]
    assert built.attrs["RootFS"]["Layers"][: len(base_layers)] == base_layers
    discard(docker_client, built.id)


@pytest.mark.docker
def test_a_pinned_base_of_another_repository_or_digest_is_one_line_before_any_step(
    app: App, docker_client: docker.DockerClient, base_image: str
) -> None:
    image_id = docker_client.images.get(base_image).id
    for pinned, words in (
        (f"lara/elsewhere@{image_id}", "is not one of lara/elsewhere's (it is "),
        ("lara-buildtools/debian@sha256:" + "0" * 64, "base image lara-buildtools/debian@"),
    ):
        done = app.invoke(
            "build", "--only", "app", env={"INVOKE_BUILDTOOLS_APP_BASE_IMAGE": pinned}
        )
        line = one_error(done)
        assert words in line and "buildtools.app.base_image" in line
        assert "Step 1/" not in done.stderr
    assert docker_client.images.list(name=f"{app.name}/app") == []
