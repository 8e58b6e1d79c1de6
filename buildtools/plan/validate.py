"""Every setting checked before the first engine or registry call, `--dry-run` included.

A value that only fails deep inside a build (a base image the engine cannot parse, a cache size
nginx refuses) would leave the app image built and re-tagged and the sidecar not: out of step.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from pathlib import Path

from buildtools.config import nginx_checks
from buildtools.config.schema import (
    CACHE_TEMPLATES,
    FREE_SECTIONS,
    KNOWN_KEYS,
    SECTION,
    ImageConfig,
    Settings,
)
from buildtools.errors import BuildToolsError
from buildtools.plan import tags

# Docker's reference grammar: lowercase path components joined by "/", each separated inside
# by ".", "_", "__" or runs of "-"; a registry host (with a port) may come first.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_HOST = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*(?::\d+)?)"
IMAGE = re.compile(
    rf"(?:{_HOST}/)?{REPOSITORY.pattern}(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?"
    r"(?:@sha256:[0-9a-f]{64})?"
)


RESERVED_SERVICE_NAMES = ("app", "nginx", "prepare", "net")
SERVICE_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")


def _bad(key: str, value: str, what: str, example: str) -> BuildToolsError:
    return BuildToolsError(
        f"config key buildtools.{key} = {value!r} is not {what}",
        f"write it like {example} (invoke.yaml or INVOKE_BUILDTOOLS_"
        f"{key.replace('.', '_').upper()})",
    )


def check_repository(key: str, value: str) -> None:
    if not REPOSITORY.fullmatch(value) or len(value) > 255:
        what = "a valid image repository (lowercase, parts joined by /)"
        raise _bad(key, value, what, "lara/app")


def check_image(key: str, value: str) -> None:
    if not IMAGE.fullmatch(value) or len(value) > 512:
        raise _bad(key, value, "a valid image reference", "debian:bookworm-slim")


_SHA_PREFIX = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def check_sha_prefix(value: str) -> None:
    """The commit tag's prefix must start a valid Docker tag, and must not be empty or make
    the tag pose as a release (``v`` would give ``v1234567`` for an all-digit commit): the
    prefix is what tells a commit tag from a version or a branch name."""
    key = "tags.sha_prefix"
    longest = tags.MAX_LENGTH - tags.SHA_LENGTH
    if not value:
        raise BuildToolsError(
            "config key buildtools.tags.sha_prefix is empty: commit tags would look like "
            "version or branch tags",
            "set it to a prefix such as sha- (the default) or git- (LARA's GitHub workflow)",
        )
    if not _SHA_PREFIX.fullmatch(value) or len(value) > longest:
        what = (
            f"the start of a Docker tag (letters, digits, _ . -, not starting with . or -, "
            f"at most {longest} characters)"
        )
        raise _bad(key, value, what, "git-")
    if tags.is_release_lookalike(tags.sha_tag_name("1234567", value)):
        raise _bad(key, value, "a prefix that keeps commit tags from looking like releases", "git-")


def _check_extra_tag(branch: str, name: str, sha_prefix: str) -> None:
    """An extra tag must be a tag, and one no release, commit, pull request, stage cache, git
    tag or prefixed branch can have (those kinds are told apart by their names)."""
    try:
        tag = tags.sanitize(name)
    except BuildToolsError:
        raise BuildToolsError(
            f"config key buildtools.tags.extra gives branch {branch!r} the tag {name!r}, "
            "which has no letter or digit",
            "name the tag, e.g. master=edge",
        ) from None
    if tags.poses_as_other_kind(tag, sha_prefix):
        prefixes = ", ".join((*tags.KIND_PREFIXES, sha_prefix))
        raise BuildToolsError(
            f"config key buildtools.tags.extra gives branch {branch!r} the tag {name!r}, "
            "which only releases (or another kind of build) may carry",
            f"use a name that is not latest, a version or starts with {prefixes}, e.g. master=edge",
        )


_PORT = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[^:/\[\]]+):(?P<port>[^/]*)/?")


def check_registries(entries: tuple[str, ...]) -> None:
    """A registry is ``host[:port]``: a login written into the address is refused without
    echoing it (it would be printed, logged and put in errors), a port outside 1-65535 before
    it is retried as if the registry were down."""
    key = "buildtools.release.registries"
    for entry in entries:
        scheme, sep, rest = entry.partition("://")
        address = rest if sep else entry
        authority = address.split("/", 1)[0]
        if "@" in authority:
            shown = f"{scheme}://" * bool(sep) + "***@" + authority.rpartition("@")[2]
            raise BuildToolsError(
                f"config key {key} has {shown!r}, a registry address with a login in it",
                "list the registry as host[:port] and give the login as DOCKER_USERNAME/"
                "DOCKER_PASSWORD (or DOCKER_PASSWORD_<HOST>); change that password, it was "
                "written down",
            )
        match = _PORT.fullmatch(authority)
        if match and not (match["port"].isdigit() and 0 < int(match["port"]) < 65536):
            raise BuildToolsError(
                f"config key {key} has {entry!r}, whose port {match['port']!r} is not 1 to 65535",
                "write the registry as host[:port], e.g. registry.example.org:5000",
            )


# What git never allows in a branch name (git check-ref-format): a pattern holding one of
# these, once its glob parts are set aside, matches no branch at all.
_NEVER_IN_BRANCH = re.compile(r"[\x00-\x20\x7f~^:\\]|\.\.|@\{|//|^[-/.]|/\.|[/.]$|\.lock$")
_GLOB_PARTS = re.compile(r"\[!?\]?[^\]]*\]|[*?]")


def check_release_branches(patterns: tuple[str, ...]) -> None:
    """``release.branches`` globs that no git branch can match would release nothing, silently."""
    for pattern in patterns:
        plain = _GLOB_PARTS.sub("x", pattern)
        if "[" in plain or _NEVER_IN_BRANCH.search(plain):
            raise BuildToolsError(
                f"config key buildtools.release.branches has {pattern!r}, which no git branch "
                "name can match",
                "list branch names or globs such as master,release/* (git branch names have "
                "no spaces, ~ ^ : \\ or .., and do not start with - or end with /)",
            )


_ARG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_build_args(name: str, args: Mapping[str, str]) -> None:
    """Build arg names as a Dockerfile's ``ARG`` can declare them."""
    for arg in args:
        if not _ARG_NAME.fullmatch(arg):
            raise BuildToolsError(
                f"config key buildtools.{name}.build_args has {arg!r}, which is not a build arg "
                "name",
                "write NAME=value with a name of letters, digits and _, not starting with a digit",
            )


def check_smoke_path(path: str) -> None:
    """The smoke test's path goes into a URL and the README's copy-paste lines as it is."""
    if not re.fullmatch(r"/[\x21-\x7e]*", path) or "#" in path:
        raise BuildToolsError(
            f"config key buildtools.smoke.path = {path!r} is not a URL path",
            "write it like /notes (no spaces or #; %20 for a space)",
        )


def check_context(path: Path, given: bool) -> None:
    """The app's build context is a folder, or one line before anything (``--dry-run`` too)."""
    if path.is_dir():
        return
    where = "--context" if given else "config key buildtools.app.context:"
    raise BuildToolsError(
        f"{where} {path} is not a folder",
        "pass the app's folder (e.g. a LARA checkout) with --context or buildtools.app.context",
    )


def check_smoke_env(settings: Settings, env: Mapping[str, str]) -> None:
    """Secrets named bare in ``smoke.env`` and the services' env are in the environment: found
    missing before the build, not after it at smoke time. Values are never shown."""
    wanted = [("smoke.env", settings.smoke.env)]
    wanted += [(f"smoke.services.{s.name}.env", s.env) for s in settings.smoke.services]
    for key, entries in wanted:
        for entry in entries:
            if "=" not in entry and not env.get(entry):
                raise BuildToolsError(
                    f"buildtools.{key} takes {entry} from the environment, but it is not set",
                    f"export {entry} (a CI secret), or give it a value in buildtools.{key}",
                )


def env_warnings(env: Mapping[str, str]) -> tuple[str, ...]:
    """``INVOKE_BUILDTOOLS_*`` variables no key reads: invoke ignores them without a word, so
    a typo would keep the default (the registry, the branches) unnoticed."""
    prefix = f"INVOKE_{SECTION.upper()}_"
    known = {prefix + key.replace(".", "_").upper(): key for key in KNOWN_KEYS}
    found = []
    for name in sorted(env):
        if not name.startswith(prefix) or name in known:
            continue
        if any(name.startswith(f"{k}_") for k in known if known[k] in FREE_SECTIONS):
            continue
        near = difflib.get_close_matches(name, list(known), n=1, cutoff=0.8)
        hint = f" (did you mean {near[0]}?)" if near else ""
        found.append(f"environment variable {name} sets no config key and is ignored{hint}")
    return tuple(found)


def _image(name: str, image: ImageConfig, base_required: bool) -> None:
    check_repository(f"{name}.repository", image.repository)
    check_build_args(name, image.build_args)
    if image.base_image or base_required:
        check_image(f"{name}.base_image", image.base_image)


def check(settings: Settings) -> Settings:
    """``settings`` if every value is usable, else the first problem as one line."""
    _image("app", settings.app, base_required=False)
    _image("nginx", settings.nginx.image, base_required=True)
    if settings.app.repository == settings.nginx.image.repository:
        raise BuildToolsError(
            f"app.repository and nginx.repository are both {settings.app.repository!r}",
            "give the sidecar a repository of its own, e.g. lara/nginx",
        )
    # The sidecar's sizes, durations, upstream, resolver.
    nginx_checks.check_settings(settings.nginx)
    check_sha_prefix(settings.sha_prefix)
    check_registries(settings.release.registries)
    check_release_branches(settings.release.branches)
    check_smoke_path(settings.smoke.path)
    for branch, names in settings.extra_tags.items():
        for name in names:
            _check_extra_tag(branch, name, settings.sha_prefix)
    for service in settings.smoke.services:
        if service.name in RESERVED_SERVICE_NAMES:
            raise BuildToolsError(
                f"config key buildtools.smoke.services has a service named {service.name!r}, "
                "which the stack's own containers use",
                "name it after what it is, e.g. db or redis",
            )
        if not SERVICE_NAME.fullmatch(service.name):
            # Lower case: Compose project and service names (invoke compose) and DNS aliases.
            raise BuildToolsError(
                f"config key buildtools.smoke.services has a service named {service.name!r}, "
                "which is not a lower-case name",
                "use a-z, digits, _ . and -, starting with a letter or digit, e.g. db or redis",
            )
        check_image(f"smoke.services.{service.name}.image", service.image)
    for template in settings.cache_from:
        if "{" in template and template not in CACHE_TEMPLATES:
            raise BuildToolsError(
                f"config key buildtools.cache.from has the unknown template {template!r}",
                f"use {', '.join(CACHE_TEMPLATES)} or plain tags",
            )
        if "{" not in template and not tags.VALID_TAG.match(template):
            raise BuildToolsError(
                f"config key buildtools.cache.from has {template!r}, which is not a Docker tag",
                "list tags such as edge, or the templates " + ", ".join(CACHE_TEMPLATES),
            )
    return settings
