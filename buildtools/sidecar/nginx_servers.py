"""The server blocks of the sidecar's nginx.conf: the site (``public/`` from disk, assets with
their Cache-Control, uploads, the rest from the app) and, with ``nginx.server_names``, the
default server that refuses other hosts.

Apart from the http block (:mod:`buildtools.sidecar.nginx_conf`) because this is where a request
is routed: which path is served from disk, which falls back to the app, and how long each may be
cached.
"""

from __future__ import annotations

from buildtools.config.nginx_checks import check_asset_prefixes, check_server_names
from buildtools.config.schema import NginxConfig
from buildtools.sidecar.nginx_proxy import proxy

# Rails' folder for user uploads (paperclip, carrierwave): listed in asset_prefixes, it is served
# from disk when there and otherwise by the app, as the app decides; never cached by the sidecar.
UPLOAD_PREFIXES = ("system",)


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


def _security_headers(indent: str) -> str:
    # An add_header inside a location drops the inherited ones: every such location repeats them.
    return (
        f"{indent}add_header X-Content-Type-Options $lara_x_content_type_options always;\n"
        f"{indent}add_header X-Frame-Options $lara_x_frame_options always;\n"
    )


def _cached(indent: str, valid: str) -> str:
    lines = [
        "proxy_cache lara_assets;",
        f"proxy_cache_valid 200 {valid};",
        "# Only 200s without Set-Cookie are stored: a 404 during a deploy must not stick. A",
        "# request with Authorization always asks the app, and its answer is never stored.",
        "# One host's answer is never another's: the key is scheme, Host and URI (and whether",
        "# the answer is compressed). What the app keeps private or varies is never stored.",
        'proxy_cache_key "$scheme://$host$request_uri $lara_accept_gzip";',
        "proxy_cache_bypass $http_authorization;",
        "proxy_no_cache $lara_not_200 $upstream_http_set_cookie $http_authorization",
        "               $lara_app_private $lara_varies;",
        "proxy_cache_lock on;",
        "proxy_cache_lock_timeout 10s;",
        "proxy_cache_use_stale error timeout updating http_500 http_502 http_503 http_504;",
        "proxy_cache_background_update on;",
        "proxy_cache_revalidate on;",
        "add_header X-Cache-Status $lara_cache_status always;",
    ]
    return "".join(f"{indent}{line}\n" for line in lines)


def _site(cfg: NginxConfig, root: str, listen: str, names: str) -> str:
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
{proxy(i3, cached=True)}{_cached(i3, "365d")}\
            add_header Cache-Control $lara_cache_control_app_fingerprinted always;
{_security_headers(i3)}        }}

        location @asset_from_app {{
            gzip on;
{proxy(i3, cached=True)}{_cached(i3, f"{cfg.short_max_age}s")}\
            add_header Cache-Control $lara_cache_control_app_short always;
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
        root {root};
        # A symlink in public/ never serves what it points to (a file outside the image's
        # public/, a secret): the path under the root must be symlink-free.
        disable_symlinks on from=$document_root;
{_security_headers(i2)}
{_health(i2)}
        # Hidden files (.sprockets-manifest-*.json, ...) are not published.
        location ~ "/\\.(?!well-known(?:/|$))" {{
            return 404;
        }}
{_source_maps(cfg)}{upload_location}{asset_location}
        location / {{
            try_files $uri @app;
        }}
{from_app}
        location @app {{
{i3 + "gzip on;  # nginx.gzip_pages" + chr(10) if cfg.gzip_pages else ""}\
{proxy(i3, cached=False)}        }}
    }}
"""


def _source_maps(cfg: NginxConfig) -> str:
    if cfg.source_maps:
        return ""
    return """
        # Source maps show the app's original code: not served unless nginx.source_maps.
        location ~ "\\.map$" {
            return 404;
        }
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


def servers(cfg: NginxConfig, listen: str, root: str) -> str:
    """Without server_names one catch-all site; with them, a default server that refuses the rest.

    The default server also answers /nginx-health, so health checks by address (the image's
    HEALTHCHECK on 127.0.0.1, a load balancer's probe) work whatever the Host.
    """
    names = check_server_names(cfg.server_names)
    if not names:
        return _site(cfg, root, f"{listen} default_server", "_")
    return f"""\
    # Only nginx.server_names reach the app: any other Host (or none) gets 421 Misdirected
    # Request from this default server.
    server {{
        listen {listen} default_server;
        server_name _;
{_health(" " * 8)}
        location / {{
            return 421;
        }}
    }}

{_site(cfg, root, listen, " ".join(names))}"""
