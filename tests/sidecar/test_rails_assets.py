"""``asset_fallback: auto``: what a Rails app image can serve, read from its files and ENV."""

from __future__ import annotations

import pytest

from buildtools.sidecar import rails_assets

PRODUCTION = "config/environments/production.rb"


@pytest.mark.parametrize(
    ("production_rb", "env", "expected"),
    [
        # LARA (concord-consortium/lara): the app never serves /assets.
        (
            "  config.public_file_server.enabled = false\n  config.assets.compile = false\n",
            {},
            "404",
        ),
        # Rails' generated production.rb: serves files only if the variable is set.
        (
            "config.public_file_server.enabled = ENV['RAILS_SERVE_STATIC_FILES'].present?\n",
            {},
            "404",
        ),
        (
            'config.public_file_server.enabled = ENV["RAILS_SERVE_STATIC_FILES"].present?\n',
            {"RAILS_SERVE_STATIC_FILES": "1"},
            "proxy",
        ),
        (
            "config.serve_static_files = ENV.fetch('SERVE_STATIC', nil)\n",
            {"SERVE_STATIC": ""},
            "404",
        ),
        ("config.serve_static_assets = false # Rails 4\n", {}, "404"),
        ("config.public_file_server.enabled = nil\n", {}, "404"),
        ("config.public_file_server.enabled = true\n", {}, "proxy"),
        # The last assignment wins, as in Ruby; comments are not code.
        (
            "config.public_file_server.enabled = true\nconfig.public_file_server.enabled = false\n",
            {},
            "404",
        ),
        ("# config.public_file_server.enabled = false\n", {}, "proxy"),
        # The app compiles missing assets itself.
        ("config.public_file_server.enabled = false\nconfig.assets.compile = true\n", {}, "proxy"),
        # Rails' default is to serve public/; unknown expressions are not guessed.
        ("config.log_level = :info\n", {}, "proxy"),
        ("config.public_file_server.enabled = Settings.static?\n", {}, "proxy"),
    ],
)
def test_asset_fallback_for_reads_what_the_app_can_do(production_rb, env, expected):
    assert rails_assets.asset_fallback_for({PRODUCTION: production_rb}, env) == expected
    value, why = rails_assets.explain_asset_fallback({PRODUCTION: production_rb}, env)
    assert value == expected and PRODUCTION in why


def test_asset_fallback_for_an_app_without_rails_config_proxies():
    # The bundled example app (a Rack app) serves public/ itself.
    assert rails_assets.asset_fallback_for({}) == "proxy"
    assert "has no config/environments/production.rb" in rails_assets.explain_asset_fallback({})[1]
