"""images.build against the real engine: labels in one step, exactly as given."""

from __future__ import annotations

import uuid

import pytest

from buildtools import images
from tests.fixtures.held_images import discard


def test_labels_arrive_verbatim_in_a_single_step(docker_client, base_image, tmp_path):
    (tmp_path / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN true\n")
    labels = {
        "org.example.quoted": 'say "hi" \\ to $HOME and ${PATH}',
        "org.example.url": "https://ci.example.org/builds/7?x=1&y=2",
        "org.example.empty": "",
    }
    ref = f"lara-test/labels-{uuid.uuid4().hex[:8]}:t"
    spec = images.BuildSpec(
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
