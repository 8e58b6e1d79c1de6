"""Retries of registry calls: which failures are transient, and how long to wait between tries.

Transient: no connection, a reset or a timeout, HTTP 5xx and 429 (rate limited; its
``Retry-After`` is honoured within the policy's bound). Everything else, authentication and
permission failures above all, is answered at once. Backoff is exponential with jitter, so
many CI jobs hitting one registry do not retry in step.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import requests

from buildtools.config.keys import default_of
from buildtools.registry.failures import TransientError, Unreachable

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: retry ``n`` waits between half and all of
    ``min(max_delay, base_delay * 2**n)``, or the registry's ``Retry-After`` if longer (but
    never more than ``max_delay``). ``retries`` counts the attempts after the first. The
    defaults are the ``release.retr*`` keys' own.
    """

    retries: int = default_of("release.retries")  # type: ignore[assignment]
    base_delay: float = default_of("release.retry_base_delay")  # type: ignore[assignment]
    max_delay: float = default_of("release.retry_max_delay")  # type: ignore[assignment]
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)
    random: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        ceiling = min(self.max_delay, self.base_delay * (2**retry))
        wait = ceiling / 2 + ceiling / 2 * self.random()
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_delay))
        return wait

    def run(
        self,
        action: Callable[[], T],
        what: str,
        on_retry: Callable[[int, float, str], None] | None = None,
        fix: str = "check that the registry is up and reachable from here; "
        "buildtools.release.retries sets how often to retry",
    ) -> T:
        """``action()``, retried on :class:`TransientError`; :class:`Unreachable` at the end."""
        for attempt in range(self.retries + 1):
            try:
                return action()
            except TransientError as exc:
                if attempt >= self.retries:
                    tries = "once" if attempt == 0 else f"{attempt + 1} times"
                    raise Unreachable(f"{what} failed {tries}, last: {exc.reason}", fix) from None
                wait = self.delay(attempt, exc.retry_after)
                if on_retry is not None:
                    on_retry(attempt + 1, wait, exc.reason)
                self.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover


class Answered(Protocol):
    """An HTTP answer as far as retries care: its status and headers."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...


def raise_if_transient(resp: Answered, prefix: str = "") -> None:
    """:class:`TransientError` for an answer worth retrying (HTTP 429 and 5xx)."""
    if resp.status_code == 429 or resp.status_code >= 500:
        raise TransientError(f"{prefix}HTTP {resp.status_code}", _retry_after(resp))


def network_failure(exc: requests.RequestException, prefix: str = "") -> TransientError:
    """A request that got no answer, as a retryable failure with a short reason."""
    return TransientError(f"{prefix}{_network_reason(exc)}")


def _retry_after(resp: Answered) -> float | None:
    value = resp.headers.get("Retry-After", "").strip()
    return float(value) if value.isdigit() else None


_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")


def _network_reason(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.Timeout):
        return "timed out"
    found = _ERRNO.search(str(exc))
    if found:
        return found.group(1).strip().lower()
    for words in ("connection reset", "connection aborted", "remote end closed", "refused"):
        if words in str(exc).lower():
            return words
    return type(exc).__name__
