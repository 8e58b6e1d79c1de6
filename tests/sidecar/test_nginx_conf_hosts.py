"""Whom the sidecar's nginx believes: ``nginx.server_names`` (other hosts never reach the app)
and ``nginx.trusted_proxies`` (X-Forwarded-* believed only from them).
"""

from __future__ import annotations

import re

from buildtools.sidecar import nginx_conf
from tests.fixtures.nginx_parse import locations, maps, parse
from tests.fixtures.sidecar import nginx_settings

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
