"""Configuration comes from invoke's own system: invoke.yaml, overridable by env vars."""

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
from hypothesis import given, settings
from hypothesis import strategies as st

from buildtools.config import schema
from buildtools.config.schema import split_list
from buildtools.errors import BuildToolsError
from buildtools.plan import validate
from tests.fixtures.bad_input import (
    TEXT,
    App,
    app_yaml,
    changes_nothing_and_fails_in_one_line,
    fails_in_one_line,
    goes_on_with_a_warning,
    nothing,
    whole_rows,
)

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
    from buildtools.plan import validate

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


# --- bad input (tests/fixtures/bad_input.py): config keys read from invoke.yaml and INVOKE_* ---

# A config value that is no setting: (case, task args, environment, invoke.yaml extra lines, the
# error line must contain)
ONE_LINE_FAILURES = [
    (
        "a boolean that is neither",
        ["version"],
        {"INVOKE_BUILDTOOLS_GIT_UNTRACKED_IS_DIRTY": "maybe"},
        "",
        "buildtools.git.untracked_is_dirty = 'maybe' is not true or false",
    ),
    (
        "retries that are not a number",
        ["version"],
        {"INVOKE_BUILDTOOLS_RELEASE_RETRIES": "lots"},
        "",
        "buildtools.release.retries = 'lots' is not a whole number",
    ),
    (
        "retries that are not a number, over a number in invoke.yaml",
        ["version"],
        {"INVOKE_BUILDTOOLS_RELEASE_RETRIES": "lots"},
        "  release:\n    retries: 3\n",
        "buildtools.release.retries = 'lots' is not a whole number",
    ),
    (
        "negative retries",
        ["version"],
        {},
        "  release:\n    retries: -1\n",
        "buildtools.release.retries = '-1' is not a whole number of at least 0",
    ),
    (
        "a number where a name belongs, in invoke.yaml",
        ["version"],
        {},
        "  title: 2024\n",
        "config key buildtools.title is 2024, a number, not text (fix: quote it: title: '2024')",
    ),
    (
        "a section that is not one",
        ["version"],
        {},
        "  git: 5\n",
        "buildtools.git is 5, not a section of keys",
    ),
    (
        "an empty sha prefix",
        ["version"],
        {"INVOKE_BUILDTOOLS_TAGS_SHA_PREFIX": ""},
        "",
        "config key buildtools.tags.sha_prefix is empty",
    ),
]


@pytest.mark.parametrize("row", whole_rows(ONE_LINE_FAILURES))
def test_bad_input_is_one_line_and_a_non_zero_exit(app: App, row: tuple) -> None:
    fails_in_one_line(app, *row)


# A smoke service key. Each row changes nothing (tests/fixtures/bad_input.py):
# (case, set-up (returns extra env; CWD runs the task elsewhere, {OLD} is put into the args),
#  task args, environment, invoke.yaml extra lines, the error line holds, it must not hold)
INTEGRITY_FAILURES = [
    (
        "17: a service key in error is named by its own path",
        nothing,
        ["version"],
        {},
        "  smoke:\n    services:\n      db:\n        image: [a, b]\n",
        "config key buildtools.smoke.services.db.image = ['a', 'b'] is not a single value",
        None,
    ),
]


@pytest.mark.parametrize("row", whole_rows(INTEGRITY_FAILURES))
def test_integrity_failures_are_one_line_and_change_nothing(app: App, row: tuple) -> None:
    changes_nothing_and_fails_in_one_line(app, *row)


# A config key that does not exist: (case, task args, environment, invoke.yaml extra lines, the
# warning holds)
DOUBTFUL = [
    (
        "unknown key",
        ["version"],
        {},
        "    upstreem: x:1\n  typo: 1\n",  # the first line goes on app_yaml's nginx section
        "did you mean buildtools.nginx.upstream?",
    ),
]


@pytest.mark.parametrize("row", whole_rows(DOUBTFUL))
def test_doubtful_input_goes_on_with_a_warning(app: App, row: tuple) -> None:
    goes_on_with_a_warning(app, *row)


def test_a_mistyped_service_key_is_a_warning_naming_the_service_key(app: App) -> None:
    """17: `redy:` under a smoke service kept no readiness check, without a word."""
    extra = "  smoke:\n    services:\n      db:\n        image: mariadb:11.2\n        redy: x\n"
    done = app.invoke("version", yaml=app_yaml(app.name, extra))
    assert done.returncode == 0, done.stderr
    assert (
        "warning: unknown config key buildtools.smoke.services.db.redy is ignored "
        "(did you mean buildtools.smoke.services.db.ready?)"
    ) in done.stderr


# --- any string anywhere: one line, never a traceback ---


@settings(max_examples=200, deadline=None)
@given(key=st.sampled_from(schema.KNOWN_KEYS), value=TEXT)
def test_any_string_in_any_config_key_is_a_setting_or_one_line(key: str, value: str) -> None:
    section = schema.merged({})
    node = section
    *parents, leaf = key.split(".")
    for part in parents:
        node = node[part]
    node[leaf] = value  # as an INVOKE_BUILDTOOLS_* variable gives it: a string
    try:
        validate.check(schema.load(section, ROOT))
    except BuildToolsError as exc:
        assert "\n" not in str(exc) and exc.problem


@pytest.mark.parametrize(
    ("section", "key", "what"),
    [
        ({"app": {"build_args": "A=1\nB=2"}}, "app.build_args", "a line break"),
        ({"nginx": {"build_args": "A=x\0y"}}, "nginx.build_args", "a NUL byte"),
        ({"smoke": {"env": "DB_HOST=db\rX=1"}}, "smoke.env", "a carriage return"),
        ({"smoke": {"path": "/notes\x1b[2J"}}, "smoke.path", "the control character '\\x1b'"),
        (
            {"smoke": {"services": {"db": {"image": "m", "env": "MARIADB_PASSWORD=a\nb"}}}},
            "smoke.services.db.env",
            "a line break",
        ),
    ],
)
def test_a_line_break_or_nul_in_a_value_is_refused_naming_the_key(section, key, what):
    """Each would reach a Dockerfile's ARG, a container's environment or nginx.conf as more
    than the one value it looks like. The value is not repeated: it may hold a password."""
    with pytest.raises(BuildToolsError) as refused:
        schema.load(schema.merged(section), ROOT)
    message = str(refused.value)
    assert message.startswith(f"config key buildtools.{key} holds {what} (character ")
    assert "\n" not in message and "\0" not in message and "\r" not in message
    assert "=a" not in message and "x\0y" not in message
