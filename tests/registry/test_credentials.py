"""Credentials from the environment: which variables, which registry, and never shown."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from buildtools.errors import BuildToolsError
from buildtools.registry.credentials import (
    Credentials,
    env_key,
    for_registry,
    redact,
    variable_names,
)


@pytest.mark.parametrize(
    ("registry", "user_var", "pass_var"),
    [
        ("ghcr.io", "DOCKER_USERNAME_GHCR_IO", "DOCKER_PASSWORD_GHCR_IO"),
        ("docker.io", "DOCKER_USERNAME_DOCKER_IO", "DOCKER_PASSWORD_DOCKER_IO"),
        ("127.0.0.1:5000", "DOCKER_USERNAME_127_0_0_1_5000", "DOCKER_PASSWORD_127_0_0_1_5000"),
        (
            "my-registry.example.org:443",
            "DOCKER_USERNAME_MY_REGISTRY_EXAMPLE_ORG_443",
            "DOCKER_PASSWORD_MY_REGISTRY_EXAMPLE_ORG_443",
        ),
    ],
)
def test_variable_names_per_registry(registry: str, user_var: str, pass_var: str) -> None:
    assert variable_names(registry) == (user_var, pass_var)


@given(st.text(min_size=1, max_size=60))
def test_env_keys_are_valid_variable_name_parts(registry: str) -> None:
    key = env_key(registry)
    assert all(ch.isascii() and (ch.isupper() or ch.isdigit() or ch == "_") for ch in key)
    assert not key.startswith("_") and not key.endswith("_") and "__" not in key


def test_a_registry_pair_wins_over_the_generic_pair() -> None:
    env = {
        "DOCKER_USERNAME": "hub-user",
        "DOCKER_PASSWORD": "hub-pass",
        "DOCKER_USERNAME_GHCR_IO": "gh-user",
        "DOCKER_PASSWORD_GHCR_IO": "gh-pass",
    }
    ghcr = for_registry("ghcr.io", env)
    hub = for_registry("docker.io", env)
    assert ghcr is not None and hub is not None
    assert (ghcr.username, ghcr.password) == ("gh-user", "gh-pass")
    assert ghcr.source == "DOCKER_USERNAME_GHCR_IO/DOCKER_PASSWORD_GHCR_IO"
    assert (hub.username, hub.password) == ("hub-user", "hub-pass")
    assert hub.source == "DOCKER_USERNAME/DOCKER_PASSWORD"


def test_the_generic_pair_belongs_to_release_registries_only() -> None:
    """Issue 26, case 9: a registry that is not a release registry (named only for cache
    lookups) gets its own pair or none; the generic pair is the release registries'."""
    env = {"DOCKER_USERNAME": "hub-user", "DOCKER_PASSWORD": "hub-pass"}
    assert for_registry("mirror.example", env, release=False) is None
    own = {**env, "DOCKER_USERNAME_MIRROR_EXAMPLE": "m", "DOCKER_PASSWORD_MIRROR_EXAMPLE": "mp"}
    mirror = for_registry("mirror.example", own, release=False)
    assert mirror is not None and (mirror.username, mirror.password) == ("m", "mp")


def test_no_variables_means_no_credentials_and_empty_ones_count_as_unset() -> None:
    assert for_registry("ghcr.io", {}) is None
    # Travis and other CIs export empty strings for secrets a fork's build does not get.
    assert for_registry("ghcr.io", {"DOCKER_USERNAME": "", "DOCKER_PASSWORD": " "}) is None


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({"DOCKER_USERNAME_GHCR_IO": "u"}, "DOCKER_PASSWORD_GHCR_IO"),
        ({"DOCKER_PASSWORD_GHCR_IO": "p4ss-only"}, "DOCKER_USERNAME_GHCR_IO"),
        ({"DOCKER_PASSWORD": "p4ss-only"}, "DOCKER_USERNAME"),
    ],
)
def test_half_a_pair_is_an_error_naming_the_missing_variable(
    env: dict[str, str], missing: str
) -> None:
    with pytest.raises(BuildToolsError) as failure:
        for_registry("ghcr.io", env)
    assert f"{missing} is not" in str(failure.value)
    assert "p4ss-only" not in str(failure.value)


passwords = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FFF), min_size=6, max_size=40
)


@given(password=passwords)
def test_the_password_never_shows_in_repr_str_or_format(password: str) -> None:
    login = Credentials("ci-bot", password, "DOCKER_USERNAME/DOCKER_PASSWORD")
    assume(password not in "Credentials(username='ci-bot', password='***', source=")
    assume(password not in "DOCKER_USERNAME/DOCKER_PASSWORD")
    for shown in (repr(login), str(login), f"{login}", f"{login!r}", repr([login])):
        assert password not in shown
    assert login.auth_config() == {"username": "ci-bot", "password": password}


@given(password=passwords, before=st.text(max_size=20), after=st.text(max_size=20))
def test_redact_removes_the_password_in_plain_and_url_encoded_form(
    password: str, before: str, after: str
) -> None:
    import urllib.parse

    assume("*" not in password)
    message = f"{before}{password} and {urllib.parse.quote(password, safe='')}{after}"
    cleaned = redact(message, [password])
    assert password not in cleaned
    assert urllib.parse.quote(password, safe="") not in cleaned
    assert "***" in cleaned
