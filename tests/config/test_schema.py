"""Configuration comes from invoke's own system: invoke.yaml, overridable by env vars.

Values that are no setting are in test_schema_bad_input.py.
"""

from __future__ import annotations

import configparser
import dataclasses
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from buildtools.config import schema
from buildtools.config.schema import split_list
from buildtools.errors import BuildToolsError
from buildtools.plan import validate

ROOT = Path(__file__).resolve().parents[2]


def leaf_keys(section: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in section.items():
        path = f"{prefix}{key}"
        nested = isinstance(value, dict) and value  # an empty section (services) is one key
        keys.extend(leaf_keys(value, f"{path}.") if nested else [path])
    return keys


def test_every_config_key_is_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    missing = [key for key in leaf_keys(schema.DEFAULTS) if f"`{key}`" not in readme]
    assert missing == []


def test_every_config_key_is_read():
    section = yaml.safe_load((ROOT / "invoke.yaml").read_text())["buildtools"]
    settings = schema.load(schema.merged(section), ROOT)
    assert settings.app.context == ROOT / "example"
    assert settings.nginx.asset_prefixes[0] == "assets"
    assert settings.release.branches == ("master", "main")
    assert settings.extra_tags == {"master": ("edge",)}
    assert settings.app.build_args == {"BUNDLE_INSTALL_ARGS": "--local"}


def test_env_vars_override_any_key_through_invoke(tmp_path):
    """INVOKE_BUILDTOOLS_* reaches Settings, lists included (they are comma strings)."""
    probe = (
        "from invoke import Config; from pathlib import Path; import json;"
        "from buildtools import tasks; from buildtools.config import schema;"
        "c = Config(project_location='.'); c.load_project();"
        "c.load_collection(tasks.ns.configuration()); c.load_shell_env();"
        "s = schema.load(c.buildtools, Path('.'));"
        "print(json.dumps([s.app.repository, list(s.release.branches), s.release.retries,"
        " s.nginx.upstream]))"
    )
    env = {
        "INVOKE_BUILDTOOLS_APP_REPOSITORY": "myorg/lara",
        "INVOKE_BUILDTOOLS_RELEASE_BRANCHES": "production, staging",
        "INVOKE_BUILDTOOLS_RELEASE_RETRIES": "2",
        "INVOKE_BUILDTOOLS_NGINX_UPSTREAM": "lara-app:8080",
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["myorg/lara", ["production", "staging"], 2, "lara-app:8080"]


def test_bad_pairs_name_the_key_and_the_fix():
    with pytest.raises(BuildToolsError, match=r"buildtools.tags.extra.*master=edge"):
        schema.split_pairs("master")


def test_a_missing_key_is_a_clear_error():
    section = schema.merged(yaml.safe_load((ROOT / "invoke.yaml").read_text())["buildtools"])
    del section["release"]
    with pytest.raises(BuildToolsError, match=r"config key buildtools\.release is missing"):
        schema.load(section, ROOT)


def test_invoke_list_shows_every_task_with_help():
    done = subprocess.run(
        [sys.executable, "-m", "invoke", "--list"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    listed = {}
    for line in done.stdout.splitlines()[2:]:
        parts = line.split(None, 1)
        if len(parts) == 2 and not line.startswith("    "):
            listed[parts[0]] = parts[1]
    for name in ("version", "build", "up", "down", "release", "ci", "bench", "bases"):
        assert listed.get(name), f"{name} is not listed with help: {done.stdout}"
    assert "nginx.config" in listed
    for name in ("build", "release", "ci", "version"):
        helped = subprocess.run(
            [sys.executable, "-m", "invoke", "--help", name],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        options = [line for line in helped.stdout.splitlines() if line.strip().startswith("-")]
        # "  -b STRING, --branch=STRING   the branch being built ...": flag, then its help.
        described = [re.split(r"\s{2,}", line.strip()) for line in options]
        assert options and all(len(parts) == 2 for parts in described), helped.stdout


def readme_defaults() -> dict[str, str]:
    """``key -> default`` from the README's configuration table."""
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells[1]
    return rows


def test_the_readme_table_shows_exactly_the_defaults():
    def shown(value) -> str:
        if value in ("", {}):
            return "empty"
        return f"`{str(value).lower() if isinstance(value, bool) else value}`"

    expected = {}
    for key in leaf_keys(schema.DEFAULTS):
        value = schema.DEFAULTS
        for part in key.split("."):
            value = value[part]
        expected[key] = shown(value)
    assert readme_defaults() == expected


def test_env_booleans_and_numbers_are_parsed_strictly(tmp_path):
    """`false` from the environment is false; a word where a number belongs is one line."""
    probe = (
        "from invoke import Config; from pathlib import Path;"
        "from buildtools import tasks; from buildtools.config import schema;"
        "c = Config(project_location='.'); c.load_project();"
        "c.load_collection(tasks.ns.configuration()); c.load_shell_env();"
        "s = schema.load(c.buildtools, Path('.'));"
        "print(s.untracked_is_dirty, s.pull_request_tags, s.release.allow_pull_requests)"
    )
    base = {"PATH": "/usr/bin:/bin"}
    falses = {
        "INVOKE_BUILDTOOLS_GIT_UNTRACKED_IS_DIRTY": "false",
        "INVOKE_BUILDTOOLS_TAGS_PULL_REQUESTS": "No",
        "INVOKE_BUILDTOOLS_RELEASE_ALLOW_PULL_REQUESTS": "0",
    }
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env={**base, **falses}, capture_output=True,
        text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False", "False"]
    trues = {key: value for key, value in zip(falses, ("TRUE", "yes", "1"), strict=True)}
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env={**base, **trues}, capture_output=True,
        text=True,
    )  # fmt: skip
    assert done.stdout.split() == ["True", "True", "True"]
    bad = {"INVOKE_BUILDTOOLS_RELEASE_RETRIES": "lots"}
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env={**base, **bad}, capture_output=True,
        text=True,
    )  # fmt: skip
    assert "buildtools.release.retries = 'lots' is not a whole number" in done.stderr


# (case, tags.sha_prefix, the error contains (None: accepted))
SHA_PREFIXES = [
    ("the default", "sha-", None),
    ("LARA's", "git-", None),
    ("no dash", "commit", None),
    ("empty", "", "buildtools.tags.sha_prefix is empty"),
    ("a space", "my sha-", "is not the start of a Docker tag"),
    ("a leading dash", "-sha", "is not the start of a Docker tag"),
    ("a leading dot", ".sha", "is not the start of a Docker tag"),
    ("a slash", "sha/", "is not the start of a Docker tag"),
    ("too long", "s" * 122, "at most 121 characters"),
    ("v makes versions", "v", "keeps commit tags from looking like releases"),
    ("1. makes versions", "1.", "keeps commit tags from looking like releases"),
]


@pytest.mark.parametrize(
    ("prefix", "error"), [case[1:] for case in SHA_PREFIXES], ids=[c[0] for c in SHA_PREFIXES]
)
def test_sha_prefix_is_read_and_checked(prefix: str, error: str | None) -> None:

    settings = schema.load(schema.merged({"tags": {"sha_prefix": prefix}}), ROOT)
    assert settings.sha_prefix == prefix
    if error is None:
        assert validate.check(settings) is settings
        return
    with pytest.raises(BuildToolsError) as raised:
        validate.check(settings)
    assert error in str(raised.value) and "(fix: " in str(raised.value)


def test_sha_prefix_defaults_to_sha_and_env_sets_it():
    assert schema.load(schema.merged({}), ROOT).sha_prefix == "sha-"
    probe = (
        "from invoke import Config; from pathlib import Path;"
        "from buildtools import tasks; from buildtools.config import schema;"
        "c = Config(project_location='.'); c.load_project();"
        "c.load_collection(tasks.ns.configuration()); c.load_shell_env();"
        "print(schema.load(c.buildtools, Path('.')).sha_prefix)"
    )
    env = {"INVOKE_BUILDTOOLS_TAGS_SHA_PREFIX": "git-", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "git-"


def test_the_sidecar_files_come_from_the_package_unless_set(tmp_path):
    """Empty nginx.dockerfile/context: the packaged files (an app repository has no nginx/);
    a set value is the app's own copy, relative to its root."""
    settings = schema.load(schema.merged({}), tmp_path)
    assert settings.nginx.image.dockerfile == schema.SIDECAR_DIR / "Dockerfile"
    assert settings.nginx.image.context == schema.SIDECAR_DIR
    for name in ("Dockerfile", "docker-entrypoint.sh", "healthcheck.sh"):
        assert (schema.SIDECAR_DIR / name).is_file(), name
    own = schema.merged({"nginx": {"dockerfile": "ops/nginx/Dockerfile", "context": "ops/nginx"}})
    settings = schema.load(own, tmp_path)
    assert settings.nginx.image.dockerfile == tmp_path / "ops" / "nginx" / "Dockerfile"
    assert settings.nginx.image.context == tmp_path / "ops" / "nginx"
    # An empty app.dockerfile is not the sidecar's: only nginx has packaged files.
    assert schema.load(schema.merged({}), tmp_path).app.dockerfile == tmp_path / "Dockerfile"


def test_the_package_data_ships_every_sidecar_file():
    """setup.cfg's package_data globs cover everything in buildtools/sidecar/, so a wheel
    installed in an app repository (not an editable checkout) still has them."""
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    patterns = split_list(parser["options.package_data"]["buildtools"])
    package = ROOT / "buildtools"
    shipped = {path for pattern in patterns for path in package.glob(pattern) if path.is_file()}
    files = {p for p in schema.SIDECAR_DIR.iterdir() if p.is_file() and p.suffix != ".py"}
    assert files and files <= shipped


def test_no_dataclass_default_competes_with_DEFAULTS():
    """Every field default of the config dataclasses is what DEFAULTS gives after loading."""

    loaded = schema.load(schema.merged({}), ROOT)
    views = {
        schema.Settings: loaded,
        schema.NginxConfig: loaded.nginx,
        schema.ReleaseConfig: loaded.release,
        schema.SmokeConfig: loaded.smoke,
    }
    checked = []
    for cls, view in views.items():
        for item in dataclasses.fields(cls):
            if item.default is not dataclasses.MISSING:
                default = item.default
            elif item.default_factory is not dataclasses.MISSING:
                default = item.default_factory()
            else:
                continue
            if item.name != "warnings":  # not a key: what loading found to say
                checked.append((cls.__name__, item.name, default, getattr(view, item.name)))
    assert checked and [c for c in checked if c[2] != c[3]] == []
    assert schema.SmokeConfig() == loaded.smoke


def test_the_defaults_reach_invoke_as_text():
    """invoke converts an environment variable to the type of the value it replaces; text
    stays text, so `false` and `lots` reach schema.load as written."""

    def leaves(node: dict) -> Iterator[object]:
        for value in node.values():
            yield from leaves(value) if isinstance(value, dict) else [value]

    assert all(isinstance(value, str) for value in leaves(schema.defaults()))
    assert schema.defaults()["git"]["untracked_is_dirty"] == "false"
    assert schema.load(schema.merged({}), ROOT) == schema.load(schema.merged(schema.DEFAULTS), ROOT)
