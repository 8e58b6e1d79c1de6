"""Task flags as values, or a one-line error: what the user typed, checked before any work."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from invoke import Task
from invoke.parser import Argument

from buildtools.errors import BuildToolsError
from buildtools.facts import ci_env
from buildtools.facts.buildinfo import Overrides


def overrides(branch: str, tag: str, commit: str) -> Overrides:
    """``--branch``, ``--tag`` and ``--commit``; an empty flag means "ask CI and git"."""
    for flag, value in (("--branch", branch), ("--tag", tag), ("--commit", commit)):
        if ci_env.has_control_character(value or ""):
            raise BuildToolsError(
                f"{flag} {value!r} holds a control character (a line break?)",
                f"pass {flag} a plain name",
            )
    return Overrides(branch=branch or None, tag=tag or None, commit=commit or None)


def path(value: str) -> Path | None:
    """A path flag, absolute (relative to the working directory); empty: not given."""
    return Path(value).resolve() if value else None


_STACK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


def stack_name(value: str) -> str:
    """``--name`` as the prefix of container and network names, or a one-line error."""
    if not _STACK_NAME.fullmatch(value):
        raise BuildToolsError(
            f"--name {value!r} cannot start container names",
            "use letters, digits, _ . and -, starting with a letter or digit",
        )
    return value


def port_number(value: object) -> int:
    """``--port`` as a TCP port, or a one-line error."""
    text = str(value).strip()
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise BuildToolsError(f"--port {value!r} is not a port number", "pass 1 to 65535")
    return int(text)


def one_of_yes_and_dry_run(yes: bool, dry_run: bool) -> None:
    """``invoke prune --yes --dry-run`` says two opposite things: neither is guessed."""
    if yes and dry_run:
        raise BuildToolsError(
            "--yes deletes and --dry-run deletes nothing: both were given",
            "give --yes to delete, or neither (a dry run is the default)",
        )


class _UnlessCleared(Argument):
    """``VERSION`` of ``rollback TAG VERSION``: invoke has no optional positional argument (it
    asks for one while its value is None), so it counts as given once ``--clear`` is."""

    def __init__(self, cleared: Argument, like: Argument) -> None:
        super().__init__(names=like.names, kind=like.kind, default=like.default, help=like.help,
                         positional=like.positional, attr_name=like.attr_name)  # fmt: skip
        self.cleared = cleared

    @property
    def value(self) -> Any:
        if self._value is None and self.cleared.value:
            return ""
        return self._value if self._value is not None else self.default

    @value.setter
    def value(self, arg: str) -> None:
        self.set_value(arg, cast=True)


class VersionOrClear(Task):
    """``invoke rollback TAG VERSION`` and ``invoke rollback --clear TAG`` as one task."""

    def get_arguments(self, ignore_unknown_help: bool | None = None) -> list[Argument]:
        args = super().get_arguments(ignore_unknown_help)
        clear = next(a for a in args if a.name == "clear")
        return [_UnlessCleared(clear, a) if a.name == "version" else a for a in args]
