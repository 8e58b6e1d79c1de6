"""Config keys read from invoke.yaml and INVOKE_* that are no setting: one line and a non-zero
exit (tests/fixtures/bad_input.py), a warning for an unknown key, and for any string in any
key either a setting or one line, never a traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buildtools.config import schema
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
