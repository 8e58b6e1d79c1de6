"""A typed, read-only view of invoke's ``buildtools`` config section.

invoke owns loading and overriding (``invoke.yaml``, ``INVOKE_BUILDTOOLS_*`` env vars); this
module only turns the merged mapping into plain values, with paths made absolute against the
project root, so library code never reaches into invoke.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from buildtools.errors import BuildToolsError


def split_list(value: str | list[str] | None) -> tuple[str, ...]:
    """Comma-separated config strings (env-overridable, unlike YAML lists) to a tuple."""
    if value is None:
        return ()
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    return tuple(item.strip() for item in items if item.strip())


def split_pairs(
    value: str | None, where: str = "buildtools.tags.extra", example: str = "master=edge"
) -> dict[str, tuple[str, ...]]:
    """``"master=edge,main=edge"`` to ``{"master": ("edge",), "main": ("edge",)}``."""
    pairs: dict[str, list[str]] = {}
    for item in split_list(value):
        key, sep, val = item.partition("=")
        if not sep or not key.strip() or not val.strip():
            raise BuildToolsError(
                f"bad config entry {item!r} in {where}",
                f"write it as key=value, e.g. {example}",
            )
        pairs.setdefault(key.strip(), []).append(val.strip())
    return {key: tuple(vals) for key, vals in pairs.items()}


@dataclass(frozen=True)
class ImageConfig:
    repository: str
    dockerfile: Path
    context: Path
    base_image: str
    # Extra, non-secret build args ("KEY=VALUE,KEY=VALUE"), e.g. BUNDLE_INSTALL_ARGS=--local.
    build_args: Mapping[str, str]


@dataclass(frozen=True)
class NginxConfig:
    image: ImageConfig
    upstream: str
    asset_prefixes: tuple[str, ...]
    cache_size: str
    cache_inactive: str
    short_max_age: int
    client_max_body_size: str
    proxy_read_timeout: str
    resolver: str
    # Added for the sidecar (buildtools.nginx); see invoke.yaml for their meaning.
    resolver_valid: str = "5s"
    proxy_connect_timeout: str = "5s"
    fingerprint_min_length: int = 32
    access_log_buffer: str = "32k"
    # Host names served (empty: any); proxies whose X-Forwarded-* are believed (empty: none);
    # a missing asset: "proxy" to the app, "404" from nginx, "auto" decided from the app image.
    server_names: tuple[str, ...] = ()
    trusted_proxies: tuple[str, ...] = ()
    asset_fallback: str = "auto"


@dataclass(frozen=True)
class ReleaseConfig:
    registries: tuple[str, ...]
    branches: tuple[str, ...]
    allow_pull_requests: bool
    retries: int
    retry_base_delay: float
    # Upper bound of one wait between retries (seconds); optional key, for older invoke.yaml.
    retry_max_delay: float = 30.0


@dataclass(frozen=True)
class Settings:
    root: Path
    title: str
    source_url: str
    repo: Path
    app: ImageConfig
    nginx: NginxConfig
    untracked_is_dirty: bool
    extra_tags: Mapping[str, tuple[str, ...]]
    pull_request_tags: bool
    release: ReleaseConfig
    bases_repository: str


def _image(section: Mapping[str, Any], root: Path, name: str) -> ImageConfig:
    args = split_pairs(
        section.get("build_args", ""),
        f"buildtools.{name}.build_args",
        "BUNDLE_INSTALL_ARGS=--local",
    )
    return ImageConfig(
        repository=str(section["repository"]),
        dockerfile=root / str(section["dockerfile"]),
        context=root / str(section["context"]),
        base_image=str(section["base_image"]),
        build_args={key: values[-1] for key, values in args.items()},
    )


def load(section: Mapping[str, Any], root: Path) -> Settings:
    """Build Settings from the merged ``buildtools`` config mapping."""
    try:
        nginx = section["nginx"]
        release = section["release"]
        return Settings(
            root=root,
            title=str(section["title"]),
            source_url=str(section["source_url"]),
            repo=(root / str(section["repo"])).resolve(),
            app=_image(section["app"], root, "app"),
            nginx=NginxConfig(
                image=_image(nginx, root, "nginx"),
                upstream=str(nginx["upstream"]),
                asset_prefixes=split_list(nginx["asset_prefixes"]),
                cache_size=str(nginx["cache_size"]),
                cache_inactive=str(nginx["cache_inactive"]),
                short_max_age=int(nginx["short_max_age"]),
                client_max_body_size=str(nginx["client_max_body_size"]),
                proxy_read_timeout=str(nginx["proxy_read_timeout"]),
                resolver=str(nginx["resolver"]),
                resolver_valid=str(nginx["resolver_valid"]),
                proxy_connect_timeout=str(nginx["proxy_connect_timeout"]),
                fingerprint_min_length=int(nginx["fingerprint_min_length"]),
                access_log_buffer=str(nginx.get("access_log_buffer", "32k")),
                server_names=split_list(nginx.get("server_names", "")),
                trusted_proxies=split_list(nginx.get("trusted_proxies", "")),
                asset_fallback=str(nginx.get("asset_fallback", "auto")),
            ),
            untracked_is_dirty=bool(section["git"]["untracked_is_dirty"]),
            extra_tags=split_pairs(section["tags"]["extra"]),
            pull_request_tags=bool(section["tags"]["pull_requests"]),
            release=ReleaseConfig(
                registries=split_list(release["registries"]),
                branches=split_list(release["branches"]),
                allow_pull_requests=bool(release["allow_pull_requests"]),
                retries=int(release["retries"]),
                retry_base_delay=float(release["retry_base_delay"]),
                retry_max_delay=float(release.get("retry_max_delay", 30.0)),
            ),
            bases_repository=str(section["bases"]["repository"]),
        )
    except KeyError as exc:
        raise BuildToolsError(
            f"config key buildtools.{exc.args[0]} is missing",
            "add it to invoke.yaml (see the README's configuration reference)",
        ) from None
    except (TypeError, ValueError) as exc:
        raise BuildToolsError(
            f"bad value in the buildtools config: {exc}",
            "check invoke.yaml and INVOKE_BUILDTOOLS_* variables",
        ) from None
