"""The ``buildtools.nginx`` keys: the sidecar's nginx settings, declared once (see
:mod:`buildtools.config.keys`, whose table lists them in the README's order)."""

from __future__ import annotations

from buildtools.config import nginx_checks
from buildtools.config.kinds import (
    Check,
    Choice,
    Count,
    Flag,
    Key,
    Kind,
    Names,
    Text,
    value_only,
)

_TIME = nginx_checks.matching(nginx_checks.TIME, "3m, 30s or 7d")
_SIZE = "1g or 500m"


def _nginx(name: str, kind: Kind, default: object, help: str, check: Check | None = None) -> Key:
    return Key(f"nginx.{name}", kind, default, help, check)


NGINX_KEYS = (
    _nginx(
        "upstream",
        Text(),
        "app:3000",
        "default `APP_UPSTREAM` (host:port of the app; the container's env overrides it)",
        value_only(nginx_checks.check_upstream),
    ),
    _nginx(
        "asset_prefixes",
        Names(),
        "assets,images,javascripts,stylesheets,swfs,system",
        "path prefixes served from disk and cached; `system` (Rails' user uploads) is served "
        "from disk or by the app, never cached",
        value_only(nginx_checks.check_asset_prefixes),
    ),
    _nginx(
        "cache_size",
        Text(),
        "1g",
        "`max_size` of the proxy cache for assets only the app has",
        nginx_checks.matching(nginx_checks.SIZE, _SIZE),
    ),
    _nginx("cache_inactive", Text(), "7d", "how long an unused cached asset stays", _TIME),
    _nginx(
        "short_max_age",
        Count(0, example="300 (seconds)"),
        300,
        "`max-age` (s) of asset-path files without a fingerprint",
    ),
    _nginx(
        "client_max_body_size",
        Text(),
        "10m",
        "upload limit (LARA's own nginx says `10M`)",
        nginx_checks.matching(nginx_checks.SIZE, "100m"),
    ),
    _nginx("proxy_read_timeout", Text(), "3m", "as in LARA's nginx config", _TIME),
    _nginx(
        "resolver",
        Text(),
        "127.0.0.11",
        "DNS used to re-resolve the app at run time (Docker's)",
        nginx_checks.resolver,
    ),
    _nginx(
        "resolver_valid",
        Text(),
        "5s",
        "how long a DNS answer is trusted: the sidecar follows a restarted app to its new IP "
        "within this",
        _TIME,
    ),
    _nginx("proxy_connect_timeout", Text(), "5s", "connecting to the app", _TIME),
    _nginx(
        "fingerprint_min_length",
        Count(7, 128, "32 for Sprockets (md5 or sha256 digests), 20 for webpack's contenthash"),
        32,
        "hex digits that make a name fingerprinted (`name-<hex>.ext`, no `-` in `ext`; cached "
        "forever); Sprockets uses 64, webpack 20",
    ),
    _nginx(
        "access_log_buffer",
        Text(),
        "32k",
        "buffer of the sidecar's access log on stdout, flushed every second; empty for one "
        "write per request",
        nginx_checks.matching(nginx_checks.LOG_BUFFER, "32k, or empty for none", empty_ok=True),
    ),
    _nginx(
        "server_names",
        Names(),
        "",
        "host names served, `lara.example.org,*.concord.org`; any other `Host` gets 421 and "
        "never reaches the app; empty: any host",
        value_only(nginx_checks.check_server_names),
    ),
    _nginx(
        "trusted_proxies",
        Names(),
        "",
        "addresses or CIDRs of the proxies in front whose `X-Forwarded-*` are believed; from "
        "anyone else (empty: everyone) the app gets the connection's own",
        value_only(nginx_checks.check_trusted_proxies),
    ),
    _nginx(
        "asset_fallback",
        Choice(*nginx_checks.ASSET_FALLBACKS, fix=nginx_checks.ASSET_FALLBACK_FIX),
        "auto",
        "a file missing under the asset prefixes: `proxy` (fetched from the app, cached), "
        "`404` (nginx's own, the app never asked), `auto` (decided from the app image, see "
        "below)",
    ),
    _nginx(
        "source_maps",
        Flag(),
        False,
        "serve `*.map` files (source maps show the app's original code); off: 404",
    ),
    _nginx(
        "gzip_pages",
        Flag(),
        False,
        "also compress the app's own pages at the sidecar (assets always are); off because a "
        "page that mixes a secret with what the client sent must not be compressed (BREACH)",
    ),
)
