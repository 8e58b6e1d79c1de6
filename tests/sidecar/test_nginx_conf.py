"""The sidecar's nginx config as rendered from NginxConfig, read back as nginx would parse it.

Checks the parsed structure per location (not substrings), and runs the host's own nginx on
the result with ``nginx -t``.
"""

from __future__ import annotations

import dataclasses
import getpass
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from buildtools.config.schema import NginxConfig
from buildtools.errors import BuildToolsError
from buildtools.sidecar import nginx_conf
from tests.fixtures.services import unavailable
from tests.fixtures.sidecar import ROOT, nginx_settings, project_settings

IMMUTABLE = "max-age=31536000, immutable"
HEX64 = "0123456789abcdef" * 4


@dataclass
class Directive:
    name: str
    args: list[str]
    block: list[Directive] | None = None

    def all(self, name: str) -> list[Directive]:
        return [d for d in self.block or [] if d.name == name]

    def one(self, name: str) -> Directive:
        found = self.all(name)
        assert len(found) == 1, f"{self.name} {self.args}: {len(found)} {name} directives"
        return found[0]

    def values(self, name: str) -> list[list[str]]:
        return [d.args for d in self.all(name)]


TOKEN = re.compile(
    r"""\s+|\#[^\n]*|"((?:\\.|[^"\\])*)"|'((?:\\.|[^'\\])*)'|([{};])|([^\s{};"'\#]+)"""
)


def parse(text: str) -> Directive:
    """nginx config text to a tree of directives (quotes removed, comments dropped)."""
    stack = [Directive("main", [], [])]
    words: list[str] = []
    pos = 0
    while pos < len(text):
        match = TOKEN.match(text, pos)
        assert match, f"cannot tokenize at {text[pos : pos + 40]!r}"
        pos = match.end()
        double, single, punct, word = match.groups()
        if double is not None or single is not None or word is not None:
            words.append(next(g for g in (double, single, word) if g is not None))
        elif punct == ";":
            stack[-1].block.append(Directive(words[0], words[1:]))
            words = []
        elif punct == "{":
            directive = Directive(words[0], words[1:], [])
            stack[-1].block.append(directive)
            stack.append(directive)
            words = []
        elif punct == "}":
            assert not words, f"unterminated directive {words}"
            stack.pop()
    assert len(stack) == 1 and not words, "unbalanced braces"
    return stack[0]


def server_of(cfg: NginxConfig) -> Directive:
    return parse(nginx_conf.render_config(cfg)).one("http").one("server")


def locations(server: Directive) -> dict[str, Directive]:
    return {" ".join(d.args): d for d in server.all("location")}


def all_locations(block: Directive) -> list[Directive]:
    """Every location in ``block``, nested ones after their parent."""
    found = []
    for location in block.all("location"):
        found += [location, *all_locations(location)]
    return found


def asset_locations(server: Directive) -> tuple[Directive, Directive]:
    """(fingerprinted, any other asset) regex locations, told apart by their Cache-Control."""
    found = {}
    for location in (loc for loc in all_locations(server) if loc.args[0] == "~"):
        for name, value, *_ in location.values("add_header"):
            if name == "Cache-Control":
                found[value] = location
    return found["$lara_cache_control_fingerprinted"], found["$lara_cache_control_short"]


def route(block: Directive, uri: str) -> Directive | None:
    """The regex location nginx picks for ``uri``: the first that matches, then its nested ones."""
    for location in block.all("location"):
        if location.args[0] == "~" and re.search(location.args[1], uri):
            return route(location, uri) or location
    return None


def maps(cfg: NginxConfig) -> dict[str, dict[str, str]]:
    """``map`` blocks by their variable: {source value: result}."""
    http = parse(nginx_conf.render_config(cfg)).one("http")
    return {d.args[1]: {e.name: " ".join(e.args) for e in d.block} for d in http.all("map")}


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


# ---- nginx itself accepts it ----


@pytest.fixture
def host_nginx() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else "")
    if not found:
        unavailable("nginx on this host", FileNotFoundError("apt-get install nginx-light"))
    return found


def nginx_t(host_nginx: str, cfg: NginxConfig, tmp_path: Path) -> subprocess.CompletedProcess:
    """``nginx -t`` of the config rendered for ``cfg`` with every path moved into tmp_path."""
    layout = nginx_conf.Layout(
        user=getpass.getuser(),
        listen="127.0.0.1:18080",
        pid=str(tmp_path / "nginx.pid"),
        upstream_conf=str(tmp_path / "upstream.conf"),
        public_root=str(tmp_path / "public"),
        cache_dir=str(tmp_path / "cache"),
        temp_dir=str(tmp_path / "temp"),
    )
    for folder in ("public", "temp"):
        (tmp_path / folder).mkdir()
    (tmp_path / "upstream.conf").write_text(nginx_conf.render_upstream(cfg.upstream))
    conf = tmp_path / "nginx.conf"
    conf.write_text(nginx_conf.render_config(cfg, layout))
    return subprocess.run(
        [host_nginx, "-t", "-c", str(conf), "-p", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_default_config_passes_nginx_t_although_the_app_name_does_not_resolve(host_nginx, tmp_path):
    # "app" is unknown to this host's DNS: nginx must not need it until a request comes.
    done = nginx_t(host_nginx, nginx_settings(), tmp_path)
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr


def test_customised_config_passes_nginx_t(host_nginx, tmp_path):
    cfg = nginx_settings(
        upstream="10.1.2.3:8080",
        asset_prefixes=("packs", "assets", "uploads/public"),
        cache_size="200m",
        cache_inactive="1h30m",
        short_max_age=60,
        client_max_body_size="20m",
        proxy_read_timeout="90s",
        proxy_connect_timeout="2s",
        resolver="10.0.0.2 10.0.0.3:53",
        resolver_valid="30s",
        fingerprint_min_length=20,
        gzip_pages=True,
    )
    done = nginx_t(host_nginx, cfg, tmp_path)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("asset_fallback", ["auto", "proxy", "404"])
@pytest.mark.parametrize("trusted_proxies", [(), ("10.0.0.0/8", "192.0.2.7", "2001:db8::/32")])
@pytest.mark.parametrize("server_names", [(), ("lara.example.org", "*.concord.org")])
def test_every_combination_of_the_new_keys_passes_nginx_t(
    host_nginx, tmp_path, server_names, trusted_proxies, asset_fallback
):
    cfg = nginx_settings(
        server_names=server_names, trusted_proxies=trusted_proxies, asset_fallback=asset_fallback
    )
    done = nginx_t(host_nginx, cfg, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "[warn]" not in done.stderr


def test_nginx_t_fails_when_the_upstream_file_is_missing(host_nginx, tmp_path):
    # The image's entrypoint writes it; without it nginx must refuse to start.
    done = nginx_t(host_nginx, nginx_settings(), tmp_path)
    assert done.returncode == 0
    (tmp_path / "upstream.conf").unlink()
    again = subprocess.run(
        [host_nginx, "-t", "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert again.returncode != 0


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


# ---- nginx.server_names: other hosts never reach the app ----


def test_without_server_names_one_server_answers_every_host():
    http = parse(nginx_conf.render_config(nginx_settings())).one("http")
    (server,) = http.all("server")
    assert server.one("listen").args == ["80", "default_server"]
    assert server.one("server_name").args == ["_"]


def test_with_server_names_a_default_server_refuses_other_hosts_but_answers_health():
    cfg = nginx_settings(server_names=("LARA.example.org", "*.concord.org", "lara.example.org."))
    default, site = parse(nginx_conf.render_config(cfg)).one("http").all("server")

    assert default.one("listen").args == ["80", "default_server"]
    assert default.one("server_name").args == ["_"]
    refuse = locations(default)["/"]
    assert refuse.one("return").args == ["421"]
    assert not [d for d in default.block if d.name.startswith("proxy_")]
    assert locations(default)["= /nginx-health"].one("return").args == ["200", "ok\\n"]

    assert site.one("listen").args == ["80"]
    assert site.one("server_name").args == ["lara.example.org", "*.concord.org"]
    assert locations(site)["/"].one("try_files").args == ["$uri", "@app"]
    assert "= /nginx-health" in locations(site)


# ---- nginx.trusted_proxies: X-Forwarded-* believed only from them ----


def test_without_trusted_proxies_forwarded_headers_come_from_the_connection():
    http = parse(nginx_conf.render_config(nginx_settings())).one("http")
    found = maps(nginx_settings())
    assert not http.all("set_real_ip_from")
    geo = http.one("geo")
    assert geo.args == ["$realip_remote_addr", "$lara_trusted_proxy"]
    assert {d.name: d.args for d in geo.block} == {"default": ["0"]}
    # Whatever the client sends, an untrusted peer (0) gets the connection's values.
    for variable in ("$lara_forwarded_for", "$lara_forwarded_proto", "$lara_forwarded_port"):
        assert all(
            key == "default" or key.startswith(("~^1:", "~*^1:", "1:")) for key in found[variable]
        )
    assert found["$lara_forwarded_for"]["default"] == "$realip_remote_addr"
    assert found["$lara_forwarded_proto"]["default"] == "$scheme"
    assert found["$lara_forwarded_port"]["default"] == "$server_port"
    # No server_names to check a forwarded host against: never passed.
    assert found["$lara_forwarded_host"] == {"default": ""}


def test_trusted_proxies_feed_realip_and_the_trust_map():
    cfg = nginx_settings(trusted_proxies=("10.0.0.0/8", "192.0.2.7", "2001:db8::/32"))
    http = parse(nginx_conf.render_config(cfg)).one("http")
    networks = ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"]
    assert [d.args[0] for d in http.all("set_real_ip_from")] == networks
    assert http.one("real_ip_header").args == ["X-Forwarded-For"]
    assert http.one("real_ip_recursive").args == ["on"]
    geo = {d.name: d.args for d in http.one("geo").block}
    assert geo == {"default": ["0"], **{network: ["1"] for network in networks}}


def test_a_forwarded_port_is_passed_only_if_it_is_1_to_65535():
    found = maps(nginx_settings(trusted_proxies=("10.0.0.0/8",)))["$lara_forwarded_port"]
    (accepting,) = [key for key, value in found.items() if value == "$1"]

    def passed(port: str) -> bool:
        return re.fullmatch(accepting[1:], f"1:{port}") is not None

    assert [p for p in ("1", "80", "443", "8443", "65535") if not passed(p)] == []
    assert [p for p in ("0", "00080", "65536", "99999", "123456", "-1", "8o") if passed(p)] == []
    assert all(passed(str(port)) for port in range(1, 65536))
    # Anything else from a trusted proxy: the forwarded scheme's port.
    assert found["~^1:"] == "$lara_proto_port"


def test_a_forwarded_host_is_passed_only_from_a_trusted_proxy_naming_a_server_name():
    cfg = nginx_settings(
        trusted_proxies=("10.0.0.0/8",), server_names=("lara.example.org", "*.concord.org")
    )
    found = maps(cfg)
    (name_regex,) = [key for key in found["$lara_forwarded_host_name"] if key.startswith("~")]
    assert found["$lara_forwarded_host_name"][name_regex] == "$1"
    for value, name in [
        ("lara.example.org", "lara.example.org"),
        ("lara.example.org:443", "lara.example.org"),
        ("lara.example.org:99999", None),
        ("evil.example, lara.example.org", "evil.example, lara.example.org"),
        ("", None),
    ]:
        match = re.fullmatch(name_regex[1:], value)
        assert (match[1] if match else None) == name, value
    listed = found["$lara_forwarded_host_listed"]
    assert listed == {
        "hostnames": "",
        "default": "0",
        "lara.example.org": "1",
        "*.concord.org": "1",
    }
    # Trusted (1) and listed (1): passed as sent; anything else: not passed.
    assert found["$lara_forwarded_host"] == {"default": "", "11": "$http_x_forwarded_host"}


def gixy(cfg: NginxConfig, tmp_path: Path) -> list:
    """gixy-ng's findings (``--deep``: ReDoS analysis included) for the config of ``cfg``."""
    found = shutil.which("gixy", path=str(Path(sys.executable).parent)) or shutil.which("gixy")
    if not found:
        unavailable("gixy-ng", FileNotFoundError("pip install 'gixy-ng[deep]' (test extras)"))
    (tmp_path / "upstream.conf").write_text(nginx_conf.render_upstream(cfg.upstream))
    conf = tmp_path / "nginx.conf"
    layout = dataclasses.replace(
        nginx_conf.IMAGE_LAYOUT, upstream_conf=str(tmp_path / "upstream.conf")
    )
    conf.write_text(nginx_conf.render_config(cfg, layout))
    done = subprocess.run(
        [found, "--deep", "-f", "json", str(conf)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"asset_fallback": "404"},
        {
            "server_names": ("lara.example.org", "*.concord.org"),
            "trusted_proxies": ("10.0.0.0/8", "2001:db8::/32"),
            "asset_prefixes": ("packs", "assets", "uploads/public", "system"),
            "fingerprint_min_length": 20,
        },
    ],
    ids=["default", "404", "names-and-proxies"],
)
def test_gixy_deep_finds_nothing_in_the_rendered_config(changes, tmp_path):
    assert gixy(nginx_settings(**changes), tmp_path) == []


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
