"""The sidecar's nginx.conf and upstream.conf, rendered from ``NginxConfig``.

The sidecar carries the app image's precompiled ``public/`` and serves it from disk; everything
else goes to the app (``APP_UPSTREAM``). Asset paths missing on disk (an older sidecar in a
rolling deploy) are either fetched from the app through a cache that never keeps errors or
cookies (``asset_fallback: proxy``) or answered with nginx's own 404 (``404``, for apps that
never serve assets, as LARA: see :mod:`buildtools.sidecar.rails_assets`).

``invoke nginx.config`` prints :func:`render_config`. The entrypoint writes
:func:`render_upstream`'s line again at container start from ``APP_UPSTREAM``
(buildtools/sidecar/docker-entrypoint.sh). Pure: values are checked as their keys declare
(:mod:`buildtools.config.keys`); nothing here reads the engine or files.
"""

from __future__ import annotations

from dataclasses import dataclass

from buildtools.config.nginx_checks import (
    check_asset_prefixes,
    check_server_names,
    check_trusted_proxies,
    check_upstream,
)
from buildtools.config.schema import NginxConfig, check_nginx

# Cache-Control of fingerprinted and other assets after "public" (anonymous requests) or "private"
# (requests with Authorization: a shared cache, a CDN's too, must not keep what the app answered).
IMMUTABLE = "max-age=31536000, immutable"

# Rails' folder for user uploads (paperclip, carrierwave): listed in asset_prefixes, it is served
# from disk when there and otherwise by the app, as the app decides; never cached by the sidecar.
UPLOAD_PREFIXES = ("system",)

# A port 1-65535, as nginx's PCRE reads it: no value outside that range reaches the app.
PORT = "(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"

# Each worker holds up to two descriptors per connection (client, app) and the open_file_cache's:
# worker_rlimit_nofile covers both with room for logs, listeners and cache files.
WORKER_CONNECTIONS = 1024
OPEN_FILE_CACHE_MAX = 2000
WORKER_RLIMIT_NOFILE = 2 * WORKER_CONNECTIONS + OPEN_FILE_CACHE_MAX + 48

# Request headers that name another address, scheme or host, which Rails does not need from a
# proxy (it reads X-Forwarded-For, -Proto, -Port and -Host): never passed on, whoever sends them.
DROPPED_HEADERS = ("X-Forwarded-Ssl", "X-Forwarded-Scheme", "Forwarded", "X-Real-IP", "Client-IP")


@dataclass(frozen=True)
class Layout:
    """Where the rendered config expects files: the sidecar image's, unless a test moves them.

    ``user`` is empty in the image: nginx starts as the unprivileged ``nginx`` user already
    (the Dockerfile's USER), where a ``user`` directive would only log a warning.
    """

    user: str = ""
    listen: str = "80"
    pid: str = "/run/nginx/nginx.pid"
    mime_types: str = "/etc/nginx/mime.types"
    upstream_conf: str = "/etc/nginx/lara/upstream.conf"
    public_root: str = "/lara/public"
    cache_dir: str = "/var/cache/nginx/lara"
    temp_dir: str = "/var/cache/nginx/temp"


IMAGE_LAYOUT = Layout()


def _under(prefixes: tuple[str, ...]) -> str:
    return "^/(?:" + "|".join(p.replace(".", r"\.") for p in prefixes) + ")/" if prefixes else ""


def asset_regexes(cfg: NginxConfig) -> tuple[str, str, str]:
    """PCRE for (any asset path, a fingerprinted name's end, any upload path); "" for none.

    The fingerprint is matched inside the asset location, so its regex needs no prefix and no
    directories: ``-<hex digest>.<ext>`` at the end, the extension without ``-`` or ``/``. Each
    ``-`` in the URI starts at most one scan, which ends at the next ``-``: linear time in the
    URI's length (a ``[^/]*-<digest>\\.[^/]+$`` in one regex was quadratic).
    """
    prefixes = check_asset_prefixes(cfg.asset_prefixes)
    assets = tuple(p for p in prefixes if p not in UPLOAD_PREFIXES)
    uploads = tuple(p for p in prefixes if p in UPLOAD_PREFIXES)
    digest = f"[0-9a-f]{{{cfg.fingerprint_min_length},}}"
    return _under(assets), f"-{digest}\\.[^/-]+$", _under(uploads)


def render_upstream(upstream: str) -> str:
    """The line nginx.conf includes to learn the app's address (the entrypoint rewrites it)."""
    check_upstream(upstream)
    return (
        "# Written by the entrypoint from APP_UPSTREAM.\n"
        f'map "" $lara_upstream {{ default "{upstream}"; }}\n'
    )


def _security_headers(indent: str) -> str:
    # An add_header inside a location drops the inherited ones: every such location repeats them.
    return (
        f"{indent}add_header X-Content-Type-Options $lara_x_content_type_options always;\n"
        f"{indent}add_header X-Frame-Options $lara_x_frame_options always;\n"
    )


def _proxy(indent: str, *, cached: bool) -> str:
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


def _forwarding(cfg: NginxConfig) -> str:
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


def _cached(indent: str, valid: str) -> str:
    lines = [
        "proxy_cache lara_assets;",
        f"proxy_cache_valid 200 {valid};",
        "# Only 200s without Set-Cookie are stored: a 404 during a deploy must not stick. A",
        "# request with Authorization always asks the app, and its answer is never stored.",
        "proxy_cache_bypass $http_authorization;",
        "proxy_no_cache $lara_not_200 $upstream_http_set_cookie $http_authorization;",
        "proxy_cache_lock on;",
        "proxy_cache_lock_timeout 10s;",
        "proxy_cache_use_stale error timeout updating http_500 http_502 http_503 http_504;",
        "proxy_cache_background_update on;",
        "proxy_cache_revalidate on;",
        "add_header X-Cache-Status $upstream_cache_status always;",
    ]
    return "".join(f"{indent}{line}\n" for line in lines)


def _site(cfg: NginxConfig, lo: Layout, listen: str, names: str) -> str:
    """The server block that serves LARA: public/ from disk, the rest from the app."""
    any_asset, fingerprinted, uploads = asset_regexes(cfg)
    i2, i3, i4 = " " * 8, " " * 12, " " * 16
    fallback = cfg.asset_fallback if cfg.asset_fallback != "auto" else "proxy"
    if fallback == "404":
        # The app never serves assets: a miss is nginx's own 404 and never reaches it.
        from_app_fingerprinted, from_app_other, from_app = "=404", "=404", ""
    else:
        from_app_fingerprinted, from_app_other = "@fingerprinted_from_app", "@asset_from_app"
        from_app = f"""
        # Not on disk: a newer app's asset during a rolling deploy. Fetched once, then cached.
        location @fingerprinted_from_app {{
            gzip on;
{_proxy(i3, cached=True)}{_cached(i3, "365d")}\
            add_header Cache-Control $lara_cache_control_fingerprinted always;
{_security_headers(i3)}        }}

        location @asset_from_app {{
            gzip on;
{_proxy(i3, cached=True)}{_cached(i3, f"{cfg.short_max_age}s")}\
            add_header Cache-Control $lara_cache_control_short always;
{_security_headers(i3)}        }}
"""
    upload_location = ""
    if uploads:
        upload_location = f"""
        # User uploads: from disk if a volume holds them, else the app serves them as it decides
        # (who may see them, for how long): never cached here, never given a Cache-Control.
        location ~ "{uploads}" {{
            try_files $uri @app;
        }}
"""
    asset_location = ""
    if any_asset:
        asset_location = f"""
        # Files under the asset paths may change with a deploy: a short max-age. Compressed
        # here (or their .gz sibling sent): they hold no secret, unlike the app's pages.
        location ~ "{any_asset}" {{
            gzip on;
            gzip_static on;
            add_header Cache-Control $lara_cache_control_short always;
{_security_headers(i3)}            try_files $uri {from_app_other};

            # Fingerprinted assets (name-<hex digest>.ext) never change: cache them for a year.
            location ~ "{fingerprinted}" {{
                gzip on;
                gzip_static on;
                add_header Cache-Control $lara_cache_control_fingerprinted always;
{_security_headers(i4)}                try_files $uri {from_app_fingerprinted};
            }}
        }}
"""
    return f"""\
    server {{
        listen {listen};
        server_name {names};
        root {lo.public_root};
{_security_headers(i2)}
{_health(i2)}
        # Hidden files (.sprockets-manifest-*.json, ...) are not published.
        location ~ "/\\.(?!well-known(?:/|$))" {{
            return 404;
        }}
{upload_location}{asset_location}
        location / {{
            try_files $uri @app;
        }}
{from_app}
        location @app {{
{i3 + "gzip on;  # nginx.gzip_pages" + chr(10) if cfg.gzip_pages else ""}\
{_proxy(i3, cached=False)}        }}
    }}
"""


def _health(indent: str) -> str:
    # Answered by nginx alone, so the image's HEALTHCHECK says whether nginx (not the app) is up.
    return (
        f"{indent}location = /nginx-health {{\n"
        f"{indent}    access_log off;\n"
        f"{indent}    default_type text/plain;\n"
        f'{indent}    return 200 "ok\\n";\n'
        f"{indent}}}\n"
    )


def _servers(cfg: NginxConfig, lo: Layout) -> str:
    """Without server_names one catch-all site; with them, a default server that refuses the rest.

    The default server also answers /nginx-health, so health checks by address (the image's
    HEALTHCHECK on 127.0.0.1, a load balancer's probe) work whatever the Host.
    """
    names = check_server_names(cfg.server_names)
    if not names:
        return _site(cfg, lo, f"{lo.listen} default_server", "_")
    return f"""\
    # Only nginx.server_names reach the app: any other Host (or none) gets 421 Misdirected
    # Request from this default server.
    server {{
        listen {lo.listen} default_server;
        server_name _;
{_health(" " * 8)}
        location / {{
            return 421;
        }}
    }}

{_site(cfg, lo, lo.listen, " ".join(names))}"""


def render_config(cfg: NginxConfig, layout: Layout = IMAGE_LAYOUT) -> str:
    """The sidecar's complete nginx.conf for ``cfg``; raises BuildToolsError on bad values.

    ``asset_fallback: auto`` renders as ``proxy`` (right for any app) unless the build has
    resolved it from the app image first
    (:func:`buildtools.sidecar.asset_fallback.resolve_asset_fallback`).
    """
    check_nginx(cfg)
    lo = layout
    short = f"max-age={cfg.short_max_age}"
    # A buffered access log costs one write per 32k instead of one per request (most of the
    # gap to a plain nginx in `invoke bench`); lines reach `docker logs` within a second.
    buffered = cfg.access_log_buffer
    access_log_buffering = f" buffer={buffered} flush=1s" if buffered else ""
    user = f"user {lo.user};\n" if lo.user else ""
    fallback = cfg.asset_fallback
    if fallback == "auto":
        fallback = "proxy (auto, not resolved against an app image)"
    cache_path = ""
    if cfg.asset_fallback != "404":
        cache_path = f"""
    proxy_cache_path {lo.cache_dir} levels=1:2 keys_zone=lara_assets:10m
                     max_size={cfg.cache_size} inactive={cfg.cache_inactive} use_temp_path=off;
"""
    return f"""\
# nginx.conf of the LARA sidecar, rendered by buildtools.sidecar.nginx_conf from invoke.yaml
# (buildtools.nginx). Print it with `invoke nginx.config`.
# asset_fallback: {fallback}
{user}worker_processes auto;
worker_rlimit_nofile {WORKER_RLIMIT_NOFILE};
pid {lo.pid};
daemon off;
error_log stderr warn;

events {{
    worker_connections {WORKER_CONNECTIONS};
}}

http {{
    include {lo.mime_types};
    default_type application/octet-stream;
    server_tokens off;
    sendfile on;
    tcp_nopush on;
    # Longer than a load balancer's usual 60 s idle timeout.
    keepalive_timeout 75s;
    client_max_body_size {cfg.client_max_body_size};
    # Every temporary path under one directory the unprivileged user owns.
    client_body_temp_path {lo.temp_dir}/client_body;
    proxy_temp_path {lo.temp_dir}/proxy;
    fastcgi_temp_path {lo.temp_dir}/fastcgi;
    uwsgi_temp_path {lo.temp_dir}/uwsgi;
    scgi_temp_path {lo.temp_dir}/scgi;

    log_format lara '$remote_addr - $remote_user [$time_local] "$request" $status '
                    '$body_bytes_sent "$http_referer" "$http_user_agent" '
                    'cache=$upstream_cache_status upstream=$upstream_addr '
                    'upstream_time=$upstream_response_time request_time=$request_time';
    access_log /dev/stdout lara{access_log_buffering};

    # The app's host:port (APP_UPSTREAM, default {cfg.upstream}) sets $lara_upstream.
    include {lo.upstream_conf};
    # Names are looked up per request, so nginx starts without the app and follows it to a new
    # address: 127.0.0.11 is Docker's embedded DNS.
    resolver {cfg.resolver} valid={cfg.resolver_valid} ipv6=off;
    resolver_timeout 5s;
    proxy_connect_timeout {cfg.proxy_connect_timeout};
    proxy_send_timeout {cfg.proxy_read_timeout};
    proxy_read_timeout {cfg.proxy_read_timeout};

    # Files in public/ never change inside an image: keep their descriptors and lookups.
    open_file_cache max={OPEN_FILE_CACHE_MAX} inactive=5m;
    open_file_cache_valid 5m;
    open_file_cache_min_uses 1;
    open_file_cache_errors on;

    # gzip is on in the asset locations (from disk, .gz siblings as they are, or from the app
    # through the cache). Pages from the app pass as the app sent them unless nginx.gzip_pages:
    # a page that may mix a secret with what the client sent is not compressed (BREACH).
    gzip_vary on;
    gzip_proxied any;
    gzip_min_length 256;
    gzip_types text/css text/javascript application/javascript application/json
               image/svg+xml text/plain application/xml font/ttf font/otf;
{cache_path}
{_forwarding(cfg)}\
    map $http_accept_encoding $lara_accept_gzip {{
        ~*gzip  gzip;
        default "";
    }}
    map $upstream_status $lara_not_200 {{
        200     0;
        default 1;
    }}
    # Cache-Control by status, the same for files from disk and from the app: errors and
    # redirects under asset paths are never kept by browsers or CDNs.
    # A request with Authorization gets "private": no shared cache (a CDN's) keeps the answer.
    map $http_authorization $lara_cache_scope {{
        ""      public;
        default private;
    }}
    map $status $lara_cache_control_fingerprinted {{
        200     "$lara_cache_scope, {IMMUTABLE}";
        206     "$lara_cache_scope, {IMMUTABLE}";
        304     "$lara_cache_scope, {IMMUTABLE}";
        default "no-store";
    }}
    map $status $lara_cache_control_short {{
        200     "$lara_cache_scope, {short}";
        206     "$lara_cache_scope, {short}";
        304     "$lara_cache_scope, {short}";
        default "no-store";
    }}
    # Security headers on every response, unless the app sent its own (Rails does).
    map $upstream_http_x_content_type_options $lara_x_content_type_options {{
        ""      nosniff;
        default "";
    }}
    map $upstream_http_x_frame_options $lara_x_frame_options {{
        ""      SAMEORIGIN;
        default "";
    }}

{_servers(cfg, lo)}}}
"""
