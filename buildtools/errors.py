"""One exception type for every failure a user can act on."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable

MASK = "***"
# The exit status of a command stopped by Ctrl-C (128 + SIGINT), as shells report it.
INTERRUPTED = 130


def redact_text(text: str, secrets: Iterable[str], mask: str = MASK) -> str:
    """``text`` with every secret (also URL-encoded) replaced by ``mask``."""
    for secret in secrets:
        if not secret:
            continue
        for form in {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote(secret)}:
            text = text.replace(form, mask)
    return text


class BuildToolsError(Exception):
    """A problem the user can fix, rendered as one line: what went wrong, then how to fix it.

    Tasks turn it into a non-zero exit without a traceback, so messages must stand alone.
    ``problem`` may be rewritten (e.g. redacted, or told where a release stopped); ``args``,
    ``str`` and ``repr`` always follow it, so no stale copy of the old text survives.
    """

    def __init__(self, problem: str, fix: str = "", *, exit_code: int = 1) -> None:
        self._problem = problem
        self.fix = fix
        self.exit_code = exit_code
        super().__init__(str(self))

    @property
    def problem(self) -> str:
        return self._problem

    @problem.setter
    def problem(self, text: str) -> None:
        self._problem = text
        self.args = (str(self),)

    def redact(self, secrets: Iterable[str]) -> BuildToolsError:
        """Replace every secret in the problem and the fix; returns ``self`` for ``raise``."""
        secrets = list(secrets)
        self.fix = redact_text(self.fix, secrets)
        self.problem = redact_text(self._problem, secrets)
        return self

    def __str__(self) -> str:
        text = f"{self._problem} (fix: {self.fix})" if self.fix else self._problem
        # Values from users (CI variables, config) may hold line breaks: keep one line.
        return text.replace("\r", "\\r").replace("\n", "\\n")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._problem!r}, {self.fix!r})"
