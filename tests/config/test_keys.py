"""The config schema itself: every key declared once, complete, and what is derived from it."""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path

import pytest
from invoke.exceptions import Exit

from buildtools.config import invokefiles, readme, schema
from buildtools.config.keys import KEY, KEYS
from buildtools.config.kinds import Choice, Count, Flag, Number, Section
from buildtools.errors import BuildToolsError
from buildtools.plan import validate

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("key", KEYS, ids=[key.name for key in KEYS])
def test_every_key_has_a_kind_a_default_a_help_and_accepts_its_default(key) -> None:
    assert key.kind is not None and key.default is not None
    assert key.help.strip() and "\n" not in key.help and "|" not in key.help
    # Its kind and its check accept its default, as invoke hands it over (text).
    key.read(schema.as_text(key.default), ROOT)
    assert key.env == "INVOKE_BUILDTOOLS_" + key.name.replace(".", "_").upper()


def test_no_key_is_declared_twice() -> None:
    names = [key.name for key in KEYS]
    assert len(names) == len(set(names))
    fields = [key.attribute for key in KEYS]
    assert len(fields) == len(set(fields))


def settings_fields(cls: type, prefix: str = "") -> set[str]:
    """Every leaf field of the settings dataclasses, dotted (``nginx.image.repository``)."""
    found = set()
    hints = typing.get_type_hints(cls)
    for item in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[item.name]):
            found |= settings_fields(hints[item.name], f"{prefix}{item.name}.")
        else:
            found.add(prefix + item.name)
    return found


def test_every_settings_field_is_one_keys_value() -> None:
    """Settings holds exactly the keys' values, besides what loading adds (root, warnings)."""
    assert settings_fields(schema.Settings) - {"root", "warnings"} == {k.attribute for k in KEYS}


def test_the_readme_table_is_the_generated_one() -> None:
    text = (ROOT / "README.md").read_text()
    assert readme.BEGIN in text and readme.END in text
    assert readme.rewrite(text) == text, "run: python -m buildtools.config.readme"
    for key in KEYS:
        assert f"| `{key.name}` | " in text


def test_a_stale_readme_table_is_found_and_rewritten(tmp_path: Path, capsys) -> None:
    stale = (ROOT / "README.md").read_text().replace("| `release.retries` | `5` |", "| x | 9 |")
    path = tmp_path / "README.md"
    path.write_text(stale)
    assert readme.main(["--check", str(path)]) == 1
    assert "configuration table is stale" in capsys.readouterr().err
    assert path.read_text() == stale  # --check changes nothing
    assert readme.main([str(path)]) == 0
    assert path.read_text() == (ROOT / "README.md").read_text()
    assert readme.main(["--check", str(path)]) == 0


def test_the_defaults_invoke_registers_are_the_keys_defaults() -> None:
    flat = dict(
        (".".join(path), value) for path, value in schema.leaves(schema.defaults())
    )  # smoke.services is an empty section: no leaf
    expected = {k.name: schema.as_text(k.default) for k in KEYS if not isinstance(k.kind, Section)}
    assert flat == expected


def test_the_policy_checks_are_those_the_keys_name() -> None:
    named = {key.policy for key in KEYS if key.policy}
    assert named == set(validate.POLICY_CHECKS)
    for cross in validate.CROSS_KEY_CHECKS:
        assert len(cross.keys) > 1 and set(cross.keys) <= set(KEY), cross.keys
        assert cross.when in ("load", "release")


def wrong_value(key) -> str | None:
    """A value of the wrong shape for ``key``'s kind, or None when any text is one."""
    if isinstance(key.kind, Flag):
        return "maybe"
    if isinstance(key.kind, Count | Number):
        return "lots"
    if isinstance(key.kind, Choice):
        return "sometimes"
    return None


TYPED = [key for key in KEYS if wrong_value(key) is not None]


@pytest.mark.parametrize("key", TYPED, ids=[key.name for key in TYPED])
def test_a_value_of_the_wrong_kind_is_one_line_naming_the_key(key) -> None:
    section = schema.merged({})
    *parents, leaf = key.name.split(".")
    node = section
    for part in parents:
        node = node[part]
    node[leaf] = wrong_value(key)
    with pytest.raises(BuildToolsError) as refused:
        schema.load(section, ROOT)
    line = str(refused.value)
    assert f"config key buildtools.{key.name} = '{wrong_value(key)}' is not" in line
    assert "\n" not in line and key.env in refused.value.fix


@pytest.mark.parametrize(
    ("given", "words", "fix"),
    [
        (
            {"title": 2024},
            "buildtools.title is 2024, a number, not text",
            "quote it: title: '2024'",
        ),
        ({"app": {"repository": 5}}, "buildtools.app.repository is 5, a number", "quote it"),
        ({"smoke": {"expect": True}}, "buildtools.smoke.expect is True, a boolean", "quote it"),
        (
            {"release": {"retries": 2.5}},
            "buildtools.release.retries is 2.5, a number, not a whole number",
            "set it to a whole number of at least 0",
        ),
        (
            {"tags": {"pull_requests": 1.5}},
            "buildtools.tags.pull_requests is 1.5",
            "set it to true or false",
        ),
        ({"release": {"registries": 5000}}, "buildtools.release.registries is 5000", "quote it"),
    ],
)
def test_a_config_file_value_of_the_wrong_type_is_one_line_naming_the_key(
    tmp_path: Path, given: dict, words: str, fix: str
) -> None:
    (tmp_path / "invoke.json").write_text(json.dumps({"buildtools": given}))
    with pytest.raises(Exit) as stopped:
        invokefiles.check_project(tmp_path, environ={})
    line = str(stopped.value.message)
    assert f"invoke.json: config key {words}" in line and f"(fix: {fix}" in line
    assert "\n" not in line


@pytest.mark.parametrize(
    "given",
    [
        {"nginx": {"short_max_age": 60, "gzip_pages": True, "asset_fallback": 404}},
        {"release": {"retries": 3, "retry_base_delay": 1, "promote": False}},
        {"git": {"untracked_is_dirty": 1}, "smoke": {"timeout": 30, "expect": "1.2.3"}},
        {"app": {"base_image": None}},
    ],
)
def test_typed_values_a_key_takes_are_accepted(tmp_path: Path, given: dict) -> None:
    schema.check_file({"buildtools": given}, "invoke.yaml")
    settings = schema.load(schema.merged(schema.as_text(given)), ROOT)
    assert validate.check(settings) is settings


def test_an_unknown_key_and_variable_are_one_line_naming_the_nearest_key() -> None:
    warnings = schema.unknown_keys({"release": {"retrys": "3"}})
    assert warnings == [
        "unknown config key buildtools.release.retrys is ignored "
        "(did you mean buildtools.release.retries?)"
    ]
    env = {"INVOKE_BUILDTOOLS_RELEASE_RETRYS": "3", "INVOKE_BUILDTOOLS_RELEASE_RETRIES": "3"}
    assert schema.env_warnings(env) == (
        "environment variable INVOKE_BUILDTOOLS_RELEASE_RETRYS sets no config key and is "
        "ignored (did you mean INVOKE_BUILDTOOLS_RELEASE_RETRIES?)",
    )


@pytest.mark.parametrize(
    ("value", "what"),
    [
        ("LARA\x9b31mX", "the control character '\\x9b'"),  # C1: a terminal's 8-bit CSI
        ("LARA\x85X", "a line break (NEL)"),
        ("LARA\u2028X", "a line break (U+2028)"),
        ("LARA\u202eX", "the control character '\\u202e'"),  # right-to-left override
    ],
)
def test_a_c1_control_unicode_line_break_or_bidi_override_is_refused(value: str, what: str):
    """Hostile pass: only C0 controls were refused; these reached the image's title label."""
    with pytest.raises(BuildToolsError) as refused:
        schema.load(schema.merged({"title": value}), ROOT)
    assert str(refused.value).startswith(f"config key buildtools.title holds {what} (character 5")


def test_a_key_or_variable_name_with_a_control_character_is_shown_escaped():
    """Hostile pass: a warning printed the name raw (ESC drove the terminal)."""
    (warning,) = schema.env_warnings({"INVOKE_BUILDTOOLS_TI\x1b]0;x\x07TLE": "1"})
    assert "INVOKE_BUILDTOOLS_TI\\x1b]0;x\\x07TLE" in warning and "\x1b" not in warning
    (unknown,) = schema.unknown_keys({"ti\x1btle": "x"})
    assert "buildtools.ti\\x1btle" in unknown and "\x1b" not in unknown
