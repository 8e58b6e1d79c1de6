"""The registries a release goes to, and the preflight that checks them before any build."""

from __future__ import annotations

import pytest

from buildtools import targets
from buildtools.config import ReleaseConfig
from buildtools.errors import BuildToolsError
from buildtools.retry import RetryPolicy


def release_config(registry: str) -> ReleaseConfig:
    return ReleaseConfig(
        registries=(registry,),
        branches=("main",),
        allow_pull_requests=False,
        retries=5,
        retry_base_delay=1.0,
        retry_max_delay=30.0,
    )


def test_the_preflight_retries_briefly_and_pushes_keep_the_full_policy() -> None:
    full = RetryPolicy(retries=5, base_delay=1.0, max_delay=30.0)
    assert targets.preflight_retry(full) == RetryPolicy(retries=5, base_delay=0.25, max_delay=1.0)
    short = RetryPolicy(retries=0, base_delay=0.0, max_delay=0.0)
    assert targets.preflight_retry(short) == short  # never longer than the user asked


def test_a_registry_that_does_not_answer_fails_the_preflight_with_short_waits(
    closed_port: int,
) -> None:
    """A closed port on this machine (nothing listens: a real connection refused)."""
    closed = f"127.0.0.1:{closed_port}"
    waits: list[float] = []
    found = targets.configured(
        release_config(closed), {}, on_retry=lambda what, n, wait, why: waits.append(wait)
    )
    with pytest.raises(BuildToolsError, match="unreachable"):
        targets.check(found, ["rt/app"])
    assert len(waits) == 5 and max(waits) <= 1.0  # every retry, none of the push's long waits
    assert found[0].client.retry.max_delay == 30.0  # the pushes' policy is back


def test_the_release_versions_of_tag_lists_read_once() -> None:
    """The plan reads each registry's tags once: the release versions among them decide the
    floating tags, and a promotion's survey reuses the same lists."""
    lists = {
        ("a", "lbt/app"): ("sha-abc1234", "1.2.0", "latest", "v1.10.0"),
        ("a", "lbt/nginx"): ("1.2.0", "1.2"),
        ("b", "lbt/app"): ("2.0.0-rc.1", "edge"),
    }
    # Tags as the registry names them, ascending by version (1.10 after 1.2); no duplicates.
    assert targets.versions_in(lists) == ["1.2.0", "v1.10.0", "2.0.0-rc.1"]
