"""Every buildtools.nginx value nginx would refuse is refused first, in one line naming the key."""

from __future__ import annotations

import pytest

from buildtools.config import schema
from buildtools.errors import BuildToolsError
from tests.fixtures.bad_input import App, fails_in_one_line, whole_rows
from tests.fixtures.sidecar import nginx_settings


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"upstream": "app"}, "not host:port"),
        ({"upstream": "app:3000; evil"}, "not host:port"),
        ({"upstream": "app:99999"}, "not host:port"),
        ({"upstream": "http://app:3000"}, "not host:port"),
        ({"upstream": "app:\u0663\u0660\u0660\u0660"}, "not host:port"),  # Arabic-Indic 3000
        ({"upstream": "app:3000\ninclude /etc/shadow;"}, "not host:port"),
        ({"upstream": "app:3000\n"}, "not host:port"),
        ({"cache_size": "\u0661g"}, "cache_size"),
        ({"proxy_read_timeout": "\u0663m"}, "proxy_read_timeout"),
        ({"asset_prefixes": ()}, "asset_prefixes is empty"),
        ({"asset_prefixes": ("assets", "my assets")}, "asset_prefixes"),
        ({"asset_prefixes": ("assets|.*",)}, "asset_prefixes"),
        ({"cache_size": "1 gb"}, "cache_size"),
        ({"client_max_body_size": "100mb"}, "client_max_body_size"),
        ({"proxy_read_timeout": "3 minutes"}, "proxy_read_timeout"),
        ({"cache_inactive": "7days"}, "cache_inactive"),
        ({"access_log_buffer": "1g"}, "access_log_buffer"),  # nginx: "invalid buffer size"
        ({"access_log_buffer": "0"}, "access_log_buffer"),
        ({"resolver": ""}, "resolver is empty"),
        ({"resolver": "127.0.0.11;"}, "resolver"),
        ({"short_max_age": -1}, "short_max_age"),
        ({"fingerprint_min_length": 4}, "fingerprint_min_length"),
        ({"server_names": ("lara.example.org:443",)}, "server_names"),
        ({"server_names": ("https://lara.example.org",)}, "server_names"),
        ({"server_names": ("~^lara",)}, "server_names"),
        ({"server_names": ("_",)}, "server_names"),
        ({"server_names": ("lara example",)}, "server_names"),
        ({"trusted_proxies": ("10.0.0.1/8",)}, "trusted_proxies"),
        ({"trusted_proxies": ("lb.internal",)}, "trusted_proxies"),
        ({"trusted_proxies": ("0.0.0.0/0",)}, "trusts every client"),
        ({"trusted_proxies": ("10.0.0.0/8;",)}, "trusted_proxies"),
        # Python takes a scope ID; nginx refuses what it renders to (fe80::1%eth0/128).
        ({"trusted_proxies": ("fe80::1%eth0",)}, "trusted_proxies entry 'fe80::1%eth0'"),
        ({"trusted_proxies": ("fe80::%1/64",)}, "trusted_proxies entry 'fe80::%1/64'"),
        ({"asset_fallback": "fetch"}, "asset_fallback"),
    ],
)
def test_bad_values_are_refused_with_the_key_to_fix(change, words):
    with pytest.raises(BuildToolsError) as refused:
        schema.check_nginx(nginx_settings(**change))
    assert words in str(refused.value)
    assert refused.value.fix
    assert "\n" not in str(refused.value)


# --- bad input (tests/fixtures/bad_input.py) ---

# An nginx value nginx would refuse: (case, task args, environment, invoke.yaml extra lines, the
# error line must contain)
ONE_LINE_FAILURES = [
    (
        "a cache size nginx refuses, in a dry run",
        ["build", "--dry-run"],
        {"INVOKE_BUILDTOOLS_NGINX_CACHE_SIZE": "lots"},
        "",
        "buildtools.nginx.cache_size = 'lots' is not valid for nginx",
    ),
]


@pytest.mark.parametrize("row", whole_rows(ONE_LINE_FAILURES))
def test_bad_input_is_one_line_and_a_non_zero_exit(app: App, row: tuple) -> None:
    fails_in_one_line(app, *row)
