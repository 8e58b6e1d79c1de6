"""The sidecar's nginx config as rendered from NginxConfig, read back as nginx would parse it:
the process, the proxied and cached locations, the headers, and ``invoke nginx.config``.

Checks the parsed structure per location (not substrings; tests/fixtures/nginx_parse.py). The
asset locations are in test_nginx_conf_assets.py, the hosts and proxies believed in
test_nginx_conf_hosts.py, what nginx -t and gixy say of the result in test_nginx_conf_checked.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from buildtools.errors import BuildToolsError
from buildtools.sidecar import nginx_conf
from tests.fixtures.nginx_parse import (
    IMMUTABLE,
    all_locations,
    asset_locations,
    locations,
    maps,
    parse,
    server_of,
)
from tests.fixtures.sidecar import ROOT, nginx_settings, project_settings

# ---- pure: rendering and checking never load the engine's client ----


def test_rendering_and_checks_do_not_import_docker():
    pure = (
        "sidecar.nginx_conf",
        "config.nginx_checks",
        "sidecar.rails_assets",
        "sidecar.image",
    )
    script = (
        "import sys\n"
        + "".join(f"import buildtools.{name}\n" for name in pure)
        + "print(sorted(m for m in sys.modules if m == 'docker' or m.startswith('docker.')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# ---- what the config says ----


def test_process_and_logs_fit_a_container():
    main = parse(nginx_conf.render_config(nginx_settings()))
    http = main.one("http")
    # The image starts nginx as user nginx already: a `user` directive would only warn.
    assert not main.all("user")
    assert main.one("pid").args == ["/run/nginx/nginx.pid"]
    connections = int(main.one("events").one("worker_connections").args[0])
    assert int(main.one("worker_rlimit_nofile").args[0]) >= 2 * connections
    open_files = int(http.one("open_file_cache").args[0].removeprefix("max="))
    assert int(main.one("worker_rlimit_nofile").args[0]) >= 2 * connections + open_files
    for directive in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        path = http.one(f"{directive}_temp_path").args[0]
        assert path.startswith("/var/cache/nginx/temp/"), directive
    assert main.one("daemon").args == ["off"]
    assert main.one("error_log").args[0] == "stderr"
    assert http.one("access_log").args == ["/dev/stdout", "lara", "buffer=32k", "flush=1s"]
    log_format = " ".join(http.one("log_format").args[1:])
    assert "$upstream_cache_status" in log_format
    assert "$upstream_response_time" in log_format
    assert http.one("server_tokens").args == ["off"]


def test_every_proxied_location_sends_laras_headers():
    server = server_of(nginx_settings())
    proxied = [loc for loc in server.all("location") if loc.all("proxy_pass")]
    assert len(proxied) == 3
    for location in proxied:
        headers = {name: value for name, value in location.values("proxy_set_header")}
        assert location.one("proxy_pass").args == ["http://$lara_upstream"]
        assert location.one("proxy_redirect").args == ["off"]
        # $host, not $http_host: the name nginx matched, without the client's port.
        assert headers["Host"] == "$host"
        assert headers["X-Forwarded-For"] == "$lara_forwarded_for"
        assert headers["X-Forwarded-Proto"] == "$lara_forwarded_proto"
        assert headers["X-Forwarded-Port"] == "$lara_forwarded_port"
        assert headers["X-Request-Start"] == "t=${msec}"
        assert headers["X-Forwarded-Host"] == "$lara_forwarded_host"
        # Sent empty, so nginx drops what a client or a proxy sent under these names.
        for name in (
            "Forwarded",
            "X-Forwarded-Ssl",
            "X-Forwarded-Scheme",
            "X-Real-IP",
            "Client-IP",
        ):
            assert headers[name] == "", name
    http = parse(nginx_conf.render_config(nginx_settings())).one("http")
    assert http.one("proxy_read_timeout").args == ["3m"]
    assert http.one("client_max_body_size").args == ["10m"]  # LARA's own value
    assert maps(nginx_settings())["$lara_proto_port"] == {"https": "443", "default": "80"}


def test_every_location_is_answered_from_disk_first():
    server = server_of(nginx_settings())
    fingerprinted, other = asset_locations(server)
    assert fingerprinted.one("try_files").args == ["$uri", "@fingerprinted_from_app"]
    assert other.one("try_files").args == ["$uri", "@asset_from_app"]
    assert locations(server)["/"].one("try_files").args == ["$uri", "@app"]
    http = parse(nginx_conf.render_config(nginx_settings())).one("http")
    assert http.one("open_file_cache").args[0].startswith("max=")


def test_gzip_is_on_for_assets_from_disk_and_from_the_app_but_not_for_pages():
    server = server_of(nginx_settings())
    fingerprinted, other = asset_locations(server)
    from_app = locations(server)
    for location in (
        fingerprinted,
        other,
        from_app["@fingerprinted_from_app"],
        from_app["@asset_from_app"],
    ):
        assert location.one("gzip").args == ["on"], location.args
    for location in (fingerprinted, other):
        assert location.one("gzip_static").args == ["on"]
    # Pages from the app (BREACH): nginx's default, off, for @app and everything else.
    http = parse(nginx_conf.render_config(nginx_settings())).one("http")
    assert not http.all("gzip") and not server.all("gzip")
    assert not from_app["@app"].all("gzip") and not from_app["/"].all("gzip")
    assert http.one("gzip_proxied").args == ["any"]
    assert {"text/css", "application/javascript", "text/plain"} <= set(http.one("gzip_types").args)


def test_gzip_pages_compresses_the_apps_pages_when_asked():
    from_app = locations(server_of(nginx_settings(gzip_pages=True)))
    assert from_app["@app"].one("gzip").args == ["on"]


def test_cached_locations_share_no_cookies_and_keep_only_200s():
    server = server_of(nginx_settings())
    cached = [loc for loc in server.all("location") if loc.all("proxy_cache")]
    assert [loc.args for loc in cached] == [["@fingerprinted_from_app"], ["@asset_from_app"]]
    for location in cached:
        headers = {name: value for name, value in location.values("proxy_set_header")}
        assert headers["Cookie"] == ""
        assert ["Set-Cookie"] in location.values("proxy_hide_header")
        ignored = [name for args in location.values("proxy_ignore_headers") for name in args]
        assert "Set-Cookie" not in ignored
        assert location.one("proxy_no_cache").args == [
            "$lara_not_200",
            "$upstream_http_set_cookie",
            "$http_authorization",
            "$lara_app_private",
            "$lara_varies",
        ]
        # One host's answer is never another's (the default key is the app's address and URI).
        key = location.one("proxy_cache_key").args[0]
        assert key.startswith("$scheme://$host$request_uri")
        assert location.one("proxy_cache_bypass").args == ["$http_authorization"]
        assert location.one("proxy_cache_valid").args[0] == "200"
        assert location.one("proxy_cache_lock").args == ["on"]
        assert "error" in location.one("proxy_cache_use_stale").args
        # X-Cache-Status only where the container asks for it (LARA_CACHE_STATUS, invoke up).
        assert ["X-Cache-Status", "$lara_cache_status", "always"] in location.values("add_header")
    found = maps(nginx_settings())
    assert found["$lara_not_200"] == {"200": "0", "default": "1"}
    assert found["$lara_cache_status"] == {"1": "$upstream_cache_status", "default": ""}
    cache_path = (
        parse(nginx_conf.render_config(nginx_settings())).one("http").one("proxy_cache_path")
    )
    assert {"max_size=1g", "inactive=7d", "use_temp_path=off"} <= set(cache_path.args)


def test_locations_adding_headers_repeat_the_security_headers():
    server = server_of(nginx_settings())
    adding = [server, *(loc for loc in all_locations(server) if loc.all("add_header"))]
    assert len(adding) == 5
    for block in adding:
        names = [args[0] for args in block.values("add_header")]
        assert "X-Content-Type-Options" in names, block.args
        assert "X-Frame-Options" in names, block.args


def test_cache_control_is_immutable_only_for_fingerprinted_200s():
    found = maps(nginx_settings(short_max_age=120))
    scope = "$lara_cache_scope"
    assert found["$lara_cache_control_fingerprinted"]["200"] == f"{scope}, {IMMUTABLE}"
    assert found["$lara_cache_control_fingerprinted"]["default"] == "no-store"
    assert found["$lara_cache_control_short"]["200"] == f"{scope}, max-age=120"
    assert found["$lara_cache_control_short"]["default"] == "no-store"
    # A request with Authorization: no shared cache may keep the answer.
    assert found[scope] == {"": "public", "default": "private"}


def test_health_and_hidden_files_never_reach_the_app():
    server = server_of(nginx_settings())
    health = locations(server)["= /nginx-health"]
    assert health.one("return").args == ["200", "ok\\n"]
    assert not health.all("proxy_pass")
    hidden = next(loc for loc in server.all("location") if "well-known" in " ".join(loc.args))
    assert hidden.one("return").args == ["404"]
    assert re.search(hidden.args[1], "/assets/.sprockets-manifest-abc.json")
    assert not re.search(hidden.args[1], "/.well-known/acme-challenge/x")


def test_upstream_and_resolver_come_from_the_config():
    cfg = nginx_settings(upstream="web:8080", resolver="10.0.0.2", resolver_valid="2s")
    http = parse(nginx_conf.render_config(cfg)).one("http")
    assert http.one("resolver").args == ["10.0.0.2", "valid=2s", "ipv6=off"]
    written = {m.args[1]: m for m in parse(nginx_conf.render_upstream(cfg.upstream)).all("map")}
    assert written["$lara_upstream"].one("default").args == ["web:8080"]
    assert written["$lara_cache_status_shown"].one("default").args == ["0"]  # production: off
    shown = parse(nginx_conf.render_upstream(cfg.upstream, cache_status=True)).all("map")
    assert shown[1].one("default").args == ["1"]


def test_new_keys_are_read_from_invoke_yaml_and_the_environment():
    cfg = project_settings().nginx
    assert (cfg.server_names, cfg.trusted_proxies, cfg.asset_fallback) == ((), (), "auto")
    assert cfg.client_max_body_size == "10m"
    done = subprocess.run(
        [sys.executable, "-m", "invoke", "nginx.config"],
        cwd=ROOT,
        env={
            **os.environ,
            "INVOKE_BUILDTOOLS_NGINX_SERVER_NAMES": "lara.example.org, www.example.org",
            "INVOKE_BUILDTOOLS_NGINX_TRUSTED_PROXIES": "10.0.0.0/8",
            "INVOKE_BUILDTOOLS_NGINX_ASSET_FALLBACK": "404",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    http = parse(done.stdout).one("http")
    assert http.all("server")[1].one("server_name").args == ["lara.example.org", "www.example.org"]
    assert http.one("set_real_ip_from").args == ["10.0.0.0/8"]
    assert "# asset_fallback: 404" in done.stdout


def test_invoke_nginx_config_prints_the_rendered_config():
    done = subprocess.run(
        [sys.executable, "-m", "invoke", "nginx.config"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == nginx_conf.render_config(project_settings().nginx)


def test_invoke_nginx_config_reports_a_bad_value_in_one_line():
    done = subprocess.run(
        [sys.executable, "-m", "invoke", "nginx.config"],
        cwd=ROOT,
        env={**os.environ, "INVOKE_BUILDTOOLS_NGINX_UPSTREAM": "app"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: nginx upstream 'app' is not host:port"
        " (fix: set buildtools.nginx.upstream (or APP_UPSTREAM) like app:3000)"
    ]


def test_access_log_buffer_can_be_turned_off():
    assert "access_log /dev/stdout lara;" in nginx_conf.render_config(
        nginx_settings(access_log_buffer="")
    )
    with pytest.raises(BuildToolsError, match="access_log_buffer"):
        nginx_conf.render_config(nginx_settings(access_log_buffer="lots"))
