"""The ``buildtools`` config section: its defaults (defined here, once) and a typed view of it.

invoke owns loading and overriding: the task collection registers :data:`DEFAULTS`
(``ns.configure``), a project's ``invoke.yaml`` changes what it needs, and
``INVOKE_BUILDTOOLS_*`` variables override any key. The defaults reach invoke as text
(:func:`defaults`): invoke's environment loader converts a variable to the type of the value it
replaces (``false`` became True, ``lots`` a traceback), and text stays text; values a project
file gives typed are read as text again by :mod:`buildtools.config.invokefiles`. This module turns
the merged mapping into plain, validated values, with paths made absolute against the project
root, so library code never reaches into invoke. Every value is checked here, before anything
touches an engine.
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from buildtools.errors import BuildToolsError

SECTION = "buildtools"

# Where a release goes (and cache sources are looked up) when buildtools.release.registries
# names none: Docker Hub.
DEFAULT_REGISTRY = "docker.io"

# The sidecar's Dockerfile, entrypoint and health check, shipped in the package so that an app
# repository needs no copy of them (``nginx.dockerfile``/``nginx.context`` left empty).
SIDECAR_DIR = Path(__file__).resolve().parents[1] / "sidecar"

# Every key and its default, for an app repository laid out like LARA's (Dockerfile at the
# top, invoke.yaml beside tasks.py). Lists are comma-separated strings so that environment
# variables can set them too. The README's configuration table lists exactly these keys.
DEFAULTS: dict[str, Any] = {
    "title": "LARA",
    "source_url": "https://github.com/concord-consortium/lara",
    "repo": ".",
    "app": {
        "repository": "lara/app",
        "dockerfile": "Dockerfile",
        "context": ".",
        "base_image": "",
        "build_args": "",
    },
    "nginx": {
        "repository": "lara/nginx",
        # Empty: the files packaged with buildtools (buildtools/sidecar/); a path: the app's copy.
        "dockerfile": "",
        "context": "",
        "base_image": "debian:bookworm-slim",
        "build_args": "",
        "upstream": "app:3000",
        "asset_prefixes": "assets,images,javascripts,stylesheets,swfs,system",
        "cache_size": "1g",
        "cache_inactive": "7d",
        "short_max_age": 300,
        "client_max_body_size": "10m",
        "proxy_read_timeout": "3m",
        "resolver": "127.0.0.11",
        "resolver_valid": "5s",
        "proxy_connect_timeout": "5s",
        "fingerprint_min_length": 32,
        "access_log_buffer": "32k",
        "server_names": "",
        "trusted_proxies": "",
        "asset_fallback": "auto",
        # Compress the app's own pages at the sidecar too (off: a page that mixes a secret with
        # what the client sent must not be compressed, BREACH; assets are always compressed).
        "gzip_pages": False,
    },
    "git": {"untracked_is_dirty": False},
    "tags": {"extra": "master=edge", "pull_requests": False, "sha_prefix": "sha-"},
    "release": {
        "registries": "",
        "branches": "master,main",
        "allow_pull_requests": False,
        "retries": 5,
        "retry_base_delay": 1.0,
        "retry_max_delay": 30.0,
        # auto: a release of a commit whose sha- images every registry holds puts them under
        # the release tags through the registry API (no build); never: always build.
        "promote": "auto",
    },
    "smoke": {
        # What `invoke ci` (and `invoke up`) checks through the sidecar: this path answers 200
        # and its body holds `expect` (empty: the build's version string).
        "path": "/",
        "expect": "",
        # The app's environment: KEY=VALUE, or a bare KEY taken from the environment (secrets).
        "env": "",
        # A command run in the app image first, e.g. bin/rails db:create db:schema:load.
        "prepare": "",
        "timeout": 120,
        # Service containers by name (their network alias): image, env, ready (a command).
        "services": {},
    },
    "cache": {
        # Earlier images to reuse layers from on a fresh machine, best first: this commit's
        # sha- tag, this branch's tag, each release branch's tag, the highest release.
        "from": "{sha},{branch},{release_branches},{release}",
        "pull": True,
        # Where to look for them: empty means the registries set in release.registries (never
        # the Docker Hub a release falls back to when none is set: a lookup nobody asked for).
        "registries": "",
    },
    "bases": {"repository": "lara-buildtools/debian"},
}

# The templates `cache.from` understands (buildtools.engine.cache expands them).
CACHE_TEMPLATES = ("{sha}", "{branch}", "{release_branches}", "{release}")
TRUE = ("true", "1", "yes", "on")
FALSE = ("false", "0", "no", "off", "")


def as_text(value: Any) -> Any:
    """A config value as the text an environment variable would give (``true``, ``5``), so
    invoke keeps an ``INVOKE_BUILDTOOLS_*`` override as the string it is and :func:`load` parses
    both the same way. Sections are converted key by key; empty values and lists stay as they
    are (:func:`load` names a list as not a single value)."""
    if isinstance(value, Mapping):
        return {key: as_text(item) for key, item in value.items()}
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or isinstance(value, str | list | tuple):
        return copy.deepcopy(value)
    return str(value)


def defaults() -> dict[str, Any]:
    """:data:`DEFAULTS` as text (:func:`as_text`): what ``ns.configure`` registers."""
    return as_text(DEFAULTS)


def check_file(data: Any, path: str) -> None:
    """A project config file's parsed content, checked before invoke merges it: a list, an
    empty section (``git:`` with no keys) or a value over a section of the defaults would be a
    traceback there. An empty file means no changes."""
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
            if key in defaults and not isinstance(default, Mapping):
                if isinstance(value, dict):
                    raise BuildToolsError(
                        f"{path}: {where}{key} is a section, not a single value",
                        f"write {where}{key}: <value>",
                    )
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


def split_list(value: str | list[str] | None) -> tuple[str, ...]:
    """Comma-separated config strings (env-overridable, unlike YAML lists) to a tuple."""
    if value is None:
        return ()
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    return tuple(str(item).strip() for item in items if str(item).strip())


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
    # See DEFAULTS and the README for their meaning.
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


@dataclass(frozen=True)
class ReleaseConfig:
    registries: tuple[str, ...]
    branches: tuple[str, ...]
    allow_pull_requests: bool
    retries: int
    retry_base_delay: float
    # Upper bound of one wait between retries (seconds); the default is DEFAULTS' own.
    retry_max_delay: float = DEFAULTS["release"]["retry_max_delay"]
    # "auto" or "never" (see DEFAULTS).
    promote: str = DEFAULTS["release"]["promote"]

    @property
    def registries_or_default(self) -> tuple[str, ...]:
        """The configured registries, or Docker Hub when none are (:data:`DEFAULT_REGISTRY`)."""
        return self.registries or (DEFAULT_REGISTRY,)


@dataclass(frozen=True)
class ServiceConfig:
    """A container the app needs for its smoke test (a database), reachable by ``name``."""

    name: str
    image: str
    env: tuple[str, ...] = ()
    ready: str = ""


@dataclass(frozen=True)
class SmokeConfig:
    """What the smoke test checks; ``SmokeConfig()`` is the defaults (from DEFAULTS)."""

    path: str = DEFAULTS["smoke"]["path"]
    expect: str = DEFAULTS["smoke"]["expect"]
    env: tuple[str, ...] = split_list(DEFAULTS["smoke"]["env"])
    prepare: str = DEFAULTS["smoke"]["prepare"]
    timeout: int = DEFAULTS["smoke"]["timeout"]
    services: tuple[ServiceConfig, ...] = ()


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
    # Unknown keys and other things the user should know, said once by the task.
    warnings: tuple[str, ...] = field(default=(), compare=False)


_MISSING = object()


def leaves(section: Mapping[str, Any], path: tuple[str, ...] = ()) -> list[tuple[tuple, Any]]:
    """Every single value below ``section`` with its key path, depth first."""
    found: list[tuple[tuple, Any]] = []
    for key, value in section.items():
        if isinstance(value, Mapping):
            found.extend(leaves(value, (*path, key)))
        else:
            found.append(((*path, key), value))
    return found


# Sections whose keys are the user's own names (services), and which count as one key.
FREE_SECTIONS = ("smoke.services",)
KNOWN_KEYS = tuple(".".join(keys) for keys, _ in leaves(DEFAULTS)) + FREE_SECTIONS


# The keys of one smoke service (smoke.services.<name>.<key>).
SERVICE_KEYS = ("image", "env", "ready")


def _service_key_typo(key: str) -> str | None:
    """``smoke.services.db.imag``: the nearest service key, or None when it is one."""
    parts = key.split(".")
    if len(parts) != 4 or parts[3] in SERVICE_KEYS:
        return None
    near = difflib.get_close_matches(parts[3], SERVICE_KEYS, n=1, cutoff=0.6)
    return ".".join(parts[:3] + near[:1]) if near else ".".join(parts[:3]) + ".image"


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
        if key in known or any(key.startswith(f"{k}.") for k in KNOWN_KEYS + FREE_SECTIONS):
            continue
        near = difflib.get_close_matches(key, KNOWN_KEYS, n=1, cutoff=0.6)
        hint = f" (did you mean {SECTION}.{near[0]}?)" if near else ""
        found.append(f"unknown config key {SECTION}.{key} is ignored{hint}")
    return found


_WHOLE = re.compile(r"-?[0-9]{1,18}")


class _Reader:
    """Reads typed values by dotted path, naming the full path in every error."""

    def __init__(self, section: Mapping[str, Any], prefix: str = "") -> None:
        self.section = section
        # Where ``section`` sits (``smoke.services.db.``), so errors name the full path.
        self.prefix = prefix

    def raw(self, path: str) -> Any:
        node: Any = self.section
        walked = []
        for part in path.split("."):
            if not isinstance(node, Mapping):
                where = self.prefix + ".".join(walked)
                raise BuildToolsError(
                    f"config key {SECTION}.{where} is {node!r}, not a section of keys",
                    f"write {SECTION}.{where} in invoke.yaml as indented keys, e.g. {part}: …",
                )
            walked.append(part)
            if part not in node:
                where = self.prefix + ".".join(walked)
                raise BuildToolsError(
                    f"config key {SECTION}.{where} is missing",
                    "add it to invoke.yaml (see the README's configuration reference)",
                )
            node = node[part]
        return node

    def _bad(self, path: str, value: Any, expected: str) -> BuildToolsError:
        path = self.prefix + path
        return BuildToolsError(
            f"config key {SECTION}.{path} = {value!r} is not {expected}",
            f"set it in invoke.yaml or INVOKE_{SECTION.upper()}_"
            f"{path.replace('.', '_').upper()} to {expected}",
        )

    def text(self, path: str) -> str:
        value = self.raw(path)
        if value is None:
            return ""
        if isinstance(value, Mapping | list | tuple):
            raise self._bad(path, value, "a single value")
        return str(value).strip()

    def flag(self, path: str) -> bool:
        value = self.raw(path)
        if isinstance(value, bool):
            return value
        text = "" if value is None else str(value).strip().lower()
        if text in TRUE:
            return True
        if text in FALSE and not (isinstance(value, int) and value not in (0, 1)):
            return False
        raise self._bad(path, value, "true or false (also yes/no, 1/0)")

    def count(self, path: str, minimum: int = 0, maximum: int = 10**9) -> int:
        value = self.raw(path)
        text = str(value).strip()
        if isinstance(value, bool) or not _WHOLE.fullmatch(text) or int(text) < minimum:
            raise self._bad(path, value, f"a whole number of at least {minimum}")
        if int(text) > maximum:
            raise self._bad(path, value, f"a whole number of at most {maximum}")
        return int(text)

    def number(self, path: str, minimum: float = 0.0) -> float:
        value = self.raw(path)
        try:
            number = float(str(value).strip())
        except ValueError:
            number = float("nan")
        if isinstance(value, bool) or not number >= minimum or number == float("inf"):
            raise self._bad(path, value, f"a number of at least {minimum}")
        return number


def _image(r: _Reader, root: Path, name: str, packaged: Path | None = None) -> ImageConfig:
    """An image's settings; with ``packaged``, an empty dockerfile or context means the files
    shipped there rather than the project root."""
    args = split_pairs(
        r.text(f"{name}.build_args"),
        f"{SECTION}.{name}.build_args",
        "BUNDLE_INSTALL_ARGS=--local",
    )
    dockerfile, context = r.text(f"{name}.dockerfile"), r.text(f"{name}.context")
    return ImageConfig(
        repository=r.text(f"{name}.repository"),
        dockerfile=packaged / "Dockerfile" if packaged and not dockerfile else root / dockerfile,
        context=packaged if packaged and not context else root / context,
        base_image=r.text(f"{name}.base_image"),
        build_args={key: values[-1] for key, values in args.items()},
    )


def _plain(value: Any) -> Any:
    """invoke's config proxies (dict-like, not Mappings) as plain dicts."""
    if hasattr(value, "items") and callable(value.items):
        return {key: _plain(item) for key, item in value.items()}
    return value


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def env_entries(value: str, key: str) -> tuple[str, ...]:
    """``KEY=VALUE`` and bare ``KEY`` entries (a bare name is read from the environment)."""
    entries = split_list(value)
    for entry in entries:
        if not _ENV_NAME.fullmatch(entry.partition("=")[0]):
            raise BuildToolsError(
                f"config key {SECTION}.{key} has {entry.partition('=')[0]!r}, "
                "which is not an environment variable name",
                "write KEY=VALUE, or KEY alone to take its value from the environment",
            )
    return entries


def _smoke(r: _Reader) -> SmokeConfig:
    services = r.raw("smoke.services") or {}
    if not isinstance(services, Mapping):
        raise r._bad("smoke.services", services, "a section of services by name")
    found = []
    for name, service in services.items():
        where = f"smoke.services.{name}"
        if not _ENV_NAME.fullmatch(str(name).replace("-", "_")):
            raise r._bad(where, name, "a service name (letters, digits, - and _)")
        if not isinstance(service, Mapping):
            raise r._bad(where, service, "a section with image, env and ready")
        sr = _Reader(service, prefix=f"{where}.")
        if not (sr.text("image") if "image" in service else ""):
            raise BuildToolsError(
                f"config key {SECTION}.{where} has no image",
                f"give it one: {where}.image: lara-buildtools/mariadb:latest",
            )
        found.append(
            ServiceConfig(
                name=str(name),
                image=sr.text("image"),
                env=env_entries(sr.text("env") if "env" in service else "", f"{where}.env"),
                ready=sr.text("ready") if "ready" in service else "",
            )
        )
    path = r.text("smoke.path") or "/"
    if not path.startswith("/"):
        raise r._bad("smoke.path", path, "a path starting with /")
    return SmokeConfig(
        path=path,
        expect=r.text("smoke.expect"),
        env=env_entries(r.text("smoke.env"), "smoke.env"),
        prepare=r.text("smoke.prepare"),
        timeout=r.count("smoke.timeout", minimum=1),
        services=tuple(found),
    )


PROMOTE_MODES = ("auto", "never")


def _promote(r: _Reader) -> str:
    value = r.text("release.promote").lower()
    # YAML reads `promote: no` (or off) as the boolean false: the user meant never.
    value = "never" if value and value in FALSE else value
    if value not in PROMOTE_MODES:
        raise r._bad("release.promote", value, " or ".join(PROMOTE_MODES))
    return value


def load(section: Mapping[str, Any] | None, root: Path) -> Settings:
    """Settings from the merged ``buildtools`` config mapping (defaults already laid under)."""
    section = _plain(section)
    if not isinstance(section, Mapping):
        raise BuildToolsError(
            f"the {SECTION} config section is {type(section).__name__}, not a mapping",
            f"write {SECTION}: followed by indented keys in invoke.yaml",
        )
    r = _Reader(section)
    return Settings(
        root=root,
        title=r.text("title"),
        source_url=r.text("source_url"),
        repo=(root / r.text("repo")).resolve(),
        app=_image(r, root, "app"),
        nginx=NginxConfig(
            image=_image(r, root, "nginx", packaged=SIDECAR_DIR),
            upstream=r.text("nginx.upstream"),
            asset_prefixes=split_list(r.text("nginx.asset_prefixes")),
            cache_size=r.text("nginx.cache_size"),
            cache_inactive=r.text("nginx.cache_inactive"),
            short_max_age=r.count("nginx.short_max_age"),
            client_max_body_size=r.text("nginx.client_max_body_size"),
            proxy_read_timeout=r.text("nginx.proxy_read_timeout"),
            resolver=r.text("nginx.resolver"),
            resolver_valid=r.text("nginx.resolver_valid"),
            proxy_connect_timeout=r.text("nginx.proxy_connect_timeout"),
            fingerprint_min_length=r.count("nginx.fingerprint_min_length", minimum=1),
            access_log_buffer=r.text("nginx.access_log_buffer"),
            server_names=split_list(r.text("nginx.server_names")),
            trusted_proxies=split_list(r.text("nginx.trusted_proxies")),
            asset_fallback=r.text("nginx.asset_fallback"),
            gzip_pages=r.flag("nginx.gzip_pages"),
        ),
        untracked_is_dirty=r.flag("git.untracked_is_dirty"),
        extra_tags=split_pairs(r.text("tags.extra")),
        pull_request_tags=r.flag("tags.pull_requests"),
        sha_prefix=r.text("tags.sha_prefix"),
        release=ReleaseConfig(
            registries=split_list(r.text("release.registries")),
            branches=split_list(r.text("release.branches")),
            allow_pull_requests=r.flag("release.allow_pull_requests"),
            retries=r.count("release.retries"),
            retry_base_delay=r.number("release.retry_base_delay"),
            retry_max_delay=r.number("release.retry_max_delay"),
            promote=_promote(r),
        ),
        bases_repository=r.text("bases.repository"),
        cache_from=split_list(r.text("cache.from")),
        cache_pull=r.flag("cache.pull"),
        cache_registries=split_list(r.text("cache.registries")),
        smoke=_smoke(r),
        warnings=tuple(unknown_keys(section)),
    )
