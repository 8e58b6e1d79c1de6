"""The nginx sidecar: its config, rendered from ``NginxConfig``, and its image build context.

The sidecar carries the app image's precompiled ``public/`` and serves it from disk; everything
else goes to the app (``APP_UPSTREAM``). Asset paths missing on disk (an older sidecar in a
rolling deploy) are fetched from the app through a cache that never keeps errors or cookies.

``invoke build`` calls :func:`sidecar_context` and :func:`sidecar_buildargs`; ``invoke
nginx.config`` prints :func:`render_config`. The entrypoint writes :func:`render_upstream`'s
line again at container start from ``APP_UPSTREAM`` (nginx/docker-entrypoint.sh).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from buildtools.config import NginxConfig
from buildtools.errors import BuildToolsError

IMMUTABLE = "public, max-age=31536000, immutable"

# The same grammar the entrypoint accepts for APP_UPSTREAM.
_UPSTREAM = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]):\d{1,5}")
_PREFIX = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*(?:/[A-Za-z0-9_-][A-Za-z0-9._-]*)*")
_SIZE = re.compile(r"\d+[kKmMgG]?")
_TIME = re.compile(r"\d+|(?:\d+(?:ms|[smhdwMy]))+")
_RESOLVER = re.compile(r"[0-9A-Za-z.:\[\]-]+")


@dataclass(frozen=True)
class Layout:
    """Where the rendered config expects files: the sidecar image's, unless a test moves them."""

    user: str = "nginx"
    listen: str = "80"
    pid: str = "/run/nginx.pid"
    mime_types: str = "/etc/nginx/mime.types"
    upstream_conf: str = "/etc/nginx/lara/upstream.conf"
    public_root: str = "/lara/public"
    cache_dir: str = "/var/cache/nginx/lara"
    temp_dir: str = "/var/cache/nginx/temp"


IMAGE_LAYOUT = Layout()


def _check(value: str, pattern: re.Pattern[str], key: str, example: str) -> str:
    if not pattern.fullmatch(value):
        raise BuildToolsError(
            f"buildtools.nginx.{key} = {value!r} is not valid for nginx",
            f"write it like {example}",
        )
    return value


def check_upstream(upstream: str) -> str:
    """``host:port`` of the app, as the entrypoint also accepts it from APP_UPSTREAM."""
    if not _UPSTREAM.fullmatch(upstream) or not 0 < int(upstream.rpartition(":")[2]) < 65536:
        raise BuildToolsError(
            f"nginx upstream {upstream!r} is not host:port",
            "set buildtools.nginx.upstream (or APP_UPSTREAM) like app:3000",
        )
    return upstream


def _prefixes(cfg: NginxConfig) -> tuple[str, ...]:
    prefixes = tuple(p.strip("/") for p in cfg.asset_prefixes)
    if not prefixes:
        raise BuildToolsError(
            "buildtools.nginx.asset_prefixes is empty",
            "list the public/ folders served from disk, e.g. assets,images",
        )
    for prefix in prefixes:
        _check(prefix, _PREFIX, "asset_prefixes", "assets,images,system")
    return prefixes


def _validated(cfg: NginxConfig) -> None:
    check_upstream(cfg.upstream)
    _check(cfg.cache_size, _SIZE, "cache_size", "1g or 500m")
    _check(cfg.client_max_body_size, _SIZE, "client_max_body_size", "100m")
    for key in ("cache_inactive", "proxy_read_timeout", "proxy_connect_timeout", "resolver_valid"):
        _check(getattr(cfg, key), _TIME, key, "3m, 30s or 7d")
    for address in cfg.resolver.split():
        _check(address, _RESOLVER, "resolver", "127.0.0.11 (Docker's embedded DNS)")
    if not cfg.resolver.split():
        raise BuildToolsError(
            "buildtools.nginx.resolver is empty",
            "set it to the DNS server that knows the app's name: 127.0.0.11 in Docker",
        )
    if cfg.short_max_age < 0:
        raise BuildToolsError(
            f"buildtools.nginx.short_max_age = {cfg.short_max_age} is negative",
            "give seconds, e.g. 300",
        )
    if cfg.access_log_buffer:
        _check(cfg.access_log_buffer, _SIZE, "access_log_buffer", "32k, or empty for none")
    if not 7 <= cfg.fingerprint_min_length <= 128:
        raise BuildToolsError(
            f"buildtools.nginx.fingerprint_min_length = {cfg.fingerprint_min_length}"
            " is out of range",
            "use 32 for Sprockets (md5 or sha256 digests), 20 for webpack's contenthash",
        )


def asset_regexes(cfg: NginxConfig) -> tuple[str, str]:
    """PCRE for (fingerprinted files under the asset paths, anything under them)."""
    alternatives = "|".join(p.replace(".", r"\.") for p in _prefixes(cfg))
    any_asset = f"^/(?:{alternatives})/"
    digest = f"[0-9a-f]{{{cfg.fingerprint_min_length},}}"
    return f"{any_asset}(?:[^/]+/)*[^/]*-{digest}\\.[^/]+$", any_asset


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
        "proxy_set_header Host $http_host;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $lara_forwarded_proto;",
        "proxy_set_header X-Forwarded-Port $lara_forwarded_port;",
        'proxy_set_header X-Request-Start "t=${msec}";',
    ]
    if cached:
        lines += [
            "# Shared by every client: no cookie goes up, none comes back (nor is stored).",
            'proxy_set_header Cookie "";',
            "proxy_hide_header Set-Cookie;",
            "proxy_set_header Accept-Encoding $lara_accept_gzip;",
            "proxy_hide_header Cache-Control;",
            "proxy_hide_header Expires;",
        ]
    return "".join(f"{indent}{line}\n" for line in lines)


def _cached(indent: str, valid: str) -> str:
    lines = [
        "proxy_cache lara_assets;",
        f"proxy_cache_valid 200 {valid};",
        "# Only 200s without Set-Cookie are stored: a 404 during a deploy must not stick.",
        "proxy_no_cache $lara_not_200 $upstream_http_set_cookie;",
        "proxy_cache_lock on;",
        "proxy_cache_lock_timeout 10s;",
        "proxy_cache_use_stale error timeout updating http_500 http_502 http_503 http_504;",
        "proxy_cache_background_update on;",
        "proxy_cache_revalidate on;",
        "add_header X-Cache-Status $upstream_cache_status always;",
    ]
    return "".join(f"{indent}{line}\n" for line in lines)


def render_config(cfg: NginxConfig, layout: Layout = IMAGE_LAYOUT) -> str:
    """The sidecar's complete nginx.conf for ``cfg``; raises BuildToolsError on bad values."""
    _validated(cfg)
    fingerprinted, any_asset = asset_regexes(cfg)
    lo = layout
    i2, i3 = " " * 8, " " * 12
    short = f"public, max-age={cfg.short_max_age}"
    # A buffered access log costs one write per 32k instead of one per request (most of the
    # gap to a plain nginx in `invoke bench`); lines reach `docker logs` within a second.
    buffered = cfg.access_log_buffer
    access_log_buffering = f" buffer={buffered} flush=1s" if buffered else ""
    return f"""\
# nginx.conf of the LARA sidecar, rendered by buildtools.nginx from invoke.yaml
# (buildtools.nginx). Print it with `invoke nginx.config`.
user {lo.user};
worker_processes auto;
pid {lo.pid};
daemon off;
error_log stderr warn;

events {{
    worker_connections 1024;
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
    client_body_temp_path {lo.temp_dir}/client_body;
    proxy_temp_path {lo.temp_dir}/proxy;

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
    open_file_cache max=10000 inactive=5m;
    open_file_cache_valid 5m;
    open_file_cache_min_uses 1;
    open_file_cache_errors on;

    # Asset responses: precompressed .gz siblings, else compressed here.
    gzip_static on;
    gzip_vary on;
    gzip_proxied any;
    gzip_min_length 256;
    gzip_types text/css text/javascript application/javascript application/json
               image/svg+xml text/plain application/xml font/ttf font/otf;

    proxy_cache_path {lo.cache_dir} levels=1:2 keys_zone=lara_assets:10m
                     max_size={cfg.cache_size} inactive={cfg.cache_inactive} use_temp_path=off;

    map $http_x_forwarded_proto $lara_forwarded_proto {{
        ""      $scheme;
        default $http_x_forwarded_proto;
    }}
    map $http_x_forwarded_port $lara_forwarded_port {{
        ""      $lara_proto_port;
        default $http_x_forwarded_port;
    }}
    map $lara_forwarded_proto $lara_proto_port {{
        https   443;
        default 80;
    }}
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
    map $status $lara_cache_control_fingerprinted {{
        200     "{IMMUTABLE}";
        206     "{IMMUTABLE}";
        304     "{IMMUTABLE}";
        default "no-store";
    }}
    map $status $lara_cache_control_short {{
        200     "{short}";
        206     "{short}";
        304     "{short}";
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

    server {{
        listen {lo.listen} default_server;
        server_name _;
        root {lo.public_root};
{_security_headers(i2)}
        location = /nginx-health {{
            access_log off;
            default_type text/plain;
            return 200 "ok\\n";
        }}

        # Hidden files (.sprockets-manifest-*.json, ...) are not published.
        location ~ "/\\.(?!well-known(?:/|$))" {{
            return 404;
        }}

        # Fingerprinted assets (name-<hex digest>.ext) never change: cache them for a year.
        location ~ "{fingerprinted}" {{
            add_header Cache-Control $lara_cache_control_fingerprinted always;
{_security_headers(i3)}            try_files $uri @fingerprinted_from_app;
        }}

        # Other files under the asset paths may change with a deploy: a short max-age.
        location ~ "{any_asset}" {{
            add_header Cache-Control $lara_cache_control_short always;
{_security_headers(i3)}            try_files $uri @asset_from_app;
        }}

        location / {{
            try_files $uri @app;
        }}

        # Not on disk: a newer app's asset during a rolling deploy. Fetched once, then cached.
        location @fingerprinted_from_app {{
{_proxy(i3, cached=True)}{_cached(i3, "365d")}\
            add_header Cache-Control $lara_cache_control_fingerprinted always;
{_security_headers(i3)}        }}

        location @asset_from_app {{
{_proxy(i3, cached=True)}{_cached(i3, f"{cfg.short_max_age}s")}\
            add_header Cache-Control $lara_cache_control_short always;
{_security_headers(i3)}        }}

        location @app {{
{_proxy(i3, cached=False)}        }}
    }}
}}
"""


def sidecar_buildargs(cfg: NginxConfig, app_image_id: str) -> dict[str, str]:
    """Build args for the sidecar Dockerfile: the nginx base, the app image to copy public/ from."""
    if not app_image_id:
        raise BuildToolsError(
            "no app image to copy public/ from", "build the app image first (invoke build)"
        )
    return {
        "BASE_IMAGE": cfg.image.base_image,
        "APP_IMAGE": app_image_id,
        "APP_UPSTREAM": check_upstream(cfg.upstream),
    }


def sidecar_context(cfg: NginxConfig, dest: Path) -> Path:
    """Fill ``dest`` with the sidecar's build context; build it with ``dockerfile="Dockerfile"``.

    Copies ``cfg.image.context`` (the entrypoint) and ``cfg.image.dockerfile``, then writes
    ``nginx.conf`` and ``upstream.conf`` rendered from ``cfg``. Returns ``dest``.
    """
    config_text = render_config(cfg)
    source, dockerfile = cfg.image.context, cfg.image.dockerfile
    if not source.is_dir():
        raise BuildToolsError(
            f"the nginx build context {source} is not a directory",
            "set buildtools.nginx.context to the folder holding docker-entrypoint.sh",
        )
    if not dockerfile.is_file():
        raise BuildToolsError(
            f"the nginx Dockerfile {dockerfile} does not exist",
            "set buildtools.nginx.dockerfile (default nginx/Dockerfile)",
        )
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, dest, dirs_exist_ok=True)
    shutil.copyfile(dockerfile, dest / "Dockerfile")
    entrypoint = dest / "docker-entrypoint.sh"
    if not entrypoint.is_file():
        raise BuildToolsError(
            f"{source} has no docker-entrypoint.sh", "copy nginx/docker-entrypoint.sh there"
        )
    entrypoint.chmod(0o755)
    (dest / "nginx.conf").write_text(config_text)
    (dest / "upstream.conf").write_text(render_upstream(cfg.upstream))
    return dest
