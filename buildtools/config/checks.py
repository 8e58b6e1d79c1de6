"""Checks of single config values, named by the keys that use them (:mod:`buildtools.config.keys`).

Each takes the key's dotted name and its typed value and raises one BuildToolsError naming the
key: a value that only fails deep inside a build (a base image the engine cannot parse) would
leave one image built and the other not. Pure: no engine, no network. Also the build context
on disk, checked by the task since ``--context`` overrides ``app.context``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from buildtools.config.kinds import SECTION, refuse
from buildtools.config.registry_address import parse_registry
from buildtools.errors import BuildToolsError

# Docker's reference grammar: lowercase path components joined by "/", each separated inside
# by ".", "_", "__" or runs of "-"; a registry host (with a port) may come first.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_HOST = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*(?::\d+)?)"
HOST = re.compile(_HOST)
IMAGE = re.compile(
    rf"(?:{_HOST}/)?{REPOSITORY.pattern}(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?"
    r"(?:@sha256:[0-9a-f]{64})?"
)


def repository(key: str, value: str) -> None:
    if not REPOSITORY.fullmatch(value) or len(value) > 255:
        what = "a valid image repository (lowercase, parts joined by /)"
        raise refuse(key, value, what, "lara/app")


def image(key: str, value: str) -> None:
    if not IMAGE.fullmatch(value) or len(value) > 512:
        raise refuse(key, value, "a valid image reference", "debian:bookworm-slim")


def image_or_empty(key: str, value: str) -> None:
    """An optional base image: empty leaves the Dockerfile's own ``FROM``."""
    if value:
        image(key, value)


_PORT = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[^:/\[\]]+):(?P<port>[^/]*)/?")


def registries(key: str, entries: tuple[str, ...]) -> None:
    """A registry is ``host[:port]``: a login written into the address is refused without
    echoing it (it would be printed, logged and put in errors), a port outside 1-65535 before
    it is retried as if the registry were down."""
    for entry in entries:
        scheme, sep, rest = entry.partition("://")
        address = rest if sep else entry
        authority = address.split("/", 1)[0]
        if "@" in authority:
            shown = f"{scheme}://" * bool(sep) + "***@" + authority.rpartition("@")[2]
            raise BuildToolsError(
                f"config key {SECTION}.{key} has {shown!r}, a registry address with a login in it",
                "list the registry as host[:port] and give the login as DOCKER_USERNAME/"
                "DOCKER_PASSWORD (or DOCKER_PASSWORD_<HOST>); change that password, it was "
                "written down",
            )
        match = _PORT.fullmatch(authority)
        if match and not (match["port"].isdigit() and 0 < int(match["port"]) < 65536):
            raise BuildToolsError(
                f"config key {SECTION}.{key} has {entry!r}, whose port {match['port']!r} is not "
                "1 to 65535",
                "write the registry as host[:port], e.g. registry.example.org:5000",
            )
        try:
            parse_registry(entry)
        except BuildToolsError as exc:
            raise BuildToolsError(
                f"config key {SECTION}.{key}: {exc.problem}",
                "list registries as host[:port], e.g. ghcr.io,registry.example.org:5000",
            ) from None


# What git never allows in a branch name (git check-ref-format): a pattern holding one of
# these, once its glob parts are set aside, matches no branch at all.
_NEVER_IN_BRANCH = re.compile(r"[\x00-\x20\x7f~^:\\]|\.\.|@\{|//|^[-/.]|/\.|[/.]$|\.lock$")
_GLOB_PARTS = re.compile(r"\[!?\]?[^\]]*\]|[*?]")


def branch_globs(key: str, patterns: tuple[str, ...]) -> None:
    """Globs that no git branch can match would release nothing, silently."""
    for pattern in patterns:
        plain = _GLOB_PARTS.sub("x", pattern)
        if "[" in plain or _NEVER_IN_BRANCH.search(plain):
            raise BuildToolsError(
                f"config key {SECTION}.{key} has {pattern!r}, which no git branch name can match",
                "list branch names or globs such as master,release/* (git branch names have "
                "no spaces, ~ ^ : \\ or .., and do not start with - or end with /)",
            )


_ARG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def build_args(key: str, args: Mapping[str, str]) -> None:
    """Build arg names as a Dockerfile's ``ARG`` can declare them."""
    for arg in args:
        if not _ARG_NAME.fullmatch(arg):
            raise BuildToolsError(
                f"config key {SECTION}.{key} has {arg!r}, which is not a build arg name",
                "write NAME=value with a name of letters, digits and _, not starting with a digit",
            )


def url_path(key: str, path: str) -> None:
    """The smoke test's path goes into a URL and the README's copy-paste lines as it is."""
    if not re.fullmatch(r"/[\x21-\x7e]*", path) or "#" in path:
        raise BuildToolsError(
            f"config key {SECTION}.{key} = {path!r} is not a URL path",
            "write it like /notes (no spaces or #; %20 for a space)",
        )


ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def env_entries(key: str, entries: tuple[str, ...]) -> None:
    """``KEY=VALUE`` and bare ``KEY`` entries (a bare name is read from the environment)."""
    for entry in entries:
        if not ENV_NAME.fullmatch(entry.partition("=")[0]):
            raise BuildToolsError(
                f"config key {SECTION}.{key} has {entry.partition('=')[0]!r}, "
                "which is not an environment variable name",
                "write KEY=VALUE, or KEY alone to take its value from the environment",
            )


def check_context(path: Path, given: bool) -> None:
    """The app's build context (``app.context`` or ``--context``) is a folder, or one line
    before anything (``--dry-run`` too); checked by the task, since the flag overrides the key."""
    if path.is_dir():
        return
    where = "--context" if given else f"config key {SECTION}.app.context:"
    raise BuildToolsError(
        f"{where} {path} is not a folder",
        "pass the app's folder (e.g. a LARA checkout) with --context or buildtools.app.context",
    )


_REMOTE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")


def remote_name(key: str, value: str) -> None:
    """A git remote's name (``origin``), never an option git would read (``--upload-pack=…``)."""
    if not _REMOTE.fullmatch(value) or ".." in value or len(value) > 100:
        raise refuse(key, value, "the name of a git remote", "origin")
