"""invoke's project config file and environment, checked before invoke reads them.

invoke imports ``tasks.py``, then reads the project's ``invoke.yaml`` (or ``.yml``, ``.json``,
``.py``: the first that exists), then the ``INVOKE_*`` environment, before any task runs. A file
that does not parse, holds a list, or puts a value where a section of the defaults belongs is a
traceback there (YAMLError, JSONDecodeError, SyntaxError, AmbiguousMergeError), and so is an
``INVOKE_BUILDTOOLS_*`` value that invoke cannot cast to the type the file gave its key
(``retries: 3`` with ``…_RETRIES=lots``). invoke has no hook at that point, so importing
:mod:`buildtools.tasks` reads the same file first (:func:`check_project`) and stops with one
line (invoke's :class:`~invoke.exceptions.Exit`, which invoke prints) where invoke would fail.
invoke then reads everything itself, unchanged: an app's own tasks and config behave as under
plain invoke. Only public parts of invoke are used.

invoke casts an environment value to the type of the value it overrides, so a file's
``untracked_is_dirty: false`` under ``…_UNTRACKED_IS_DIRTY=false`` reaches the task as True:
:func:`section` reads this section's environment values again as the strings they are, through
invoke's own :class:`~invoke.env.Environment` over a text copy of the section.
"""

from __future__ import annotations

import inspect
import json
import os
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import invoke.config
import yaml
from invoke.env import Environment
from invoke.exceptions import CollectionNotFound, Exit
from invoke.loader import FilesystemLoader

from buildtools.config import schema
from buildtools.errors import BuildToolsError

# The names invoke tries for a project's config file, in its order (``invoke.<suffix>``).
SUFFIXES = ("yaml", "yml", "json", "py")


def _fail(problem: str, fix: str) -> Exit:
    return Exit(f"error: {BuildToolsError(problem, fix)}", code=1)


class _UniqueKeys(yaml.SafeLoader):
    """PyYAML keeps only the last of two equal keys in one mapping, silently: a second
    ``nginx:`` section would drop every setting of the first. Refuse it instead."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[tuple[str, str]] = set()
        for key_node, _ in node.value:  # the mapping's own keys (merged ones may repeat)
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            key = (key_node.tag, key_node.value)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"{key_node.value!r} appears twice in one section",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def _yaml(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.load(handle, Loader=_UniqueKeys)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}" if mark else str(path)
        reason = getattr(exc, "problem", None) or type(exc).__name__
        if "\\t" in reason or "\t" in reason:
            reason += " (YAML indents with spaces, never tabs)"
        fix = "merge the two into one" if "appears twice" in reason else "correct that line"
        raise _fail(f"{where} is not valid YAML: {reason}", fix) from None


def _json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as exc:
        problem = f"{path}, line {exc.lineno} is not valid JSON: {exc.msg}"
        raise _fail(problem, "correct that line") from None


def _py(path: str) -> Any:
    """The module's values, run as invoke runs it (its public ``load_source``)."""
    try:
        found = invoke.config.load_source("mod", path)
    except SyntaxError as exc:
        raise _fail(
            f"{path}, line {exc.lineno} is not valid Python: {exc.msg}", "correct that line"
        ) from None
    except OSError:
        raise
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


PARSERS: dict[str, Callable[[str], Any]] = {"yaml": _yaml, "yml": _yaml, "json": _json, "py": _py}


def importer_dir() -> Path | None:
    """The folder of the tasks file invoke is loading right now (from wherever ``-r``/``-c``
    pointed, which the working directory need not be): the outermost module file below invoke's
    loader on the way to this import, so a ``tasks.py`` that imports buildtools through a
    module of its own still counts. None when invoke is not loading it (``python -c``, pytest):
    then :func:`project_dir` finds ``tasks.py`` as invoke would."""
    found: Path | None = None
    # The frames themselves, not inspect.stack(): that looks up every frame's source file and
    # module (a scan of sys.modules each), a tenth of `invoke --version`'s time.
    frame = inspect.currentframe()
    frame = frame.f_back if frame is not None else None
    while frame is not None:
        scope = frame.f_globals
        name, file = str(scope.get("__name__", "")), scope.get("__file__")
        if name == "invoke" or name.startswith("invoke."):
            return found
        frame = frame.f_back
        if not file or name.startswith(("buildtools", "importlib", "_frozen", "<")):
            continue
        path = Path(file).resolve()
        found = path.parent.parent if path.name == "__init__.py" else path.parent
    return None


def project_dir(cfg: Any = None, name: str = "tasks") -> Path | None:
    """The directory holding the ``name`` tasks module, found as invoke's own loader finds it
    (upwards from the search root in ``cfg``, the working directory by default); None outside
    a project."""
    try:
        spec = FilesystemLoader(config=cfg).find(name)
    except (CollectionNotFound, OSError):
        return None
    if spec is None or not spec.origin:
        return None
    found = Path(spec.origin).parent
    return found.parent if spec.submodule_search_locations else found


def read_project_file(directory: Path) -> tuple[Path, Any] | None:
    """The first ``invoke.<suffix>`` in ``directory`` and its parsed content, or None."""
    for suffix in SUFFIXES:
        path = directory / f"invoke.{suffix}"
        if not path.is_file():
            continue
        try:
            return path, PARSERS[suffix](str(path))
        except (OSError, UnicodeDecodeError, RecursionError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else type(exc).__name__
            raise _fail(
                f"{path} cannot be read as config text ({reason})",
                "make it a UTF-8 text file, or remove it",
            ) from None
    return None


def env_prefix(cfg: Any = None) -> str:
    """The environment variable prefix invoke uses (``INVOKE_``), from a config object's public
    ``env_prefix``/``prefix`` (invoke's Config class when none is given)."""
    cfg = cfg if cfg is not None else invoke.config.Config
    return f"{(cfg.env_prefix or cfg.prefix).upper()}_"


def check_uncastable(section: Mapping[str, Any], where: Path, environ: Mapping[str, str]) -> None:
    """invoke casts an environment value with the type of the file's value (``int('lots')``, or
    refuses a list): a traceback before any task runs. Say it in one line instead."""
    prefix = env_prefix()
    for keys, value in schema.leaves(section, (schema.SECTION,)):
        variable = prefix + "_".join(keys).upper()
        raw = environ.get(variable)
        if raw is None or isinstance(value, bool | str) or value is None:
            continue
        key = ".".join(keys)
        if isinstance(value, list | tuple):
            raise _fail(
                f"{variable} cannot override {key}, which {where} gives as a list",
                f"write it in {where.name} as one comma-separated string",
            )
        try:
            type(value)(raw)
        except (TypeError, ValueError):
            kind = "whole number" if isinstance(value, int) else "number"
            raise _fail(
                f"{key} = {raw!r} is not a {kind} (from {variable})",
                f"set {variable} to a {kind}, or unset it",
            ) from None


def check_project(directory: Path | None = None, environ: Mapping[str, str] | None = None) -> None:
    """Read the project's config file as invoke is about to, and stop with one line where invoke
    would fail with a traceback. Outside a project, or without a file, nothing to check."""
    directory = project_dir() if directory is None else directory
    found = read_project_file(directory) if directory is not None else None
    if found is None:
        return
    path, data = found
    try:
        schema.check_file(data, str(path))
    except BuildToolsError as exc:
        raise Exit(f"error: {exc}", code=1) from None
    given = data.get(schema.SECTION) if isinstance(data, dict) else None
    if isinstance(given, Mapping):
        try:
            check_uncastable(given, path, os.environ if environ is None else environ)
        except RecursionError:
            raise _fail(
                f"{path}: {schema.SECTION} refers to itself (a YAML alias inside its own anchor)",
                "write the values out instead of the alias",
            ) from None


def section(cfg: Any) -> dict[str, Any]:
    """This section of invoke's merged config as text, with every ``INVOKE_BUILDTOOLS_*`` value
    the string it is (invoke cast it to the type of the file's value)."""
    merged = schema.as_text(dict(cfg.get(schema.SECTION) or {}))
    raw = Environment(config={schema.SECTION: merged}, prefix=env_prefix(cfg)).load()
    return schema.overlay(merged, raw.get(schema.SECTION, {}))
