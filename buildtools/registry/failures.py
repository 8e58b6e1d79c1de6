"""What talking to a registry can fail with, split by what the caller does next: a
:class:`TransientError` is worth another attempt, everything else stops the task with its
one line (a login refused is never retried: the same password will be refused again).
"""

from __future__ import annotations

from buildtools.errors import BuildToolsError
from buildtools.registry.credentials import variable_names


class RegistryError(BuildToolsError):
    """A registry answered something we cannot use."""


class AuthError(RegistryError):
    """The registry refused our credentials or our access: never retried."""


class CredentialsMissing(AuthError):
    """The registry needs a login and no credentials are set for it."""

    def __init__(self, registry: str) -> None:
        user_var, pass_var = variable_names(registry)
        self.registry = registry
        super().__init__(
            f"registry {registry} requires a login and no credentials are set for it",
            f"set {user_var} and {pass_var} (or DOCKER_USERNAME and DOCKER_PASSWORD)",
        )


class Unreachable(RegistryError):
    """Transient failures went on after every retry."""


class TransientError(Exception):
    """One failed attempt that may succeed later; ``retry_after`` from the registry if given."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
