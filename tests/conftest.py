pytest_plugins = ["tests.fixtures.git", "tests.fixtures.services"]
