"""Shared fixtures, and the test tiers.

A test's tier follows from the fixtures it uses, directly or through other fixtures: one that
needs an engine fixture is marked ``docker``, one that needs a registry fixture ``registry``.
Nobody writes those markers by hand, so they cannot drift: ``pytest -m "not docker"`` is exactly
the tests that run without a Docker Engine. A test that reaches the engine some other way must
use ``docker_client`` (or carry ``@pytest.mark.docker`` on the test itself); a guard fails any
test outside the ``docker`` tier that connects to the engine (see tests/fixtures/engine_guard.py),
which also catches a fixture asked for at run time (``request.getfixturevalue``), unseen here.
``pytestmark`` tier markers on a module or class are dropped: they cannot know what each test uses.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures import held_images
from tests.fixtures.engine_guard import FIX, EngineGuard

# Bytecode caches (gitignored): with PYTHONDONTWRITEBYTECODE, set on these machines and many CI
# images, pytest rewrites every test module and each of the ~100 `invoke` children the tests
# start compiles what changed since install, anew on every run: a third of the fast tier's time.
sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

pytest_plugins = [
    "tests.fixtures.git",
    "tests.fixtures.git_prompts",
    "tests.fixtures.services",
    "tests.fixtures.registry",
    "tests.fixtures.token_registry",
    "tests.fixtures.sidecar",
    "tests.fixtures.flaky_proxy",
    "tests.fixtures.ports",
    "tests.fixtures.bad_input",
    "tests.fixtures.publish",
    "tests.fixtures.promotion",
    "tests.fixtures.deployment",
    "tests.fixtures.hostile_registry",
    "tests.fixtures.signing",
    "tests.fixtures.cosign_cli",
]

# Every fixture that talks to the engine builds on one of these (base_image, app_image,
# sidecar_image, make_image, mariadb_image ... all take docker_client).
ENGINE_FIXTURES = frozenset({"docker_client", "fresh_engine"})
# Real docker-registry processes (no engine: Debian's binary on a local port).
REGISTRY_FIXTURES = frozenset(
    {"registry", "fast_registry", "second", "remote_registry", "no_delete_registry"}
)
TIERS = ("docker", "registry")

_guard: EngineGuard | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _guard
    directory = Path(tempfile.mkdtemp(prefix="lbt-engine-guard-"))
    _guard = EngineGuard(directory, os.environ.get("DOCKER_HOST"))
    if not hasattr(config, "workerinput"):  # the run's first process; xdist workers inherit it
        held = f"{held_images.HELD_PREFIX}-{secrets.token_hex(4)}.txt"
        os.environ[held_images.HELD_FILE] = str(Path(tempfile.gettempdir()) / held)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The run's first process, once every worker is done: delete the images tests held."""
    if hasattr(session.config, "workerinput"):
        return
    failed = held_images.remove_held(held_images.held_file())
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if failed and reporter is not None:
        reporter.write_line(f"held images not deleted: {'; '.join(failed)}", yellow=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _guard is not None:
        _guard.close()
        shutil.rmtree(Path(_guard.socket_path).parent, ignore_errors=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test by the fixtures it needs; tier markers above the test are dropped."""
    for item in items:
        for node in item.listchain()[:-1]:  # module, class: they cannot know what each test uses
            hand_made = [m for m in node.own_markers if m.name in TIERS]
            if hand_made:
                node.own_markers[:] = [m for m in node.own_markers if m.name not in TIERS]
        used = set(getattr(item, "fixturenames", ()))
        if used & ENGINE_FIXTURES:
            item.add_marker(pytest.mark.docker)
        if used & REGISTRY_FIXTURES:
            item.add_marker(pytest.mark.registry)


def _guarded(item: pytest.Item) -> bool:
    return _guard is not None and item.get_closest_marker("docker") is None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    with EngineGuard.restoring_environment():
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    if not _guarded(item):
        return (yield)
    return (yield from _watched(_guard))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    if not _guarded(item):
        return (yield)
    return (yield from _watched(_guard))


def _watched(guard: EngineGuard | None) -> Iterator[None]:
    """Run a test phase under the guard; its finding wins over the error it caused."""
    assert guard is not None
    try:
        with guard.watching():
            result = yield
    except BaseException as exc:
        reached = guard.reached()
        if reached and not str(exc).startswith("this test is not marked docker"):
            pytest.fail(f"this test is not marked docker but {reached[0]}: {FIX}", pytrace=False)
        raise
    if reached := guard.reached():
        pytest.fail(f"this test is not marked docker but {reached[0]}: {FIX}", pytrace=False)
    return result
