"""``asset_fallback: auto`` resolved against real images: the files and ENV read from them."""

from __future__ import annotations

import dataclasses
import io
import secrets
import tarfile

import pytest

from buildtools import asset_fallback
from tests.fixtures.held_images import discard
from tests.fixtures.sidecar import TEST_REPOSITORY

pytestmark = pytest.mark.docker


RAILS_PRODUCTION_RB = """\
Rails.application.configure do
  config.public_file_server.enabled = ENV['RAILS_SERVE_STATIC_FILES'].present?
end
"""


def test_asset_fallback_auto_is_resolved_from_the_app_image(
    docker_client, app_image, sidecar_settings, base_image
):
    cfg = dataclasses.replace(sidecar_settings, asset_fallback="auto")
    # An image without config/environments/production.rb (not Rails): it may serve public/.
    assert asset_fallback.read_app_files(docker_client, base_image) == {}
    assert (
        asset_fallback.resolve_asset_fallback(cfg, docker_client, base_image).asset_fallback
        == "proxy"
    )
    # The example app is configured like LARA: public/ served only with RAILS_SERVE_STATIC_FILES.
    assert "config/environments/production.rb" in asset_fallback.read_app_files(
        docker_client, app_image
    )
    assert (
        asset_fallback.resolve_asset_fallback(cfg, docker_client, app_image).asset_fallback == "404"
    )

    # A Rails app image that serves files only if RAILS_SERVE_STATIC_FILES is set.
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        body = RAILS_PRODUCTION_RB.encode()
        info = tarfile.TarInfo("environments/production.rb")
        info.size, info.mode = len(body), 0o644
        tar.addfile(info, io.BytesIO(body))
    container = docker_client.containers.create(app_image, command=["true"])
    tag = secrets.token_hex(6)
    try:
        assert container.put_archive("/lara/config", archive.getvalue())
        rails = container.commit(repository=f"{TEST_REPOSITORY}/rails-app", tag=tag)
        served = container.commit(
            repository=f"{TEST_REPOSITORY}/rails-app",
            tag=f"{tag}-static",
            changes=["ENV RAILS_SERVE_STATIC_FILES=1"],
        )
    finally:
        container.remove(force=True)
    try:
        files = asset_fallback.read_app_files(docker_client, rails.id)
        assert files == {"config/environments/production.rb": RAILS_PRODUCTION_RB}
        assert (
            asset_fallback.resolve_asset_fallback(cfg, docker_client, rails.id).asset_fallback
            == "404"
        )
        assert (
            asset_fallback.resolve_asset_fallback(cfg, docker_client, served.id).asset_fallback
            == "proxy"
        )
        explicit = dataclasses.replace(cfg, asset_fallback="proxy")
        assert asset_fallback.resolve_asset_fallback(explicit, docker_client, rails.id) is explicit
    finally:
        for image in (served, rails):
            discard(docker_client, image.id)
