"""One exception type for every failure a user can act on."""

from __future__ import annotations


class BuildToolsError(Exception):
    """A problem the user can fix, rendered as one line: what went wrong, then how to fix it.

    Tasks turn it into a non-zero exit without a traceback, so messages must stand alone.
    """

    def __init__(self, problem: str, fix: str = "", *, exit_code: int = 1) -> None:
        self.problem = problem
        self.fix = fix
        self.exit_code = exit_code
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.problem} (fix: {self.fix})" if self.fix else self.problem
