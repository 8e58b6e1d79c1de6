"""Checks of the ``buildtools.nginx`` values, so nothing nginx would refuse reaches its config.

The keys' declarations (:mod:`buildtools.config.keys`) name these checks; the sidecar's
renderer calls the ones that also normalise (lower-cased server names, prefixes without
slashes, parsed networks). Each raises one BuildToolsError naming the key and an example.
Pure: no engine, no files.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

from buildtools.config.kinds import SECTION, refuse
from buildtools.errors import BuildToolsError

# The same grammar the entrypoint accepts for APP_UPSTREAM. Digits are [0-9], never \d: Python's
# \d also takes other scripts' digits (app:٣٠٠٠), which neither nginx nor the entrypoint read.
_UPSTREAM = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}"
)
_PREFIX = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*(?:/[A-Za-z0-9_-][A-Za-z0-9._-]*)*")
SIZE = re.compile(r"[0-9]+[kKmMgG]?")
# nginx's access_log buffer= takes k and m only, never 0 ("invalid buffer size").
LOG_BUFFER = re.compile(r"[1-9][0-9]*[kKmM]?")
TIME = re.compile(r"[0-9]+|(?:[0-9]+(?:ms|[smhdwMy]))+")
_RESOLVER = re.compile(r"[0-9A-Za-z.:\[\]-]+")
# A host name (optionally "*." for its subdomains) or IPv4 address: no port, scheme or regex.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_SERVER_NAME = re.compile(rf"(?:\*\.)?{_LABEL}(?:\.{_LABEL})*\.?")

ASSET_FALLBACKS = ("auto", "proxy", "404")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _refuse(key: str, value: str, example: str) -> BuildToolsError:
    return refuse(key, value, "valid for nginx", example)


def matching(pattern: re.Pattern[str], example: str, empty_ok: bool = False) -> Callable:
    """A key's check: the whole value matches ``pattern`` (or is empty, with ``empty_ok``)."""

    def check(key: str, value: str) -> None:
        if not (empty_ok and not value) and not pattern.fullmatch(value):
            raise _refuse(key, value, example)

    return check


def check_upstream(upstream: str) -> str:
    """``host:port`` of the app, as the entrypoint also accepts it from APP_UPSTREAM."""
    if not _UPSTREAM.fullmatch(upstream) or not 0 < int(upstream.rpartition(":")[2]) < 65536:
        raise BuildToolsError(
            f"nginx upstream {upstream!r} is not host:port",
            "set buildtools.nginx.upstream (or APP_UPSTREAM) like app:3000",
        )
    return upstream


def resolver(key: str, value: str) -> None:
    """One or more DNS servers, separated by spaces."""
    if not value.split():
        raise BuildToolsError(
            f"config key {SECTION}.{key} is empty",
            "set it to the DNS server that knows the app's name: 127.0.0.11 in Docker",
        )
    for address in value.split():
        if not _RESOLVER.fullmatch(address):
            raise _refuse(key, address, "127.0.0.11 (Docker's embedded DNS)")


def check_server_names(names: tuple[str, ...]) -> tuple[str, ...]:
    """Host names the sidecar answers for, lower-cased; other hosts are refused with 421."""
    for name in names:
        if not _SERVER_NAME.fullmatch(name) or len(name) > 253:
            raise BuildToolsError(
                f"{SECTION}.nginx.server_names entry {name!r} is not a host name",
                "list names without scheme or port, e.g. lara.example.org,*.concord.org",
            )
    return tuple(dict.fromkeys(name.lower().rstrip(".") for name in names))


def check_trusted_proxies(proxies: tuple[str, ...]) -> tuple[Network, ...]:
    """Networks whose X-Forwarded-* headers are believed: the load balancers in front."""
    networks = []
    for proxy in proxies:
        try:
            if "%" in proxy:  # Python takes a scope ID (fe80::1%eth0), nginx does not
                raise ValueError(proxy)
            network = ipaddress.ip_network(proxy)
        except ValueError:
            raise BuildToolsError(
                f"{SECTION}.nginx.trusted_proxies entry {proxy!r} is not an address or network",
                "list the proxies' addresses or CIDRs without host bits or scope IDs, e.g. "
                "10.0.0.0/8,192.0.2.7,2001:db8::/32",
            ) from None
        if network.prefixlen == 0:
            raise BuildToolsError(
                f"{SECTION}.nginx.trusted_proxies entry {proxy!r} trusts every client",
                "list only the proxies' own networks, e.g. 10.0.0.0/8",
            )
        networks.append(network)
    return tuple(dict.fromkeys(networks))


def check_asset_fallback(value: str) -> str:
    """``auto``, ``proxy`` or ``404``: what a missing asset under the asset prefixes gets."""
    if value not in ASSET_FALLBACKS:
        raise BuildToolsError(
            f"{SECTION}.nginx.asset_fallback = {value!r} is not auto, proxy or 404",
            ASSET_FALLBACK_FIX,
        )
    return value


ASSET_FALLBACK_FIX = (
    "use 404 if the app never serves assets, proxy if it does, auto to read its image"
)


def check_asset_prefixes(prefixes: tuple[str, ...]) -> tuple[str, ...]:
    """The public/ folders served from disk, without slashes at either end."""
    stripped = tuple(p.strip("/") for p in prefixes)
    if not stripped:
        raise BuildToolsError(
            f"config key {SECTION}.nginx.asset_prefixes is empty",
            "list the public/ folders served from disk, e.g. assets,images",
        )
    for prefix in stripped:
        if not _PREFIX.fullmatch(prefix):
            raise _refuse("nginx.asset_prefixes", prefix, "assets,images,system")
    return stripped
