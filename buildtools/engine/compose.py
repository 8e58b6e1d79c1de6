"""A Compose file for a build's pair and its smoke test's services, as ``invoke up`` runs them.

One file for ``docker compose`` (and Debian's ``docker-compose`` 1.29) and, with ``swarm``, for
``docker stack deploy``: the same services, images, environment, health checks and port. The
two tools read different subsets of the format, so the file says in comments which keys each
one ignores. Secrets are named, never written: a bare name in ``smoke.env`` becomes
``${NAME:?…}``, which both tools fill in from the environment of whoever deploys it.

Pure: plain values in (settings, the tag plan, image names), YAML text out. The caller reads
digests from a registry (:func:`pin` takes the lookup as a function).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import yaml

from buildtools.config.schema import ServiceConfig, SmokeConfig
from buildtools.errors import BuildToolsError
from buildtools.plan import push_order
from buildtools.plan.tags import ImageTag

# docker-compose 1.29 reads a file without `version` as the old v1 format (no `services:`), and
# docker 20.10's `stack deploy` refuses one; 3.9 is the newest both know. `docker compose` v2
# ignores it (and says so).
VERSION = "3.9"
# The names of the pair in the file; a smoke service may not take them.
APP, SIDECAR, PREPARE = "app", "nginx", "prepare"
# How often a service's readiness command runs (``invoke up`` polls every 0.5 s; a health
# check that often would keep a database busy in production).
HEALTH_INTERVAL = 2
# Swarm: a service reached by name answers from its tasks' own addresses (as on a Compose
# network), not from a virtual IP, which needs IPVS and the engine's iptables rules; the
# sidecar's nginx re-resolves the name every few seconds (nginx.resolver_valid).
BY_NAME = {"endpoint_mode": "dnsrr"}

HEADER = """\
# {title} {version} (commit {commit}): the app, its nginx sidecar{services},
# as `invoke up` runs them. Made by `invoke compose`{swarm_note}.
# Secrets are named here, never written: export them where you deploy ({secrets}).
#
#   docker compose up -d            (or docker-compose up -d, 1.29)
#   docker stack deploy -c FILE NAME   (Swarm: print the file with `invoke compose --swarm`)
#
# Keys one tool ignores:
# - docker-compose 1.29 ignores `deploy` (Swarm's restart policy and endpoint mode).
# - docker stack deploy ignores `depends_on` and `restart`; it refuses `depends_on` with
#   conditions, so the --swarm file lists names only: the app must cope with a database
#   that comes up after it (Swarm restarts what fails), and `prepare` is retried until it
#   succeeds once.
"""

COMMENTS = {
    "version": "# docker-compose 1.29 and docker 20.10's stack deploy need it.",
    "healthcheck": "# What `invoke up` waits for: buildtools.smoke.services.{service}.ready.",
    "depends_on": "# docker compose starts in this order and waits; stack deploy ignores it.",
    "restart": "# docker compose only; Swarm restarts by deploy.restart_policy.",
    "deploy": "# For docker stack deploy; docker-compose 1.29 ignores it. endpoint_mode dnsrr:\n"
    "# the name resolves to the tasks' addresses, no virtual IP (nginx re-resolves it).",
    "ports": "# mode host: published on the machine (Swarm: the node) running the sidecar, as\n"
    "# docker compose does; for Swarm's routing mesh on every node, write mode: ingress.",
    "prepare": "# buildtools.smoke.prepare, once, before the app starts (a one-shot service).",
}


@dataclass(frozen=True)
class Image:
    """One image of the pair as a deployment names it: in a registry, by tag or by digest."""

    name: str  # the repository as the engine pulls it, e.g. registry.example.org/lara/app
    repository: str  # as configured and as the registry's API names it, e.g. lara/app
    tag: str
    digest: str = ""

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.digest}" if self.digest else f"{self.name}:{self.tag}"


def choose_tag(tags: Sequence[ImageTag], wanted: str = "") -> str:
    """The tag a deployment should name: ``wanted`` if the build pushes it, else the first
    immutable one (the exact version on a release, else ``sha-…``), never one that moves."""
    names = [name for name, _ in push_order.tag_pairs(tags)]
    if not names:
        raise BuildToolsError(
            "the tag policy gives this build no tags, so it pushes no images to deploy",
            "run it on a release branch or a git tag (invoke version shows the tags)",
        )
    if wanted and wanted not in names:
        # A git tag (v1.2.3) is the release; its image tag drops the v (1.2.3).
        release = wanted[1:] if wanted[:1] in "vV" and wanted[1:] in names else None
        hint = f" (--tag names an image tag: the release {wanted} is {release})" if release else ""
        raise BuildToolsError(
            f"--tag {wanted!r} is not an image tag this build pushes{hint}",
            f"pass one of {', '.join(names)}",
        )
    return wanted or names[0]


def pin(image: Image, digest_of: Callable[[str, str], str | None]) -> Image:
    """``image`` by the digest its tag points at now (``digest_of(repository, tag)``)."""
    digest = digest_of(image.repository, image.tag)
    if not digest:
        raise BuildToolsError(
            f"{image.name}:{image.tag} is not in the registry, so it has no digest to pin",
            "release it first (invoke release), or leave out --digest",
        )
    return replace(image, digest=digest)


def _escaped(value: str) -> str:
    """A literal value as Compose must see it: ``$`` doubled, or it would be interpolated."""
    return value.replace("$", "$$")


def secret_reference(name: str) -> str:
    """How a secret appears: by name, filled from the deploying shell, an error if unset."""
    return f"${{{name}:?set {name} in the environment (a secret: never written in this file)}}"


def environment(entries: Sequence[str]) -> dict[str, str]:
    """``KEY=VALUE`` entries as literal values, bare ``KEY`` (a secret) by reference only."""
    found: dict[str, str] = {}
    for entry in entries:
        name, sep, value = entry.partition("=")
        found[name] = _escaped(value) if sep else secret_reference(name)
    return found


def secret_names(cfg: SmokeConfig) -> list[str]:
    entries = [*cfg.env, *(e for s in cfg.services for e in s.env)]
    return list(dict.fromkeys(e for e in entries if "=" not in e))


def healthcheck(service: ServiceConfig, timeout: int) -> dict[str, Any]:
    """``invoke up``'s readiness wait as a health check: the command in the container, until it
    succeeds, for as long as ``smoke.timeout`` (the container exiting fails it at once)."""
    return {
        "test": ["CMD-SHELL", _escaped(service.ready)],
        "interval": f"{HEALTH_INTERVAL}s",
        "timeout": f"{max(HEALTH_INTERVAL, 5)}s",
        "retries": max(1, math.ceil(timeout / HEALTH_INTERVAL)),
    }


def _check_names(cfg: SmokeConfig) -> None:
    for service in cfg.services:
        if service.name in (APP, SIDECAR, PREPARE):
            raise BuildToolsError(
                f"smoke service {service.name!r} has the name the Compose file gives the "
                f"{'prepare step' if service.name == PREPARE else 'pair'}",
                f"rename buildtools.smoke.services.{service.name} (e.g. db)",
            )


def _depends(conditions: Mapping[str, str], swarm: bool) -> list[str] | dict[str, Any]:
    if swarm:
        return list(conditions)
    return {name: {"condition": condition} for name, condition in conditions.items()}


def document(
    cfg: SmokeConfig,
    app: Image,
    sidecar: Image,
    port: int,
    app_port: int,
    sidecar_port: int,
    swarm: bool = False,
) -> dict[str, Any]:
    """The Compose file as data: services first, then prepare, the app and its sidecar."""
    _check_names(cfg)
    services: dict[str, Any] = {}
    ready: dict[str, str] = {}
    for service in cfg.services:
        entry: dict[str, Any] = {"image": service.image}
        if service.env:
            entry["environment"] = environment(service.env)
        if service.ready:
            entry["healthcheck"] = healthcheck(service, cfg.timeout)
        entry["deploy"] = dict(BY_NAME)
        services[service.name] = entry
        ready[service.name] = "service_healthy" if service.ready else "service_started"
    app_env = environment(cfg.env)
    app_waits = dict(ready)
    if cfg.prepare:
        prepare: dict[str, Any] = {
            "image": app.ref,
            "command": ["sh", "-c", _escaped(cfg.prepare)],
        }
        if app_env:
            prepare["environment"] = dict(app_env)
        if ready:
            prepare["depends_on"] = _depends(ready, swarm)
        prepare["restart"] = "no"
        prepare["deploy"] = {"restart_policy": {"condition": "on-failure", "delay": "5s"}}
        services[PREPARE] = prepare
        app_waits[PREPARE] = "service_completed_successfully"
    app_entry: dict[str, Any] = {"image": app.ref}
    if app_env:
        app_entry["environment"] = app_env
    if app_waits:
        app_entry["depends_on"] = _depends(app_waits, swarm)
    app_entry["restart"] = "unless-stopped"
    app_entry["deploy"] = dict(BY_NAME)
    services[APP] = app_entry
    services[SIDECAR] = {
        "image": sidecar.ref,
        "environment": {"APP_UPSTREAM": f"{APP}:{app_port}"},
        "ports": [{"target": sidecar_port, "published": port, "protocol": "tcp", "mode": "host"}],
        "depends_on": _depends({APP: "service_started"}, swarm),
        "restart": "unless-stopped",
    }
    return {"version": VERSION, "services": services}


_KEY = re.compile(r"^( *)([A-Za-z0-9_.-]+):(?: |$)")


def _annotated(text: str) -> str:
    """The dumped YAML with a comment line above the keys :data:`COMMENTS` explains."""
    lines: list[str] = []
    path: list[tuple[int, str]] = []
    said: set[str] = set()  # each comment once, above its first key
    for line in text.splitlines():
        match = _KEY.match(line)
        if match:
            indent, key = len(match[1]), match[2]
            path = [(i, k) for i, k in path if i < indent] + [(indent, key)]
            keys = [k for _, k in path]
            comment = None
            if keys == ["version"]:
                comment = COMMENTS["version"]
            elif len(keys) == 2 and keys[0] == "services" and keys[1] == PREPARE:
                comment = COMMENTS["prepare"]
            elif len(keys) == 3 and keys[0] == "services" and keys[2] in COMMENTS:
                comment = COMMENTS[keys[2]].format(service=keys[1])
            if comment and comment not in said:
                said.add(comment)
                lines.extend(f"{match[1]}{part}" for part in comment.splitlines())
        lines.append(line)
    return "\n".join(lines) + "\n"


def _comment_safe(text: str) -> str:
    """``text`` on one line, fit for the header's comments: a line break in a configured value
    (``title`` comes from invoke.yaml or the environment) would end the comment, and the rest
    would be read as keys of the file."""
    return re.sub(r"[\x00-\x1f\x7f]+", " ", text).strip()


def render(
    data: Mapping[str, Any],
    *,
    title: str,
    version: str,
    commit: str,
    secrets: Sequence[str],
    swarm: bool = False,
) -> str:
    """The file as text: a header saying what it is and what each tool ignores, then the keys
    with their comments."""
    services = [name for name in data["services"] if name not in (APP, SIDECAR, PREPARE)]
    header = HEADER.format(
        title=_comment_safe(title),
        version=_comment_safe(version),
        commit=commit[:12],
        services=f", {', '.join(services)}" if services else "",
        swarm_note=" --swarm, for docker stack deploy" if swarm else "",
        secrets=", ".join(secrets) if secrets else "none in this configuration",
    )
    body = yaml.safe_dump(dict(data), sort_keys=False, default_flow_style=False, width=10**6)
    return header + "\n" + _annotated(body)
