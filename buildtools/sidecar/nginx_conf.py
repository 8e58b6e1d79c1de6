"""The sidecar's nginx.conf and upstream.conf, rendered from ``NginxConfig``.

The sidecar carries the app image's precompiled ``public/`` and serves it from disk; everything
else goes to the app (``APP_UPSTREAM``). Asset paths missing on disk (an older sidecar in a
rolling deploy) are either fetched from the app through a cache that never keeps errors or
cookies (``asset_fallback: proxy``) or answered with nginx's own 404 (``404``, for apps that
never serve assets, as LARA: see :mod:`buildtools.sidecar.rails_assets`).

Here: the file's frame and its http block (workers, logs, timeouts, the Cache-Control and
security header maps). The server blocks are :mod:`buildtools.sidecar.nginx_servers`; what the
app is told about each request, :mod:`buildtools.sidecar.nginx_proxy`.

``invoke nginx.config`` prints :func:`render_config`. The entrypoint writes
:func:`render_upstream`'s line again at container start from ``APP_UPSTREAM``
(buildtools/sidecar/docker-entrypoint.sh). Pure: values are checked as their keys declare
(:mod:`buildtools.config.keys`); nothing here reads the engine or files.
"""

from __future__ import annotations

from dataclasses import dataclass

from buildtools.config.nginx_checks import check_upstream
from buildtools.config.schema import NginxConfig, check_nginx
from buildtools.sidecar.nginx_proxy import forwarding
from buildtools.sidecar.nginx_servers import servers

# Cache-Control of fingerprinted and other assets after "public" (anonymous requests) or "private"
# (requests with Authorization: a shared cache, a CDN's too, must not keep what the app answered).
IMMUTABLE = "max-age=31536000, immutable"

# Each worker holds up to two descriptors per connection (client, app) and the open_file_cache's:
# worker_rlimit_nofile covers both with room for logs, listeners and cache files.
WORKER_CONNECTIONS = 1024
OPEN_FILE_CACHE_MAX = 2000
WORKER_RLIMIT_NOFILE = 2 * WORKER_CONNECTIONS + OPEN_FILE_CACHE_MAX + 48


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


def render_upstream(upstream: str, cache_status: bool = False) -> str:
    """The file nginx.conf includes for what the container's environment sets at start: the
    app's address (``APP_UPSTREAM``) and whether responses show ``X-Cache-Status``
    (``LARA_CACHE_STATUS``, off unless asked: ``invoke up`` asks). The entrypoint rewrites it
    with the same bytes (buildtools/sidecar/docker-entrypoint.sh)."""
    check_upstream(upstream)
    return (
        "# Written by the entrypoint from APP_UPSTREAM and LARA_CACHE_STATUS.\n"
        f'map "" $lara_upstream {{ default "{upstream}"; }}\n'
        f'map "" $lara_cache_status_shown {{ default "{int(cache_status)}"; }}\n'
    )


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
{forwarding(cfg)}\
    map $http_accept_encoding $lara_accept_gzip {{
        ~*gzip  gzip;
        default "";
    }}
    map $upstream_status $lara_not_200 {{
        200     0;
        default 1;
    }}
    # What the app keeps private is not stored, nor made public: Cache-Control private or
    # no-store, or a Vary on anything but Accept-Encoding (one stored answer for all would be
    # another client's).
    map $upstream_http_cache_control $lara_app_private {{
        "~*(?:^|[,\\s])(?:private|no-store)(?:$|[,=\\s])"  1;
        default 0;
    }}
    map $upstream_http_vary $lara_varies {{
        ""                          0;
        "~*^\\s*accept-encoding\\s*$" 0;
        default                     1;
    }}
    map $lara_app_private $lara_cache_control_app_fingerprinted {{
        1       $upstream_http_cache_control;
        default $lara_cache_control_fingerprinted;
    }}
    map $lara_app_private $lara_cache_control_app_short {{
        1       $upstream_http_cache_control;
        default $lara_cache_control_short;
    }}
    # X-Cache-Status only where the container asks for it (LARA_CACHE_STATUS=on: invoke up);
    # the access log always has it.
    map $lara_cache_status_shown $lara_cache_status {{
        1       $upstream_cache_status;
        default "";
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

{servers(cfg, lo.listen, lo.public_root)}}}
"""
