"""The rendered nginx config as nginx itself and gixy-ng see it: the host's ``nginx -t`` accepts
every combination of the keys, and gixy's deep analysis finds nothing.
"""

from __future__ import annotations

import dataclasses
import getpass
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from buildtools.config.schema import NginxConfig
from buildtools.sidecar import nginx_conf
from tests.fixtures.services import unavailable
from tests.fixtures.sidecar import nginx_settings

# ---- nginx itself accepts it ----


@pytest.fixture
def host_nginx() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else "")
    if not found:
        unavailable("nginx on this host", FileNotFoundError("apt-get install nginx-light"))
    return found


def nginx_t(host_nginx: str, cfg: NginxConfig, tmp_path: Path) -> subprocess.CompletedProcess:
    """``nginx -t`` of the config rendered for ``cfg`` with every path moved into tmp_path."""
    layout = nginx_conf.Layout(
        user=getpass.getuser(),
        listen="127.0.0.1:18080",
        pid=str(tmp_path / "nginx.pid"),
        upstream_conf=str(tmp_path / "upstream.conf"),
        public_root=str(tmp_path / "public"),
        cache_dir=str(tmp_path / "cache"),
        temp_dir=str(tmp_path / "temp"),
    )
    for folder in ("public", "temp"):
        (tmp_path / folder).mkdir()
    (tmp_path / "upstream.conf").write_text(nginx_conf.render_upstream(cfg.upstream))
    conf = tmp_path / "nginx.conf"
    conf.write_text(nginx_conf.render_config(cfg, layout))
    return subprocess.run(
        [host_nginx, "-t", "-c", str(conf), "-p", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_default_config_passes_nginx_t_although_the_app_name_does_not_resolve(host_nginx, tmp_path):
    # "app" is unknown to this host's DNS: nginx must not need it until a request comes.
    done = nginx_t(host_nginx, nginx_settings(), tmp_path)
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr


def test_customised_config_passes_nginx_t(host_nginx, tmp_path):
    cfg = nginx_settings(
        upstream="10.1.2.3:8080",
        asset_prefixes=("packs", "assets", "uploads/public"),
        cache_size="200m",
        cache_inactive="1h30m",
        short_max_age=60,
        client_max_body_size="20m",
        proxy_read_timeout="90s",
        proxy_connect_timeout="2s",
        resolver="10.0.0.2 10.0.0.3:53",
        resolver_valid="30s",
        fingerprint_min_length=20,
        gzip_pages=True,
    )
    done = nginx_t(host_nginx, cfg, tmp_path)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("asset_fallback", ["auto", "proxy", "404"])
@pytest.mark.parametrize("trusted_proxies", [(), ("10.0.0.0/8", "192.0.2.7", "2001:db8::/32")])
@pytest.mark.parametrize("server_names", [(), ("lara.example.org", "*.concord.org")])
def test_every_combination_of_the_new_keys_passes_nginx_t(
    host_nginx, tmp_path, server_names, trusted_proxies, asset_fallback
):
    cfg = nginx_settings(
        server_names=server_names, trusted_proxies=trusted_proxies, asset_fallback=asset_fallback
    )
    done = nginx_t(host_nginx, cfg, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "[warn]" not in done.stderr


def test_nginx_t_fails_when_the_upstream_file_is_missing(host_nginx, tmp_path):
    # The image's entrypoint writes it; without it nginx must refuse to start.
    done = nginx_t(host_nginx, nginx_settings(), tmp_path)
    assert done.returncode == 0
    (tmp_path / "upstream.conf").unlink()
    again = subprocess.run(
        [host_nginx, "-t", "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert again.returncode != 0


def gixy(cfg: NginxConfig, tmp_path: Path) -> list:
    """gixy-ng's findings (``--deep``: ReDoS analysis included) for the config of ``cfg``."""
    found = shutil.which("gixy", path=str(Path(sys.executable).parent)) or shutil.which("gixy")
    if not found:
        unavailable("gixy-ng", FileNotFoundError("pip install 'gixy-ng[deep]' (test extras)"))
    (tmp_path / "upstream.conf").write_text(nginx_conf.render_upstream(cfg.upstream))
    conf = tmp_path / "nginx.conf"
    layout = dataclasses.replace(
        nginx_conf.IMAGE_LAYOUT, upstream_conf=str(tmp_path / "upstream.conf")
    )
    conf.write_text(nginx_conf.render_config(cfg, layout))
    done = subprocess.run(
        [found, "--deep", "-f", "json", str(conf)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"asset_fallback": "404"},
        {
            "server_names": ("lara.example.org", "*.concord.org"),
            "trusted_proxies": ("10.0.0.0/8", "2001:db8::/32"),
            "asset_prefixes": ("packs", "assets", "uploads/public", "system"),
            "fingerprint_min_length": 20,
        },
    ],
    ids=["default", "404", "names-and-proxies"],
)
def test_gixy_deep_finds_nothing_in_the_rendered_config(changes, tmp_path):
    assert gixy(nginx_settings(**changes), tmp_path) == []
