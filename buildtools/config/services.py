"""``smoke.services``: containers the app needs for its smoke test (a database), by name.

One key whose section holds the user's own names; each service has the keys in
:data:`SERVICE_KEYS`. Read and checked here, so the key's declaration in
:mod:`buildtools.config.keys` points at :func:`parse` and :func:`check`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from buildtools.config import checks
from buildtools.config.kinds import SECTION, one_line, refuse, split_list
from buildtools.errors import BuildToolsError


@dataclass(frozen=True)
class ServiceConfig:
    """A container the app needs for its smoke test (a database), reachable by ``name``."""

    name: str
    image: str
    env: tuple[str, ...] = ()
    ready: str = ""


# The keys of one service (smoke.services.<name>.<key>), with their help for the README.
SERVICE_KEYS = {
    "image": "required",
    "env": "as `smoke.env`",
    "ready": "a command run in it until it succeeds",
}
RESERVED_NAMES = ("app", "nginx", "prepare", "net")
# Lower case: Compose project and service names (invoke compose) and DNS aliases.
SERVICE_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")


def _text(service: Mapping[str, Any], where: str, leaf: str) -> str:
    """One of a service's values as text, named by its full path when it is not one."""
    value = service.get(leaf)
    if isinstance(value, Mapping | list | tuple):
        raise refuse(f"{where}.{leaf}", value, "a single value")
    return one_line(f"{where}.{leaf}", "" if value is None else str(value).strip())


def parse(key: str, services: Any) -> tuple[ServiceConfig, ...]:
    """The services of ``key`` (a section of sections), in the order given."""
    services = services or {}
    if not isinstance(services, Mapping):
        raise refuse(key, services, "a section of services by name")
    found = []
    for name, service in services.items():
        where = f"{key}.{name}"
        if not checks.ENV_NAME.fullmatch(str(name).replace("-", "_")):
            raise refuse(where, name, "a service name (letters, digits, - and _)")
        if not isinstance(service, Mapping):
            raise refuse(where, service, "a section with image, env and ready")
        image = _text(service, where, "image")
        if not image:
            raise BuildToolsError(
                f"config key {SECTION}.{where} has no image",
                f"give it one: {where}.image: lara-buildtools/mariadb:latest",
            )
        env = split_list(_text(service, where, "env"))
        checks.env_entries(f"{where}.env", env)
        found.append(ServiceConfig(str(name), image, env, _text(service, where, "ready")))
    return tuple(found)


def check(key: str, services: tuple[ServiceConfig, ...]) -> None:
    """Names the stack can give containers, and images the engine can pull."""
    for service in services:
        if service.name in RESERVED_NAMES:
            raise BuildToolsError(
                f"config key {SECTION}.{key} has a service named {service.name!r}, "
                "which the stack's own containers use",
                "name it after what it is, e.g. db or redis",
            )
        if not SERVICE_NAME.fullmatch(service.name):
            raise BuildToolsError(
                f"config key {SECTION}.{key} has a service named {service.name!r}, "
                "which is not a lower-case name",
                "use a-z, digits, _ . and -, starting with a letter or digit, e.g. db or redis",
            )
        checks.image(f"{key}.{service.name}.image", service.image)
