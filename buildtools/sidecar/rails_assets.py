"""``asset_fallback: auto``: whether the app can serve a missing asset, from its files and ENV.

Pure: the files and ENV are read out of the app image by :mod:`buildtools.sidecar.asset_fallback`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

APP_HOME = "/lara"
# Files (relative to APP_HOME) that asset_fallback_for reads from the app image.
APP_FILES = ("config/environments/production.rb",)

_RAILS_SETTING = re.compile(
    r"^[ \t]*config\.(public_file_server\.enabled|serve_static_files|serve_static_assets"
    r"|assets\.compile)[ \t]*=[ \t]*([^#\n]*?)[ \t]*(?:#.*)?$",
    re.M,
)
# ENV["NAME"], ENV.fetch("NAME", ...), ENV.key?("NAME"): the variable a setting depends on.
_ENV_READ = re.compile(
    r"""\bENV(?:\[|\.fetch\(|\.key\?\(|\.include\?\()\s*['"]([A-Za-z_][A-Za-z0-9_]*)['"]"""
)


def explain_asset_fallback(
    app_files: Mapping[str, str], app_env: Mapping[str, str] | None = None
) -> tuple[str, str]:
    """(``proxy`` or ``404``, why) for an app image's files (paths relative to /lara) and ENV.

    ``404`` only when the image shows that the app cannot serve a missing asset: Rails with
    ``public_file_server.enabled`` (or ``serve_static_files``/``_assets``) false, or read from an
    env var the image leaves unset, and ``assets.compile`` not true. Anything else, a non-Rails
    app included, keeps ``proxy``: always correct, it only costs the app a request per miss.
    """
    env = app_env or {}
    path = APP_FILES[0]
    text = app_files.get(path)
    if text is None:
        return "proxy", f"the app image has no {path}: it may serve assets"
    settings: dict[str, str] = {}
    for match in _RAILS_SETTING.finditer(text):
        settings["serves" if match[1] != "assets.compile" else "compiles"] = match[2]
    if settings.get("compiles") == "true":
        return "proxy", f"{path} sets assets.compile = true: the app compiles missing assets"
    serves = settings.get("serves")
    if serves is None:
        return "proxy", f"{path} leaves public_file_server.enabled at Rails' default, true"
    if serves in ("false", "nil"):
        return "404", f"{path} sets public_file_server.enabled = {serves}"
    if serves == "true":
        return "proxy", f"{path} sets public_file_server.enabled = true"
    variable = _ENV_READ.search(serves)
    if variable:
        name = variable[1]
        if env.get(name):
            return "proxy", f"{path} reads {name}, which the app image sets"
        return "404", f"{path} reads {name}, which the app image leaves unset"
    return "proxy", f"{path} sets public_file_server.enabled = {serves}, not known at build time"


def asset_fallback_for(
    app_files: Mapping[str, str], app_env: Mapping[str, str] | None = None
) -> str:
    """``proxy`` or ``404`` for an app image's files and ENV (why: explain_asset_fallback)."""
    return explain_asset_fallback(app_files, app_env)[0]
