"""Promotion, pure: what the app Dockerfile's last stage makes from the metadata build args, so a
promotion can repeat it without building.

A release changes only what the metadata build args feed: each ENV that uses one, and the
``version.yml`` the one metadata RUN writes. :func:`app_recipe` reads those from the Dockerfile
and refuses (:class:`~buildtools.plan.manifest_rewrite.CannotPromote`) any other step that uses
them. Apart from the rewrite of layers, config and manifest
(:mod:`buildtools.plan.manifest_rewrite`) because it reads a Dockerfile, not registry bytes.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping

from buildtools.plan import dockerfile
from buildtools.plan.manifest_rewrite import CannotPromote, File

VERSION_YML_ARG = "LARA_VERSION_YML"
# `RUN printf '%s' "${LARA_VERSION_YML}" > /path/version.yml`: the one metadata RUN repeated.
_WRITES_VERSION_YML = re.compile(r"""^printf\s+'%s'\s+"\$\{?LARA_VERSION_YML\}?"\s*>\s*(/\S+)$""")
_ROOT_USERS = ("root", "0", "0:0", "root:root")


def _substitute(value: str, args: Mapping[str, str]) -> str:
    """``$NAME`` and ``${NAME}`` replaced by the build arg; other forms cannot be repeated."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in args:
            raise CannotPromote(f"the Dockerfile's ENV uses ${name}, which is not a build arg")
        return args[name]

    if re.search(r"\$\{[A-Za-z_][A-Za-z0-9_]*[:?+-]", value):
        raise CannotPromote(f"the Dockerfile's ENV value {value!r} uses ${{…:…}} forms")
    return re.sub(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))", one, value)


def _env_pairs(args: str) -> list[tuple[str, str]]:
    """``ENV A=1 B="two"`` (or the legacy ``ENV A 1``) as pairs, quotes removed."""
    try:
        words = shlex.split(args)
    except ValueError:
        raise CannotPromote("the Dockerfile has an ENV it cannot read (unclosed quote)") from None
    if words and "=" not in words[0]:
        return [(words[0], " ".join(words[1:]))]
    return [(w.partition("=")[0], w.partition("=")[2]) for w in words]


def app_recipe(
    dockerfile_text: str, build_args: Mapping[str, str], version_yml: bytes
) -> tuple[dict[str, str], tuple[File, ...]]:
    """The ENV values and files the app Dockerfile's last stage makes from the metadata build
    args ``build_args``: each ENV that uses one of them, and version.yml where the one metadata
    RUN writes it (root-owned, mode 0644, as a shell redirect as root makes it). Any other
    step using them cannot be repeated without building: :class:`CannotPromote`."""
    parsed = dockerfile.parse(dockerfile_text)
    if not parsed.stages:
        raise CannotPromote("the app Dockerfile has no FROM")
    env: dict[str, str] = {}
    files: list[File] = []
    user = ""
    for step in parsed.stages[-1].instructions:
        used = dockerfile.variables(step.args) & set(build_args)
        if step.keyword == "USER":
            user = step.args.strip()
        if not used or step.keyword == "ARG":
            continue
        if step.keyword == "ENV":
            for name, value in _env_pairs(step.args):
                if dockerfile.variables(value) & set(build_args):
                    env[name] = _substitute(value, build_args)
            continue
        written = _WRITES_VERSION_YML.match(step.args.strip())
        if step.keyword == "RUN" and written and used == {VERSION_YML_ARG}:
            if user and user not in _ROOT_USERS:
                raise CannotPromote(
                    f"the Dockerfile writes version.yml as USER {user} (line {step.line})"
                )
            files.append(File(written.group(1), version_yml))
            continue
        raise CannotPromote(
            f"the Dockerfile's {step.keyword} at line {step.line} uses "
            f"{', '.join(sorted(used))}, which only a build can repeat"
        )
    return env, tuple(files)
