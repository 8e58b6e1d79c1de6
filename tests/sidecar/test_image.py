"""What `invoke build` gets for the sidecar: its build context and build args."""

from __future__ import annotations

import dataclasses
import os
import re

import pytest

from buildtools.config.schema import SIDECAR_DIR as SIDECAR
from buildtools.errors import BuildToolsError
from buildtools.sidecar import image, nginx_conf
from tests.fixtures.sidecar import nginx_settings


def test_sidecar_context_holds_what_the_dockerfile_copies(tmp_path):
    cfg = nginx_settings()
    context = image.sidecar_context(cfg, tmp_path / "ctx")

    assert (context / "Dockerfile").read_text() == (SIDECAR / "Dockerfile").read_text()
    assert (context / "nginx.conf").read_text() == nginx_conf.render_config(cfg)
    assert (context / "upstream.conf").read_text() == nginx_conf.render_upstream("app:3000")
    assert os.access(context / "docker-entrypoint.sh", os.X_OK)
    dockerfile = (context / "Dockerfile").read_text()
    copied = re.findall(r"^COPY (?:--chown=\S+ )?(?!--from)(\S+)", dockerfile, re.M)
    assert "healthcheck.sh" in copied
    for line in copied:
        assert (context / line).exists(), line
    before_from = dockerfile[: dockerfile.index("\nFROM ")]
    assert re.search(r"^ARG BASE_IMAGE\b", before_from, re.M)
    assert re.search(r"^ARG APP_IMAGE\b", before_from, re.M)
    assert re.search(r"^STOPSIGNAL SIGQUIT$", dockerfile, re.M)
    assert re.search(r"^USER nginx$", dockerfile, re.M)
    assert re.search(r"^HEALTHCHECK .*\n.*lara-nginx-healthcheck", dockerfile, re.M)


def test_sidecar_context_refuses_a_missing_dockerfile(tmp_path):
    cfg = nginx_settings()
    cfg = dataclasses.replace(
        cfg, image=dataclasses.replace(cfg.image, dockerfile=tmp_path / "nope" / "Dockerfile")
    )
    with pytest.raises(BuildToolsError, match="Dockerfile"):
        image.sidecar_context(cfg, tmp_path / "ctx")


def test_sidecar_buildargs():
    cfg = nginx_settings(upstream="web:8080")
    assert image.sidecar_buildargs(cfg, "sha256:abc") == {
        "BASE_IMAGE": cfg.image.base_image,
        "APP_IMAGE": "sha256:abc",
        "APP_UPSTREAM": "web:8080",
    }
    with pytest.raises(BuildToolsError, match="build the app image first"):
        image.sidecar_buildargs(cfg, "")
