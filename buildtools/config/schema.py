"""The ``buildtools`` config section: its defaults and a typed, checked view of it.

Every key is declared once, in :mod:`buildtools.config.keys`; this module derives from that
table what invoke and the code need. invoke owns loading and overriding: the task collection
registers :func:`defaults` (``ns.configure``), a project's ``invoke.yaml`` changes what it
needs, and ``INVOKE_BUILDTOOLS_*`` variables override any key. The defaults reach invoke as
text: invoke's environment loader converts a variable to the type of the value it replaces
(``false`` became True, ``lots`` a traceback), and text stays text; values a project file gives
typed are read as text again by :mod:`buildtools.config.invokefiles`, after :func:`check_file`
refused a type the key never takes. :func:`load` turns the merged mapping into plain, checked
values (paths absolute against the project root), so library code never reaches into invoke.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from buildtools.config.keys import CACHE_TEMPLATES, KEY, KEYS, SIDECAR_DIR, default_of
from buildtools.config.kinds import (
    CONTROL,
    ENV_PREFIX,
    FALSE,
    SECTION,
    TRUE,
    Section,
    as_text,
    split_list,
    split_pairs,
)
from buildtools.config.services import SERVICE_KEYS, ServiceConfig
from buildtools.errors import BuildToolsError

__all__ = [
    "CACHE_TEMPLATES",
    "FALSE",
    "SECTION",
    "SIDECAR_DIR",
    "TRUE",
    "ServiceConfig",
    "as_text",
    "split_list",
    "split_pairs",
]

# Where a release goes (and cache sources are looked up) when buildtools.release.registries
# names none: Docker Hub.
DEFAULT_REGISTRY = "docker.io"


def _nested(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``[("app.context", ".")]`` -> ``{"app": {"context": "."}}``."""
    tree: dict[str, Any] = {}
    for name, value in pairs:
        *sections, leaf = name.split(".")
        node = tree
        for part in sections:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


# Every key and its default, as nested sections (what an invoke.yaml looks like).
DEFAULTS: dict[str, Any] = _nested([(key.name, key.default) for key in KEYS])
# Every key's dotted name; keys whose section holds the user's own names count as one key.
KNOWN_KEYS = tuple(KEY)
FREE_SECTIONS = tuple(key.name for key in KEYS if isinstance(key.kind, Section))


def defaults() -> dict[str, Any]:
    """:data:`DEFAULTS` as text (:func:`as_text`): what ``ns.configure`` registers."""
    return as_text(DEFAULTS)


def check_file(data: Any, path: str) -> None:
    """A project config file's parsed content, checked before invoke merges it: a list, an
    empty section (``git:`` with no keys), a value over a section of the defaults, or a value
    of a type its key never takes (a number where a name belongs) would be a traceback there
    or a surprise later. An empty file means no changes."""
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise BuildToolsError(
            f"{path} holds a {type(data).__name__}, not keys",
            f"start it with {SECTION}: and indented keys",
        )

    def walk(given: dict[Any, Any], defaults: Mapping[str, Any], where: str) -> None:
        for key, value in given.items():
            if not isinstance(key, str):
                raise BuildToolsError(
                    f"{path}: {where}{key!r} is not a key name",
                    "use the names in the README's configuration table",
                )
            default = defaults.get(key)
            name = f"{where}{key}".removeprefix(f"{SECTION}.")
            if key in defaults and not isinstance(default, Mapping):
                if isinstance(value, dict):
                    raise BuildToolsError(
                        f"{path}: {where}{key} is a section, not a single value",
                        f"write {where}{key}: <value>",
                    )
                wrong = KEY[name].kind.given(name, value) if name in KEY else None
                if wrong is not None:
                    raise BuildToolsError(f"{path}: {wrong.problem}", wrong.fix)
            elif isinstance(default, Mapping):
                if value is None:
                    raise BuildToolsError(
                        f"{path}: {where}{key} is an empty section (invoke cannot merge it)",
                        f"give {where}{key}: indented keys, or remove that line",
                    )
                if not isinstance(value, dict):
                    raise BuildToolsError(
                        f"{path}: {where}{key} is {value!r}, not a section of keys",
                        f"write {where}{key}: followed by indented keys",
                    )
                if name not in FREE_SECTIONS:
                    walk(value, default, f"{where}{key}.")

    walk(data, {SECTION: DEFAULTS}, "")


def overlay(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` laid key by key into ``base`` (changed in place), as invoke merges config."""
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            overlay(base[key], value)
        else:
            base[key] = value
    return base


def merged(section: Mapping[str, Any] | None) -> dict[str, Any]:
    """``section`` laid over the defaults, as invoke merges an ``invoke.yaml``."""
    return overlay(defaults(), section or {})


@dataclass(frozen=True)
class ImageConfig:
    repository: str
    dockerfile: Path
    context: Path
    # Passed as the BASE_IMAGE build arg; empty: the Dockerfile's own FROM decides.
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
    # See buildtools.config.keys (and the README's table) for their meaning.
    resolver_valid: str
    proxy_connect_timeout: str
    fingerprint_min_length: int
    access_log_buffer: str
    # Host names served (empty: any); proxies whose X-Forwarded-* are believed (empty: none);
    # a missing asset: "proxy" to the app, "404" from nginx, "auto" decided from the app image.
    server_names: tuple[str, ...]
    trusted_proxies: tuple[str, ...]
    asset_fallback: str
    gzip_pages: bool
    source_maps: bool


@dataclass(frozen=True)
class ReleaseConfig:
    registries: tuple[str, ...]
    branches: tuple[str, ...]
    allow_pull_requests: bool
    retries: int
    retry_base_delay: float
    # Upper bound of one wait between retries (seconds), and "auto" or "never": the keys'.
    retry_max_delay: float = default_of("release.retry_max_delay")  # type: ignore[assignment]
    promote: str = default_of("release.promote")  # type: ignore[assignment]
    # PEM keys (None: not configured); a private key's password never comes from the config.
    signing_key: Path | None = None  # release.signing_key (empty: None)
    verify_key: Path | None = None  # release.verify_key

    @property
    def registries_or_default(self) -> tuple[str, ...]:
        """The configured registries, or Docker Hub when none are (:data:`DEFAULT_REGISTRY`)."""
        return self.registries or (DEFAULT_REGISTRY,)


@dataclass(frozen=True)
class PruneConfig:
    """What ``invoke prune`` keeps (``buildtools.prune.*``); ``PruneConfig()``: the defaults."""

    keep_commits: int = default_of("prune.keep_commits")  # type: ignore[assignment]
    keep_days: int = default_of("prune.keep_days")  # type: ignore[assignment]
    remote: str = default_of("prune.remote")  # type: ignore[assignment]


@dataclass(frozen=True)
class SmokeConfig:
    """What the smoke test checks; ``SmokeConfig()`` is the defaults (the keys')."""

    path: str = default_of("smoke.path")  # type: ignore[assignment]
    expect: str = default_of("smoke.expect")  # type: ignore[assignment]
    env: tuple[str, ...] = default_of("smoke.env")  # type: ignore[assignment]
    prepare: str = default_of("smoke.prepare")  # type: ignore[assignment]
    timeout: int = default_of("smoke.timeout")  # type: ignore[assignment]
    services: tuple[ServiceConfig, ...] = default_of("smoke.services")  # type: ignore[assignment]


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
    # Tag templates of earlier images used as build cache, and whether to pull them at all.
    cache_from: tuple[str, ...]
    cache_pull: bool
    # Registries asked for them (empty: the configured release registries, if any).
    cache_registries: tuple[str, ...]
    smoke: SmokeConfig
    # Starts the commit tag (``sha-0123abc``); LARA's GitHub workflow uses ``git-``.
    sha_prefix: str
    # What invoke prune keeps.
    prune: PruneConfig = field(default_factory=PruneConfig)
    # Unknown keys and other things the user should know, said once by the task.
    warnings: tuple[str, ...] = field(default=(), compare=False)


def leaves(section: Mapping[str, Any], path: tuple[str, ...] = ()) -> list[tuple[tuple, Any]]:
    """Every single value below ``section`` with its key path, depth first."""
    found: list[tuple[tuple, Any]] = []
    for key, value in section.items():
        if isinstance(value, Mapping):
            found.extend(leaves(value, (*path, key)))
        else:
            found.append(((*path, key), value))
    return found


def _service_key_typo(key: str) -> str | None:
    """``smoke.services.db.imag``: the nearest service key, or None when it is one."""
    parts = key.split(".")
    if len(parts) != 4 or parts[3] in SERVICE_KEYS:
        return None
    near = difflib.get_close_matches(parts[3], list(SERVICE_KEYS), n=1, cutoff=0.6)
    return ".".join(parts[:3] + near[:1]) if near else ".".join(parts[:3]) + ".image"


def shown(name: str) -> str:
    """A key or variable name as a warning may print it: any control character escaped (a
    name is the user's text too; ESC in it would drive the terminal)."""
    return CONTROL.sub(lambda found: repr(found.group())[1:-1], name)


def unknown_keys(section: Mapping[str, Any]) -> list[str]:
    """Warnings for keys no code reads (a typo silently keeps the default otherwise)."""
    known = set(KNOWN_KEYS) | {k.rpartition(".")[0] for k in KNOWN_KEYS}
    found = []
    for key in (".".join(keys) for keys, _ in leaves(section)):
        if key.startswith("smoke.services.") and (service := _service_key_typo(key)):
            found.append(
                f"unknown config key {SECTION}.{key} is ignored (did you mean {SECTION}.{service}?)"
            )
            continue
        if key in known or any(key.startswith(f"{k}.") for k in FREE_SECTIONS):
            continue
        near = difflib.get_close_matches(key, KNOWN_KEYS, n=1, cutoff=0.6)
        hint = f" (did you mean {SECTION}.{near[0]}?)" if near else ""
        found.append(f"unknown config key {shown(f'{SECTION}.{key}')} is ignored{hint}")
    return found


def env_warnings(env: Mapping[str, str]) -> tuple[str, ...]:
    """``INVOKE_BUILDTOOLS_*`` variables no key reads: invoke ignores them without a word, so
    a typo would keep the default (the registry, the branches) unnoticed."""
    known = {key.env: key for key in KEYS}
    free = tuple(f"{KEY[name].env}_" for name in FREE_SECTIONS)
    found = []
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or name in known or name.startswith(free):
            continue
        near = difflib.get_close_matches(name, list(known), n=1, cutoff=0.8)
        hint = f" (did you mean {near[0]}?)" if near else ""
        found.append(f"environment variable {shown(name)} sets no config key and is ignored{hint}")
    return tuple(found)


def _raw(section: Mapping[str, Any], name: str) -> Any:
    """The value at dotted ``name``, naming the full path when a section is missing or wrong."""
    node: Any = section
    walked = []
    for part in name.split("."):
        if not isinstance(node, Mapping):
            where = ".".join(walked)
            raise BuildToolsError(
                f"config key {SECTION}.{where} is {node!r}, not a section of keys",
                f"write {SECTION}.{where} in invoke.yaml as indented keys, e.g. {part}: …",
            )
        walked.append(part)
        if part not in node:
            raise BuildToolsError(
                f"config key {SECTION}.{'.'.join(walked)} is missing",
                "add it to invoke.yaml (see the README's configuration reference)",
            )
        node = node[part]
    return node


def _build(cls: type, values: Mapping[str, Any], prefix: str = "") -> Any:
    """``cls`` with each field from ``values`` by its dotted path, nested dataclasses built
    the same way: a field no key feeds is a TypeError here, at once."""
    hints = typing.get_type_hints(cls)
    given = {}
    for item in fields(cls):
        path = prefix + item.name
        if path in values:
            given[item.name] = values[path]
        elif is_dataclass(hints[item.name]):
            given[item.name] = _build(hints[item.name], values, f"{path}.")
    return cls(**given)


def _plain(value: Any) -> Any:
    """invoke's config proxies (dict-like, not Mappings) as plain dicts."""
    if hasattr(value, "items") and callable(value.items):
        return {key: _plain(item) for key, item in value.items()}
    return value


def load(section: Mapping[str, Any] | None, root: Path) -> Settings:
    """Settings from the merged ``buildtools`` config mapping (defaults already laid under),
    every key read and checked as its declaration says."""
    section = _plain(section)
    if not isinstance(section, Mapping):
        raise BuildToolsError(
            f"the {SECTION} config section is {type(section).__name__}, not a mapping",
            f"write {SECTION}: followed by indented keys in invoke.yaml",
        )
    values = {key.attribute: key.read(_raw(section, key.name), root) for key in KEYS}
    values.update(root=root, warnings=tuple(unknown_keys(section)))
    return _build(Settings, values)


def check_nginx(cfg: NginxConfig) -> NginxConfig:
    """Every value of ``cfg`` (typed, as the sidecar's renderer gets it) checked as its key's
    declaration says; returns ``cfg`` unchanged."""
    for key in KEYS:
        if key.attribute.startswith("nginx."):
            value: Any = cfg
            for part in key.attribute.split(".")[1:]:
                value = getattr(value, part)
            key.validate(value)
    return cfg


def check_smoke_env(settings: Settings, env: Mapping[str, str]) -> None:
    """Secrets named bare in ``smoke.env`` and the services' env are in the environment: found
    missing before the build, not after it at smoke time. Values are never shown."""
    wanted = [("smoke.env", settings.smoke.env)]
    wanted += [(f"smoke.services.{s.name}.env", s.env) for s in settings.smoke.services]
    for key, entries in wanted:
        for entry in entries:
            if "=" not in entry and not env.get(entry):
                raise BuildToolsError(
                    f"{SECTION}.{key} takes {entry} from the environment, but it is not set",
                    f"export {entry} (a CI secret), or give it a value in {SECTION}.{key}",
                )
