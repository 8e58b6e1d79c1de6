"""version.yml: fixed keys in a fixed order, rendered as YAML, JSON or shell variables."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from buildtools.errors import BuildToolsError
from buildtools.facts.buildinfo import BuildInfo
from buildtools.plan.tags import ImageTag
from buildtools.plan.versionfile import KEYS, as_dict, render

SHA = "0123abcdef0123abcdef0123abcdef0123abcdef"
RELEASE = BuildInfo(
    version="1.2.3",
    commit=SHA,
    tag="v1.2.3",
    build_number="101",
    build_url="https://app.travis-ci.com/github/org/lara/builds/1",
    build_date="2024-01-02T03:04:05Z",
    ci="travis",
    known_versions=("1.2.3",),
)
TAGS = [ImageTag("1.2.3", False, "release"), ImageTag("latest", True, "highest")]


def test_keys_and_order() -> None:
    data = as_dict(RELEASE, TAGS)
    assert list(data) == [
        "version",
        "branch",
        "tag",
        "commit",
        "short_commit",
        "dirty",
        "pull_request",
        "build_number",
        "build_url",
        "build_date",
        "ci",
        "image_tags",
    ]
    assert data["image_tags"] == ["1.2.3", "latest"]
    assert (data["short_commit"], data["dirty"], data["branch"]) == ("0123abc", False, None)


def test_yaml_is_stable_and_round_trips() -> None:
    text = render(as_dict(RELEASE, TAGS), "yaml")
    assert text.splitlines()[:3] == ["version: 1.2.3", "branch: null", "tag: v1.2.3"]
    assert text == render(as_dict(RELEASE, TAGS), "yaml")
    assert yaml.safe_load(text) == as_dict(RELEASE, TAGS)
    assert list(yaml.safe_load(text)) == list(KEYS)


def test_json_round_trips() -> None:
    text = render(as_dict(RELEASE, ["1.2.3"]), "json")
    assert json.loads(text) == as_dict(RELEASE, ["1.2.3"])
    assert text.endswith("}\n")


def test_env_lines() -> None:
    text = render(as_dict(RELEASE, TAGS), "env")
    lines = text.splitlines()
    assert lines[0] == "LARA_VERSION=1.2.3"
    assert "LARA_BRANCH=" in lines
    assert "LARA_DIRTY=false" in lines
    assert "LARA_IMAGE_TAGS=1.2.3,latest" in lines
    assert len(lines) == len(KEYS)


def test_env_is_shell_safe() -> None:
    nasty = BuildInfo(version="1.0.0", commit=SHA, branch="x'; touch /tmp/pwned; echo '$(id)")
    text = render(as_dict(nasty), "env")
    shell = subprocess.run(
        ["sh", "-c", text + 'printf %s "$LARA_BRANCH"'], capture_output=True, text=True, check=True
    )
    assert shell.stdout == nasty.branch


def test_unknown_format() -> None:
    with pytest.raises(BuildToolsError, match=r"unknown format 'xml'.*yaml, json, env"):
        render(as_dict(RELEASE), "xml")


# Branch names that YAML would read as other types unless quoted.
tricky = st.sampled_from(["yes", "no", "on", "null", "~", "1.10", "0x1F", "1e3", "2024-01-01", ""])


@given(branch=st.one_of(st.text(max_size=50), tricky), pull_request=st.none() | st.integers(0))
def test_yaml_and_json_round_trip_any_values(branch: str, pull_request: int | None) -> None:
    data = as_dict(BuildInfo(version="1.0.0", commit=SHA, branch=branch, pull_request=pull_request))
    assert yaml.safe_load(render(data, "yaml")) == data
    assert json.loads(render(data, "json")) == data
