"""Registry entries from the config as names, API URLs and the repository names the engine
and the API use."""

from __future__ import annotations

import pytest

from buildtools.config.registry_address import parse_registry
from buildtools.errors import BuildToolsError
from tests.fixtures.bad_input import App, fails_in_one_line, whole_rows


@pytest.mark.parametrize(
    ("entry", "name", "url"),
    [
        ("", "docker.io", "https://registry-1.docker.io"),
        ("docker.io", "docker.io", "https://registry-1.docker.io"),
        ("index.docker.io", "docker.io", "https://registry-1.docker.io"),
        ("ghcr.io", "ghcr.io", "https://ghcr.io"),
        (
            "Registry.Example.org:5000",
            "registry.example.org:5000",
            "https://registry.example.org:5000",
        ),
        ("127.0.0.1:5000", "127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("localhost:5000", "localhost:5000", "http://localhost:5000"),
        ("http://build-cache:5000/", "build-cache:5000", "http://build-cache:5000"),
        ("https://127.0.0.1:5443", "127.0.0.1:5443", "https://127.0.0.1:5443"),
    ],
)
def test_registry_entries(entry: str, name: str, url: str) -> None:
    registry = parse_registry(entry)
    assert (registry.name, registry.url) == (name, url)


def test_docker_hub_names() -> None:
    hub = parse_registry("")
    assert hub.push_name("lara/app") == "lara/app"
    assert hub.api_name("lara/app") == "lara/app"
    assert hub.api_name("nginx") == "library/nginx"
    other = parse_registry("ghcr.io")
    assert other.push_name("lara/app") == "ghcr.io/lara/app"
    assert other.api_name("nginx") == "nginx"


@pytest.mark.parametrize("entry", ["ghcr.io/concord", "user:pw@ghcr.io", "a b"])
def test_registry_entries_that_are_not_hosts_are_refused(entry: str) -> None:
    with pytest.raises(BuildToolsError, match="is not a host"):
        parse_registry(entry)


# --- bad input (tests/fixtures/bad_input.py) ---

# A registry address that is no host: (case, task args, environment, invoke.yaml extra lines, the
# error line must contain)
ONE_LINE_FAILURES = [
    (
        "a cache registry that is no host",
        ["build", "--dry-run"],
        {"INVOKE_BUILDTOOLS_CACHE_REGISTRIES": "ghcr.io/org"},
        "",
        "config key buildtools.cache.registries: registry 'ghcr.io/org' is not a host[:port]",
    ),
]


@pytest.mark.parametrize("row", whole_rows(ONE_LINE_FAILURES))
def test_bad_input_is_one_line_and_a_non_zero_exit(app: App, row: tuple) -> None:
    fails_in_one_line(app, *row)
