"""The nginx sidecar: its config, rendered from ``NginxConfig``, and its image build context.

The sidecar carries the app image's precompiled ``public/`` and serves it from disk; everything
else goes to the app (``APP_UPSTREAM``). Asset paths missing on disk (an older sidecar in a
rolling deploy) are either fetched from the app through a cache that never keeps errors or
cookies (``asset_fallback: proxy``) or answered with nginx's own 404 (``404``, for apps that
never serve assets, as LARA: see :func:`asset_fallback_for`).

``invoke build`` calls :func:`resolve_asset_fallback`, :func:`sidecar_context` and
:func:`sidecar_buildargs`; ``invoke nginx.config`` prints :func:`render_config`. The entrypoint
writes :func:`render_upstream`'s line again at container start from ``APP_UPSTREAM``
(buildtools/sidecar/docker-entrypoint.sh).
"""

from __future__ import annotations

import dataclasses
import io
import ipaddress
import re
import shutil
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from buildtools.config import NginxConfig
from buildtools.errors import BuildToolsError

if TYPE_CHECKING:  # the engine is needed only to read an app image, not to render
    import docker

IMMUTABLE = "public, max-age=31536000, immutable"

# The same grammar the entrypoint accepts for APP_UPSTREAM.
_UPSTREAM = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]):\d{1,5}")
_PREFIX = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*(?:/[A-Za-z0-9_-][A-Za-z0-9._-]*)*")
_SIZE = re.compile(r"\d+[kKmMgG]?")
_TIME = re.compile(r"\d+|(?:\d+(?:ms|[smhdwMy]))+")
_RESOLVER = re.compile(r"[0-9A-Za-z.:\[\]-]+")
# A host name (optionally "*." for its subdomains) or IPv4 address: no port, scheme or regex.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_SERVER_NAME = re.compile(rf"(?:\*\.)?{_LABEL}(?:\.{_LABEL})*\.?")

ASSET_FALLBACKS = ("auto", "proxy", "404")

# Each worker holds up to two descriptors per connection (client, app) and the open_file_cache's:
# worker_rlimit_nofile covers both with room for logs, listeners and cache files.
WORKER_CONNECTIONS = 1024
OPEN_FILE_CACHE_MAX = 2000
WORKER_RLIMIT_NOFILE = 2 * WORKER_CONNECTIONS + OPEN_FILE_CACHE_MAX + 48

# Request headers a client could use to claim another address, scheme or host; the app sees
# them only from a trusted proxy (header name, nginx variable).
_PASSED_FROM_TRUSTED = (
    ("X-Forwarded-Host", "$http_x_forwarded_host"),
    ("X-Forwarded-Ssl", "$http_x_forwarded_ssl"),
    ("X-Forwarded-Scheme", "$http_x_forwarded_scheme"),
    ("Forwarded", "$http_forwarded"),
    ("X-Real-IP", "$http_x_real_ip"),
    ("Client-IP", "$http_client_ip"),
)


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


def check_server_names(names: tuple[str, ...]) -> tuple[str, ...]:
    """Host names the sidecar answers for, lower-cased; other hosts are refused with 421."""
    for name in names:
        if not _SERVER_NAME.fullmatch(name) or len(name) > 253:
            raise BuildToolsError(
                f"buildtools.nginx.server_names entry {name!r} is not a host name",
                "list names without scheme or port, e.g. lara.example.org,*.concord.org",
            )
    return tuple(dict.fromkeys(name.lower().rstrip(".") for name in names))


def check_trusted_proxies(
    proxies: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Networks whose X-Forwarded-* headers are believed: the load balancers in front."""
    networks = []
    for proxy in proxies:
        try:
            network = ipaddress.ip_network(proxy)
        except ValueError:
            raise BuildToolsError(
                f"buildtools.nginx.trusted_proxies entry {proxy!r} is not an address or network",
                "list the proxies' addresses or CIDRs without host bits, e.g. 10.0.0.0/8,192.0.2.7",
            ) from None
        if network.prefixlen == 0:
            raise BuildToolsError(
                f"buildtools.nginx.trusted_proxies entry {proxy!r} trusts every client",
                "list only the proxies' own networks, e.g. 10.0.0.0/8",
            )
        networks.append(network)
    return tuple(dict.fromkeys(networks))


def check_asset_fallback(value: str) -> str:
    """``auto``, ``proxy`` or ``404``: what a missing asset under the asset prefixes gets."""
    if value not in ASSET_FALLBACKS:
        raise BuildToolsError(
            f"buildtools.nginx.asset_fallback = {value!r} is not auto, proxy or 404",
            "use 404 if the app never serves assets, proxy if it does, auto to read its image",
        )
    return value


# ---- asset_fallback: auto, decided from what the app image can do ----

APP_HOME = "/lara"
# Files (relative to APP_HOME) that asset_fallback_for reads from the app image.
APP_FILES = ("config/environments/production.rb",)

_RAILS_SETTING = re.compile(
    r"^[ \t]*config\.(public_file_server\.enabled|serve_static_files|serve_static_assets"
    r"|assets\.compile)[ \t]*=[ \t]*([^#\n]*?)[ \t]*(?:#.*)?$",
    re.M,
)
# ENV["NAME"], ENV.fetch("NAME", ...), ENV.key?("NAME"): the variable a setting depends on.
_ENV_READ = re.compile(
    r"""\bENV(?:\[|\.fetch\(|\.key\?\(|\.include\?\()\s*['"]([A-Za-z_][A-Za-z0-9_]*)['"]"""
)


def explain_asset_fallback(
    app_files: Mapping[str, str], app_env: Mapping[str, str] | None = None
) -> tuple[str, str]:
    """(``proxy`` or ``404``, why) for an app image's files (paths relative to /lara) and ENV.

    ``404`` only when the image shows that the app cannot serve a missing asset: Rails with
    ``public_file_server.enabled`` (or ``serve_static_files``/``_assets``) false, or read from an
    env var the image leaves unset, and ``assets.compile`` not true. Anything else, a non-Rails
    app included, keeps ``proxy``: always correct, it only costs the app a request per miss.
    """
    env = app_env or {}
    path = APP_FILES[0]
    text = app_files.get(path)
    if text is None:
        return "proxy", f"the app image has no {path}: it may serve assets"
    settings: dict[str, str] = {}
    for match in _RAILS_SETTING.finditer(text):
        settings["serves" if match[1] != "assets.compile" else "compiles"] = match[2]
    if settings.get("compiles") == "true":
        return "proxy", f"{path} sets assets.compile = true: the app compiles missing assets"
    serves = settings.get("serves")
    if serves is None:
        return "proxy", f"{path} leaves public_file_server.enabled at Rails' default, true"
    if serves in ("false", "nil"):
        return "404", f"{path} sets public_file_server.enabled = {serves}"
    if serves == "true":
        return "proxy", f"{path} sets public_file_server.enabled = true"
    variable = _ENV_READ.search(serves)
    if variable:
        name = variable[1]
        if env.get(name):
            return "proxy", f"{path} reads {name}, which the app image sets"
        return "404", f"{path} reads {name}, which the app image leaves unset"
    return "proxy", f"{path} sets public_file_server.enabled = {serves}, not known at build time"


def asset_fallback_for(
    app_files: Mapping[str, str], app_env: Mapping[str, str] | None = None
) -> str:
    """``proxy`` or ``404`` for an app image's files and ENV (why: explain_asset_fallback)."""
    return explain_asset_fallback(app_files, app_env)[0]


def read_app_files(client: docker.DockerClient, image: str) -> dict[str, str]:
    """The APP_FILES the app image has, by path relative to /lara; the container never starts."""
    import docker.errors  # here, so rendering a config never loads the engine's client

    container = client.containers.create(image, command=["true"], entrypoint=[])
    files: dict[str, str] = {}
    try:
        for path in APP_FILES:
            try:
                chunks, _ = container.get_archive(f"{APP_HOME}/{path}")
            except docker.errors.NotFound:
                continue
            with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
                member = tar.next()
                handle = tar.extractfile(member) if member else None
                if handle is not None:
                    files[path] = handle.read().decode(errors="replace")
    finally:
        container.remove(force=True)
    return files


def image_env(client: docker.DockerClient, image: str) -> dict[str, str]:
    """The image's ENV as a mapping."""
    pairs = client.images.get(image).attrs["Config"].get("Env") or []
    return dict(pair.partition("=")[::2] for pair in pairs)


def resolve_asset_fallback(
    cfg: NginxConfig, client: docker.DockerClient, app_image: str
) -> NginxConfig:
    """``cfg`` with ``asset_fallback: auto`` replaced by what the app image can do."""
    if check_asset_fallback(cfg.asset_fallback) != "auto":
        return cfg
    decided = asset_fallback_for(read_app_files(client, app_image), image_env(client, app_image))
    return dataclasses.replace(cfg, asset_fallback=decided)


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
    check_server_names(cfg.server_names)
    check_trusted_proxies(cfg.trusted_proxies)
    check_asset_fallback(cfg.asset_fallback)
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
        # $host: the checked name, without the client's port (nginx.server_names).
        "proxy_set_header Host $host;",
        "proxy_set_header X-Forwarded-For $lara_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $lara_forwarded_proto;",
        "proxy_set_header X-Forwarded-Port $lara_forwarded_port;",
        'proxy_set_header X-Request-Start "t=${msec}";',
        *(f"proxy_set_header {name} {_passed_variable(name)};" for name, _ in _PASSED_FROM_TRUSTED),
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


def _passed_variable(header: str) -> str:
    return "$lara_passed_" + header.lower().replace("-", "_")


def _forwarding(cfg: NginxConfig) -> str:
    """X-Forwarded-* and friends: the client's only from a trusted proxy, else the connection's.

    The realip module makes $remote_addr the client behind a trusted proxy; $realip_remote_addr
    stays the peer, whose trust the geo block decides.
    """
    networks = check_trusted_proxies(cfg.trusted_proxies)
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
        'map "$lara_trusted_proxy:$http_x_forwarded_port" $lara_forwarded_port {',
        "    default $server_port;",
        '    "~^1:([0-9]{1,5})$" $1;',
        '    "1:" $lara_proto_port;',
        "}",
        "map $lara_forwarded_proto $lara_proto_port {",
        "    https 443;",
        "    default 80;",
        "}",
    ]
    for name, variable in _PASSED_FROM_TRUSTED:
        lines += [
            f"map $lara_trusted_proxy {_passed_variable(name)} {{",
            '    default "";',
            f"    1 {variable};",
            "}",
        ]
    return "".join(f"    {line}\n" for line in lines)


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


def _site(cfg: NginxConfig, lo: Layout, listen: str, names: str) -> str:
    """The server block that serves LARA: public/ from disk, the rest from the app."""
    fingerprinted, any_asset = asset_regexes(cfg)
    i2, i3 = " " * 8, " " * 12
    fallback = cfg.asset_fallback if cfg.asset_fallback != "auto" else "proxy"
    if fallback == "404":
        # The app never serves assets: a miss is nginx's own 404 and never reaches it.
        from_app_fingerprinted, from_app_other, from_app = "=404", "=404", ""
    else:
        from_app_fingerprinted, from_app_other = "@fingerprinted_from_app", "@asset_from_app"
        from_app = f"""
        # Not on disk: a newer app's asset during a rolling deploy. Fetched once, then cached.
        location @fingerprinted_from_app {{
{_proxy(i3, cached=True)}{_cached(i3, "365d")}\
            add_header Cache-Control $lara_cache_control_fingerprinted always;
{_security_headers(i3)}        }}

        location @asset_from_app {{
{_proxy(i3, cached=True)}{_cached(i3, f"{cfg.short_max_age}s")}\
            add_header Cache-Control $lara_cache_control_short always;
{_security_headers(i3)}        }}
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

        # Fingerprinted assets (name-<hex digest>.ext) never change: cache them for a year.
        location ~ "{fingerprinted}" {{
            add_header Cache-Control $lara_cache_control_fingerprinted always;
{_security_headers(i3)}            try_files $uri {from_app_fingerprinted};
        }}

        # Other files under the asset paths may change with a deploy: a short max-age.
        location ~ "{any_asset}" {{
            add_header Cache-Control $lara_cache_control_short always;
{_security_headers(i3)}            try_files $uri {from_app_other};
        }}

        location / {{
            try_files $uri @app;
        }}
{from_app}
        location @app {{
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
    resolved it from the app image first (:func:`resolve_asset_fallback`).
    """
    _validated(cfg)
    lo = layout
    short = f"public, max-age={cfg.short_max_age}"
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
# nginx.conf of the LARA sidecar, rendered by buildtools.nginx from invoke.yaml
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

    # Asset responses: precompressed .gz siblings, else compressed here.
    gzip_static on;
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

{_servers(cfg, lo)}}}
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
            "set buildtools.nginx.context to the folder holding docker-entrypoint.sh, or leave "
            "it empty for the packaged one",
        )
    if not dockerfile.is_file():
        raise BuildToolsError(
            f"the nginx Dockerfile {dockerfile} does not exist",
            "set buildtools.nginx.dockerfile, or leave it empty for the packaged one",
        )
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, dest, dirs_exist_ok=True)
    shutil.copyfile(dockerfile, dest / "Dockerfile")
    entrypoint = dest / "docker-entrypoint.sh"
    if not entrypoint.is_file():
        raise BuildToolsError(
            f"{source} has no docker-entrypoint.sh",
            "copy buildtools/sidecar/docker-entrypoint.sh there, or leave buildtools.nginx.context "
            "empty for the packaged one",
        )
    entrypoint.chmod(0o755)
    (dest / "nginx.conf").write_text(config_text)
    (dest / "upstream.conf").write_text(render_upstream(cfg.upstream))
    return dest
