"""version.yml: the build's facts in a stable shape, for the app and for people.

The keys and their order never change, so files from different builds diff cleanly and the
app can read them without guessing. The same data renders as YAML, JSON or shell variables.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable
from typing import Any

import yaml

from buildtools.errors import BuildToolsError
from buildtools.facts.buildinfo import BuildInfo
from buildtools.plan.tags import ImageTag

KEYS = (
    "version",
    "branch",
    "tag",
    "commit",
    "short_commit",
    "dirty",
    "pull_request",
    "build_number",
    "build_url",
    "build_date",
    "ci",
    "image_tags",
)
FORMATS = ("yaml", "json", "env")
ENV_PREFIX = "LARA_"
_NOT_ENV_NAME = re.compile(r"[^A-Z0-9_]+")


def as_dict(info: BuildInfo, image_tags: Iterable[ImageTag | str] = ()) -> dict[str, Any]:
    """The version file content, keys in the order of :data:`KEYS`; unknown facts are None."""
    data = {key: getattr(info, key) for key in KEYS if key != "image_tags"}
    data["image_tags"] = [t.name if isinstance(t, ImageTag) else str(t) for t in image_tags]
    return data


def check_format(fmt: str) -> str:
    """``fmt`` if it is a known format, else a BuildToolsError listing the known ones."""
    if fmt not in FORMATS:
        raise BuildToolsError(f"unknown format {fmt!r}", f"use one of: {', '.join(FORMATS)}")
    return fmt


def _env_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value)
    return str(value)


def render(data: dict[str, Any], fmt: str) -> str:
    """``data`` as text ending in a newline.

    ``env`` writes one ``LARA_<KEY>=value`` line per key: None is empty, booleans are
    ``true``/``false``, lists are comma-separated, and values are quoted only when the shell
    needs it, so the output works with ``eval``/``.`` and, for ordinary values, as a
    ``docker --env-file`` or ``$GITHUB_ENV`` file.
    """
    check_format(fmt)
    if fmt == "yaml":  # ASCII only: PyYAML misreads some raw characters (e.g. U+0085)
        return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    lines = []
    for key, value in data.items():
        name = ENV_PREFIX + _NOT_ENV_NAME.sub("_", str(key).upper())
        text = _env_value(value)
        lines.append(f"{name}={shlex.quote(text) if text else ''}")
    return "\n".join(lines) + "\n"
