"""Which registry failures are retried, how long the waits are, and what is said at the end.

The backoff arithmetic and the classification of answers are pure; the retries themselves
run against a real docker-registry behind a proxy that fails on purpose, and a closed port.
"""

from __future__ import annotations

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

import testbed
from buildtools.registry_errors import AuthError, TransientError, Unreachable
from buildtools.retry import RetryPolicy, raise_if_transient
from tests.fixtures.flaky_proxy import FlakyProxy
from tests.fixtures.registry_client import client_for


@given(
    retry=st.integers(0, 40),
    base=st.floats(0.001, 10),
    cap=st.floats(0.001, 120),
    draw=st.floats(0, 1),
    retry_after=st.none() | st.floats(0, 1000),
)
def test_backoff_grows_is_jittered_and_bounded(
    retry: int, base: float, cap: float, draw: float, retry_after: float | None
) -> None:
    policy = RetryPolicy(5, base, cap, random=lambda: draw)
    wait = policy.delay(retry, retry_after)
    ceiling = min(cap, base * 2**retry)
    assert wait <= max(ceiling, min(retry_after or 0, cap)) + 1e-9
    assert wait >= ceiling / 2 - 1e-9
    assert wait <= cap + 1e-9


def test_backoff_doubles_until_the_cap() -> None:
    policy = RetryPolicy(10, 1.0, 30.0, random=lambda: 1.0)
    assert [policy.delay(n) for n in range(7)] == [1, 2, 4, 8, 16, 30, 30]


def answer(status: int, retry_after: str | None = None) -> requests.Response:
    """An HTTP answer as requests hands it over (built here: no server needed to classify)."""
    resp = requests.Response()
    resp.status_code = status
    if retry_after is not None:
        resp.headers["Retry-After"] = retry_after
    return resp


@pytest.mark.parametrize(("status", "retry_after"), [(429, 12.0), (500, None), (503, None)])
def test_rate_limits_and_server_errors_are_transient(
    status: int, retry_after: float | None
) -> None:
    with pytest.raises(TransientError) as failure:
        raise_if_transient(answer(status, "12" if retry_after else "soon"), "token request: ")
    assert failure.value.reason == f"token request: HTTP {status}"
    assert failure.value.retry_after == retry_after


@pytest.mark.parametrize("status", [200, 201, 401, 403, 404])
def test_answers_and_refusals_are_not_retried(status: int) -> None:
    raise_if_transient(answer(status))  # returns: the caller decides what the answer means


def test_a_refused_login_stops_the_retries_at_once() -> None:
    sleeps: list[float] = []
    calls: list[int] = []

    def refuse() -> None:
        calls.append(1)
        raise AuthError("rejected the login", "check the password")

    with pytest.raises(AuthError):
        RetryPolicy(5, 0.01, 0.05, sleep=sleeps.append).run(refuse, "login")
    assert (len(calls), sleeps) == (1, [])


def test_one_attempt_without_retries_says_it_failed_once() -> None:
    def fail() -> None:
        raise TransientError("HTTP 503")

    with pytest.raises(Unreachable, match="lookup failed once, last: HTTP 503"):
        RetryPolicy(0, 0.01, 0.05, sleep=lambda _: None).run(fail, "lookup")


@pytest.mark.registry
def test_transient_errors_are_retried_with_backoff(fast_registry: testbed.LocalRegistry) -> None:
    reg = fast_registry
    proxy = FlakyProxy(reg.host, failures=2, status=503).start()
    sleeps: list[float] = []
    try:
        client = client_for(proxy.host, reg.username, reg.password, retries=3, sleeps=sleeps)
        assert client.tags("lbt/none") == []
    finally:
        proxy.stop()
    assert len(proxy.failed) == 2 and len(sleeps) == 2
    assert 0.005 <= sleeps[0] <= 0.01 and 0.01 <= sleeps[1] <= 0.02  # base 0.01, doubling


@pytest.mark.registry
def test_rate_limits_wait_as_long_as_the_registry_asks_within_the_bound(
    fast_registry: testbed.LocalRegistry,
) -> None:
    reg = fast_registry
    proxy = FlakyProxy(reg.host, failures=1, status=429, retry_after="7").start()
    sleeps: list[float] = []
    try:
        client = client_for(proxy.host, reg.username, reg.password, sleeps=sleeps, max_delay=5)
        assert client.tags("lbt/none") == []
    finally:
        proxy.stop()
    assert sleeps == [5]  # Retry-After: 7, capped by max_delay


@pytest.mark.registry
def test_a_registry_that_keeps_failing_is_unreachable_after_the_retries(
    fast_registry: testbed.LocalRegistry,
) -> None:
    proxy = FlakyProxy(fast_registry.host, failures=100, status=502).start()
    sleeps: list[float] = []
    try:
        with pytest.raises(Unreachable) as failure:
            client_for(proxy.host, retries=2, sleeps=sleeps).check_access(["lara/app"])
    finally:
        proxy.stop()
    assert "failed 3 times, last: HTTP 502" in str(failure.value)
    assert len(proxy.failed) == 3 and len(sleeps) == 2


def test_closed_port_is_unreachable_after_the_retries(closed_port: int) -> None:
    closed = f"127.0.0.1:{closed_port}"
    sleeps: list[float] = []
    with pytest.raises(Unreachable) as failure:
        client_for(closed, "u", "p", retries=2, sleeps=sleeps).check_access(["lara/app"])
    assert f"registry {closed} is unreachable" in str(failure.value)
    assert "connection refused" in str(failure.value)
    assert len(sleeps) == 2
