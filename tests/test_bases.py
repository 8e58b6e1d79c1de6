"""The local Debian base image (buildtools.bases, what `invoke bases` makes): from the host's own
mirror and suite, slim, and remade when its recipe changes."""

from __future__ import annotations

from buildtools import bases
from tests.fixtures.held_images import discard


def test_base_image_uses_the_hosts_own_debian_mirror(docker_client, base_image):
    mirror, suite = bases.apt_mirror()
    sources = docker_client.containers.run(
        base_image, ["cat", "/etc/apt/sources.list"], remove=True
    ).decode()
    assert mirror in sources
    assert suite in sources
    assert base_image.endswith(f":{suite}")


def test_base_image_is_slim_and_made_by_the_current_recipe(docker_client, base_image):
    image = docker_client.images.get(base_image)
    assert bases.base_is_current(image)
    assert image.attrs["Size"] <= 90_000_000  # Debian's own slim image is about 75 MB
    script = """
        set -eu
        test -z "$(ls /var/lib/apt/lists | grep -v '^partial$')"
        test -z "$(find /var/cache/apt /var/log -type f)"
        test -z "$(find /usr/share/doc -type f ! -name copyright)"
        test -z "$(find /usr/share/man /usr/share/info /usr/share/locale -type f)"
        test -f /usr/share/doc/bash/copyright
        apt-config dump | grep -qx 'APT::Install-Recommends "false";'
        rc=0; /usr/sbin/policy-rc.d nginx start || rc=$?; test $rc -eq 101
        echo slim
    """
    out = docker_client.containers.run(base_image, ["sh", "-c", script], remove=True)
    assert out.decode().strip() == "slim"


def test_a_base_from_an_older_recipe_is_not_current(docker_client, base_image, tmp_path):
    """What ensure_base_image rebuilds: a tagged base lacking this recipe's number."""
    label = f"LABEL {bases.RECIPE_LABEL}={bases.BASE_RECIPE - 1}"
    (tmp_path / "Dockerfile").write_text(f"FROM {base_image}\n{label}\n")
    old, _ = docker_client.images.build(path=str(tmp_path), rm=True)
    try:
        assert not bases.base_is_current(old)
        assert bases.base_is_current(docker_client.images.get(base_image))
    finally:
        discard(docker_client, old.id)
