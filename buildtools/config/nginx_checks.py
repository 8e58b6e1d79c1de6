"""Checks of the ``buildtools.nginx`` settings, so nothing nginx would refuse reaches its config.

Each check returns the value it accepts (normalised where nginx needs it) or raises one
BuildToolsError naming the key and an example. Pure: no engine, no files.
"""

from __future__ import annotations

import ipaddress
import re

from buildtools.config.schema import NginxConfig
from buildtools.errors import BuildToolsError

# The same grammar the entrypoint accepts for APP_UPSTREAM. Digits are [0-9], never \d: Python's
# \d also takes other scripts' digits (app:٣٠٠٠), which neither nginx nor the entrypoint read.
_UPSTREAM = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}"
)
_PREFIX = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*(?:/[A-Za-z0-9_-][A-Za-z0-9._-]*)*")
_SIZE = re.compile(r"[0-9]+[kKmMgG]?")
_LOG_BUFFER = re.compile(r"[1-9][0-9]*[kKmM]?")
_TIME = re.compile(r"[0-9]+|(?:[0-9]+(?:ms|[smhdwMy]))+")
_RESOLVER = re.compile(r"[0-9A-Za-z.:\[\]-]+")
# A host name (optionally "*." for its subdomains) or IPv4 address: no port, scheme or regex.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_SERVER_NAME = re.compile(rf"(?:\*\.)?{_LABEL}(?:\.{_LABEL})*\.?")

ASSET_FALLBACKS = ("auto", "proxy", "404")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


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


def check_trusted_proxies(proxies: tuple[str, ...]) -> tuple[Network, ...]:
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


def check_asset_prefixes(prefixes: tuple[str, ...]) -> tuple[str, ...]:
    """The public/ folders served from disk, without slashes at either end."""
    stripped = tuple(p.strip("/") for p in prefixes)
    if not stripped:
        raise BuildToolsError(
            "buildtools.nginx.asset_prefixes is empty",
            "list the public/ folders served from disk, e.g. assets,images",
        )
    for prefix in stripped:
        _check(prefix, _PREFIX, "asset_prefixes", "assets,images,system")
    return stripped


def check_settings(cfg: NginxConfig) -> NginxConfig:
    """Every value of ``cfg`` nginx would read; returns ``cfg`` unchanged."""
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
        # nginx's access_log buffer= takes k and m only, never 0 ("invalid buffer size").
        _check(cfg.access_log_buffer, _LOG_BUFFER, "access_log_buffer", "32k, or empty for none")
    check_asset_prefixes(cfg.asset_prefixes)
    check_server_names(cfg.server_names)
    check_trusted_proxies(cfg.trusted_proxies)
    check_asset_fallback(cfg.asset_fallback)
    if not 7 <= cfg.fingerprint_min_length <= 128:
        raise BuildToolsError(
            f"buildtools.nginx.fingerprint_min_length = {cfg.fingerprint_min_length}"
            " is out of range",
            "use 32 for Sprockets (md5 or sha256 digests), 20 for webpack's contenthash",
        )
    return cfg
