"""invoke's config files (``invoke.yaml``, ``.yml``, ``.json``, ``.py``) read with one-line errors.

invoke reads a project's config file after importing ``tasks.py`` and before any task runs; a
file that does not parse, holds a list, or puts a value where a section of the defaults belongs
is a traceback there (YAMLError, JSONDecodeError, SyntaxError, AmbiguousMergeError). invoke has
no public hook at that point, so this module replaces its per-format file readers
(``Config._load_<suffix>``): the one private part of invoke that buildtools touches. Each
reader parses as invoke does, then :func:`buildtools.config.checked_file` checks the shape and
turns the ``buildtools`` section into text, so ``INVOKE_BUILDTOOLS_*`` variables stay strings
for :func:`buildtools.config.load`. Everything else in the file, and every other section's
environment handling, is invoke's own: an app's own tasks see no difference but the one-line
error.

The readers exist in the invoke versions named by :data:`TESTED`; setup.cfg pins that range,
and tests/test_invokefiles.py fails on any other invoke minor until it is checked again.
"""

from __future__ import annotations

import json
import types
from collections.abc import Callable
from typing import Any

import invoke.config
import yaml
from invoke.exceptions import Exit

from buildtools import config
from buildtools.errors import BuildToolsError

# The invoke minor these readers are tested against; setup.cfg pins ``>=TESTED,<next minor``.
TESTED = "3.0"


def _fail(problem: str, fix: str) -> Exit:
    return Exit(f"error: {BuildToolsError(problem, fix)}", code=1)


def _yaml(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}" if mark else str(path)
        reason = getattr(exc, "problem", None) or type(exc).__name__
        if "\\t" in reason or "\t" in reason:
            reason += " (YAML indents with spaces, never tabs)"
        raise _fail(f"{where} is not valid YAML: {reason}", "correct that line") from None


def _json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as exc:
        problem = f"{path}, line {exc.lineno} is not valid JSON: {exc.msg}"
        raise _fail(problem, "correct that line") from None


def _py(path: str) -> Any:
    try:
        found = invoke.config.load_source("mod", path)
    except FileNotFoundError:
        raise
    except SyntaxError as exc:
        raise _fail(
            f"{path}, line {exc.lineno} is not valid Python: {exc.msg}", "correct that line"
        ) from None
    except Exception as exc:  # the file is a program: any error of its own stops it
        first = (str(exc).splitlines() or [""])[0]
        raise _fail(
            f"{path} failed when invoke ran it: {type(exc).__name__}: {first}",
            "make it a module that only sets config values",
        ) from None
    data = {key: value for key, value in found.items() if not key.startswith("__")}
    for key, value in data.items():
        if isinstance(value, types.ModuleType):  # invoke refuses them too: they cannot be copied
            raise _fail(
                f"{path} sets {key} to a module, which cannot be a config value",
                f"import it under a name starting with __, or del {key} at the end",
            )
    return data


def _reader(parse: Callable[[str], Any]) -> Callable[[Any, Any], Any]:
    def read(self: Any, path: Any) -> Any:
        try:
            data = parse(str(path))
        except FileNotFoundError:
            raise  # invoke tries several names and skips the missing ones
        except (OSError, UnicodeDecodeError, RecursionError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else type(exc).__name__
            raise _fail(
                f"{path} cannot be read as config text ({reason})",
                "make it a UTF-8 text file, or remove it",
            ) from None
        try:
            return config.checked_file(data, str(path))
        except BuildToolsError as exc:
            raise Exit(f"error: {exc}", code=1) from None

    return read


# invoke's reader per config file suffix (it calls ``Config._load_<suffix>(path)``), and ours.
READERS = {"_load_yaml": _yaml, "_load_yml": _yaml, "_load_json": _json, "_load_py": _py}


def install() -> None:
    """Put the checked readers in place of invoke's (idempotent)."""
    for name, parse in READERS.items():
        setattr(invoke.config.Config, name, _reader(parse))
