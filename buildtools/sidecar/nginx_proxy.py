"""What the sidecar tells the app about each request, in nginx.conf.

Which client facts are believed (``X-Forwarded-*`` only from ``nginx.trusted_proxies``, a
forwarded host only if it is one of ``nginx.server_names``) is decided once in the http block
(:func:`forwarding`); every location that proxies to the app then sends the same headers
(:func:`proxy`). Apart from the server blocks because this is the part a spoofed header attacks.
"""

from __future__ import annotations

from buildtools.config.nginx_checks import check_server_names, check_trusted_proxies
from buildtools.config.schema import NginxConfig

# A port 1-65535, as nginx's PCRE reads it: no value outside that range reaches the app.
PORT = "(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"

# Request headers that name another address, scheme or host, which Rails does not need from a
# proxy (it reads X-Forwarded-For, -Proto, -Port and -Host): never passed on, whoever sends them.
DROPPED_HEADERS = ("X-Forwarded-Ssl", "X-Forwarded-Scheme", "Forwarded", "X-Real-IP", "Client-IP")


def proxy(indent: str, *, cached: bool) -> str:
    # proxy_set_header in a location drops the inherited ones, so each proxy location has all.
    lines = [
        "proxy_pass http://$lara_upstream;",
        "proxy_redirect off;",
        # $host: the checked name, without the client's port (nginx.server_names).
        "proxy_set_header Host $host;",
        "proxy_set_header X-Forwarded-For $lara_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $lara_forwarded_proto;",
        "proxy_set_header X-Forwarded-Port $lara_forwarded_port;",
        "proxy_set_header X-Forwarded-Host $lara_forwarded_host;",
        'proxy_set_header X-Request-Start "t=${msec}";',
        *(f'proxy_set_header {name} "";' for name in DROPPED_HEADERS),
    ]
    if cached:
        lines += [
            "# Shared by every client: no cookie goes up, none comes back (nor is stored).",
            "# Authorization goes up (the app may guard its files), but such a request bypasses",
            "# the cache and its answer is never stored (see proxy_no_cache).",
            'proxy_set_header Cookie "";',
            "proxy_hide_header Set-Cookie;",
            "proxy_set_header Accept-Encoding $lara_accept_gzip;",
            "proxy_hide_header Cache-Control;",
            "proxy_hide_header Expires;",
        ]
    return "".join(f"{indent}{line}\n" for line in lines)


def forwarding(cfg: NginxConfig) -> str:
    """X-Forwarded-* for the app: the client's only from a trusted proxy, else the connection's.

    The realip module makes $remote_addr the client behind a trusted proxy; $realip_remote_addr
    stays the peer, whose trust the geo block decides. A forwarded port is passed only if it is
    1-65535; a forwarded host only if it is one of nginx.server_names (else the app sees Host,
    which server_name has checked), and never without server_names.
    """
    networks = check_trusted_proxies(cfg.trusted_proxies)
    names = check_server_names(cfg.server_names)
    lines = [
        "# X-Forwarded-* from the client are believed only from nginx.trusted_proxies:",
        f"# {', '.join(map(str, networks)) or 'none'}. Otherwise the connection's values are sent.",
    ]
    if networks:
        lines += [f"set_real_ip_from {network};" for network in networks]
        lines += ["real_ip_header X-Forwarded-For;", "real_ip_recursive on;"]
    lines += [
        "geo $realip_remote_addr $lara_trusted_proxy {",
        "    default 0;",
        *(f"    {network} 1;" for network in networks),
        "}",
        'map "$lara_trusted_proxy:$http_x_forwarded_for" $lara_forwarded_for {',
        "    default $realip_remote_addr;",
        '    "~^1:." "$http_x_forwarded_for, $realip_remote_addr";',
        "}",
        'map "$lara_trusted_proxy:$http_x_forwarded_proto" $lara_forwarded_proto {',
        "    default $scheme;",
        '    "~*^1:https$" https;',
        '    "~*^1:http$" http;',
        "}",
        "# From a trusted proxy: its port if 1-65535, else the forwarded scheme's.",
        'map "$lara_trusted_proxy:$http_x_forwarded_port" $lara_forwarded_port {',
        "    default $server_port;",
        f'    "~^1:({PORT})$" $1;',
        '    "~^1:" $lara_proto_port;',
        "}",
        "map $lara_forwarded_proto $lara_proto_port {",
        "    https 443;",
        "    default 80;",
        "}",
    ]
    if names:
        lines += [
            "# X-Forwarded-Host: from a trusted proxy, naming one of nginx.server_names (with a",
            "# port 1-65535 or none); otherwise it is not passed and the app reads Host.",
            "map $http_x_forwarded_host $lara_forwarded_host_name {",
            '    default "";',
            f'    "~^([^:]+)(?::{PORT})?$" $1;',
            "}",
            "map $lara_forwarded_host_name $lara_forwarded_host_listed {",
            "    hostnames;",
            "    default 0;",
            *(f"    {name} 1;" for name in names),
            "}",
            'map "$lara_trusted_proxy$lara_forwarded_host_listed" $lara_forwarded_host {',
            '    default "";',
            "    11 $http_x_forwarded_host;",
            "}",
        ]
    else:
        lines += [
            "# X-Forwarded-Host is never passed without nginx.server_names to check it against.",
            'map "" $lara_forwarded_host {',
            '    default "";',
            "}",
        ]
    return "".join(f"    {line}\n" for line in lines)
