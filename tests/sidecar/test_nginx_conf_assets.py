"""The sidecar's asset locations: which paths are assets, which are fingerprinted (and so
immutable), uploads and source maps, and ``nginx.asset_fallback``.
"""

from __future__ import annotations

import re
import time

import pytest

from buildtools.sidecar import nginx_conf
from tests.fixtures.nginx_parse import (
    HEX64,
    all_locations,
    asset_locations,
    locations,
    parse,
    route,
    server_of,
)
from tests.fixtures.sidecar import nginx_settings


@pytest.mark.parametrize(
    ("path", "fingerprinted"),
    [
        (f"/assets/application-{HEX64}.css", True),
        (f"/assets/application-{HEX64}.css.gz", True),
        (f"/assets/application-{HEX64}.js", True),
        (f"/assets/fonts/icons-{HEX64[:32]}.woff2", True),
        (f"/images/logo-{HEX64[:32]}.png", True),
        (f"/assets/application.css-{HEX64}.map", True),
        (f"/assets/{'x-' * 2000}application-{HEX64}.css", True),
        ("/assets/logo-20201231.png", False),
        (f"/assets/application-{HEX64[:31]}.css", False),
        (f"/assets/application-{HEX64.upper()}.css", False),
        (f"/assets/application-{HEX64}", False),
        (f"/assets/{HEX64}/application.css", False),
        ("/images/lara-logo.svg", False),
        (f"/activities/application-{HEX64}.css", False),
        (f"/assetsx/application-{HEX64}.css", False),
        (f"/assets/application-{HEX64}.css/", False),
        (f"/assets/x-{HEX64}.d/app.css", False),
        # User uploads are never treated as assets, fingerprint-like names included.
        (f"/system/paperclip/1/photo-{HEX64}.jpg", False),
    ],
)
def test_fingerprinted_names(path, fingerprinted):
    server = server_of(nginx_settings(source_maps=True))  # a .map is an asset like the others
    assert (route(server, path) is asset_locations(server)[0]) is fingerprinted


def test_source_maps_are_a_404_before_any_asset_location_unless_configured():
    path = f"/assets/application.js-{HEX64}.map"
    for server in (server_of(nginx_settings()), server_of(nginx_settings(asset_fallback="404"))):
        found = route(server, path)
        assert found is not None and found.values("return") == [["404"]]
    assert route(server_of(nginx_settings()), f"/assets/application-{HEX64}.js").args[1] != (
        "\\.map$"
    )


def test_public_is_served_without_following_symlinks():
    server = server_of(nginx_settings())
    assert server.one("disable_symlinks").args == ["on", "from=$document_root"]


def test_the_fingerprint_regex_takes_linear_time():
    # Python's re backtracks like PCRE: the old one-piece regex took quadratic time on this.
    server = server_of(nginx_settings())
    fingerprinted = asset_locations(server)[0].args[1]
    timings = []
    for n in (250, 2000):
        uri = "/assets/" + ("-" + HEX64[:32] + ".") * n + "/x"
        began = time.perf_counter()
        assert route(server, uri) is not asset_locations(server)[0]
        re.search(fingerprinted, uri)
        timings.append(time.perf_counter() - began)
    assert timings[1] < 8 * timings[0] + 0.01, timings  # 8x the length: 64x if quadratic


@pytest.mark.parametrize(
    ("path", "asset"),
    [
        ("/assets/anything.txt", True),
        ("/swfs/old.swf", True),
        ("/robots.txt", False),
        ("/activities/1", False),
        ("/assetsx/app.css", False),
    ],
)
def test_asset_paths(path, asset):
    server = server_of(nginx_settings())
    assert (route(server, path) in asset_locations(server)) is asset


def test_uploads_go_to_the_app_uncached_and_keep_its_cache_control():
    server = server_of(nginx_settings())
    uploads = route(server, "/system/uploads/1/photo.png")
    assert uploads is not None and uploads.args[1] == "^/(?:system)/"
    assert uploads.one("try_files").args == ["$uri", "@app"]
    assert not uploads.all("add_header") and not uploads.all("location")
    assert not locations(server)["@app"].all("proxy_cache")
    # Without "system" among the prefixes there is no uploads location.
    other = server_of(nginx_settings(asset_prefixes=("assets",)))
    assert route(other, "/system/uploads/1/photo.png") is None


def test_fingerprint_length_and_prefixes_come_from_the_config():
    server = server_of(nginx_settings(asset_prefixes=("packs",), fingerprint_min_length=20))
    fingerprinted = asset_locations(server)[0]
    assert route(server, f"/packs/js/application-{HEX64[:20]}.js") is fingerprinted
    assert route(server, f"/packs/js/application-{HEX64[:19]}.js") is not fingerprinted
    assert route(server, f"/assets/application-{HEX64}.js") is None


# ---- nginx.asset_fallback ----


def test_asset_fallback_404_answers_missing_assets_without_the_app():
    server = server_of(nginx_settings(asset_fallback="404"))
    fingerprinted, other = asset_locations(server)
    assert fingerprinted.one("try_files").args == ["$uri", "=404"]
    assert other.one("try_files").args == ["$uri", "=404"]
    assert [loc.args for loc in all_locations(server) if loc.all("proxy_pass")] == [["@app"]]
    http = parse(nginx_conf.render_config(nginx_settings(asset_fallback="404"))).one("http")
    assert not http.all("proxy_cache_path")


def test_asset_fallback_auto_renders_as_proxy_until_resolved():
    auto = nginx_conf.render_config(nginx_settings(asset_fallback="auto"))
    proxy = nginx_conf.render_config(nginx_settings(asset_fallback="proxy"))
    assert parse(auto) == parse(proxy)  # comments aside
    assert "# asset_fallback: proxy (auto, not resolved against an app image)" in auto
