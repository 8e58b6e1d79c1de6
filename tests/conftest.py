pytest_plugins = [
    "tests.fixtures.git",
    "tests.fixtures.services",
    "tests.fixtures.registry",
    "tests.fixtures.token_registry",
    "tests.fixtures.sidecar",
    "tests.fixtures.flaky_proxy",
]
