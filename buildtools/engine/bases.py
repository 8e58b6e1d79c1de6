"""The local Debian base image, made with debootstrap: what ``invoke bases`` runs.

Docker Hub may be unreachable (it is on our CI machines), so the base is debootstrapped once per
machine from the mirror the host's own apt already uses, slimmed like Debian's ``-slim`` images,
and imported into the engine. Needs root on Debian (debootstrap does).
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker
import docker.errors
import docker.models.images

from buildtools.errors import BuildToolsError


def can_install() -> bool:
    """Whether missing Debian packages can be installed here: as root, on Debian."""
    debian = Path("/etc/debian_version").exists() and bool(shutil.which("apt-get"))
    return os.geteuid() == 0 and debian


def apt_install(*packages: str) -> None:
    """Install Debian packages (root on Debian only); says which packages when it cannot."""
    if not can_install():
        raise BuildToolsError(
            f"missing Debian packages: {' '.join(packages)}",
            f"run as root on Debian, or install them: sudo apt-get install {' '.join(packages)}",
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *packages]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            tail = done.stderr.strip().splitlines()[-1:] or ["(no output)"]
            raise BuildToolsError(
                f"{' '.join(cmd)} failed: {tail[0]}", "check the apt sources and network"
            )


def apt_mirror() -> tuple[str, str]:
    """The (mirror URL, suite) of the machine's main Debian archive, as apt itself sees them."""
    out = subprocess.run(
        ["apt-get", "indextargets", "--format", "$(REPO_URI) $(RELEASE) $(TARGET_OF)"],
        capture_output=True,
        text=True,
    ).stdout
    for line in out.splitlines():
        parts = line.split()
        # The main suite ("bookworm"), not "-updates"/"-security", from a plain deb source.
        if len(parts) == 3 and parts[2] == "deb" and "-" not in parts[1] and "/" not in parts[1]:
            return parts[0].rstrip("/"), parts[1]
    raise BuildToolsError(
        "no Debian mirror found in this machine's apt sources",
        "add a deb line for a Debian mirror to /etc/apt/sources.list, or pass a base image",
    )


# Bump when the recipe below changes: a tagged base without this number is rebuilt and retagged.
BASE_RECIPE = 2
RECIPE_LABEL = "org.concord.lara.bases.recipe"

# Debian's slim images drop documentation, manuals and translations, from the rootfs and from
# every later `apt-get install` (dpkg path-exclude): nothing in a container reads them.
SLIM_EXCLUDES = (
    "/usr/share/doc/*",
    "/usr/share/groff/*",
    "/usr/share/info/*",
    "/usr/share/linda/*",
    "/usr/share/lintian/overrides/*",
    "/usr/share/locale/*",
    "/usr/share/man/*",
)
# Licences must stay, and `locales` needs its alias table if a later image installs it.
SLIM_INCLUDES = ("/usr/share/doc/*/copyright", "/usr/share/locale/locale.alias")

# Files the base adds to the rootfs, with why in each file for whoever finds them in an image.
BASE_FILES = {
    "etc/dpkg/dpkg.cfg.d/lara-slim": (
        "# lara-buildtools: no docs, manuals or translations in images (as Debian's slim images)\n"
        + "".join(f"path-exclude {p}\n" for p in SLIM_EXCLUDES)
        + "".join(f"path-include {p}\n" for p in SLIM_INCLUDES)
    ),
    "etc/dpkg/dpkg.cfg.d/lara-unsafe-io": (
        "# lara-buildtools: image builds are redone from scratch after a crash; skip fsync\n"
        "force-unsafe-io\n"
    ),
    "etc/apt/apt.conf.d/lara-clean": (
        "// lara-buildtools: every build step is a layer, so apt caches would only bloat it.\n"
        'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb '
        '/var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
        'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb '
        '/var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
        'Dir::Cache::pkgcache "";\n'
        'Dir::Cache::srcpkgcache "";\n'
    ),
    "etc/apt/apt.conf.d/lara-lean": (
        "// lara-buildtools: small layers. Compressed indexes, no translations, only what a\n"
        "// Dockerfile names (plus its dependencies), and autoremove takes what it pulled in.\n"
        'Acquire::GzipIndexes "true";\n'
        'Acquire::Languages "none";\n'
        'APT::Install-Recommends "false";\n'
        'APT::Install-Suggests "false";\n'
        'APT::AutoRemove::SuggestsImportant "false";\n'
    ),
    # Services must not start inside `docker build` (nginx, mariadb-server postinst scripts).
    "usr/sbin/policy-rc.d": "#!/bin/sh\n# lara-buildtools: no services in builds\nexit 101\n",
}

# Left by debootstrap and apt, useless (or host-specific) in an image; the directories stay.
ROOTFS_LITTER = (
    "var/lib/apt/lists/*",
    "var/cache/apt/*.bin",
    "var/cache/apt/archives/*.deb",
    "var/cache/apt/archives/partial/*",
    "var/cache/debconf/*-old",
    "var/lib/dpkg/*-old",
    "var/cache/ldconfig/aux-cache",
    "var/log/**/*",
    "run/mount/utab",
    "tmp/*",
    "var/tmp/*",
)


def ensure_base_image(
    client: docker.DockerClient, repository: str, suite: str | None = None
) -> str:
    """A slim Debian image, debootstrapped once per machine, tagged ``repository:suite``
    and ``repository:latest``; returns the former. A base made by an older recipe is remade."""
    mirror, host_suite = apt_mirror()
    suite = suite or host_suite
    ref = f"{repository}:{suite}"
    try:
        image = client.images.get(ref)
        if not base_is_current(image):
            print(
                f"bases: {ref} ({image.id[7:19]}) is from an older recipe, remaking it;"
                " `docker image prune` frees the old one once nothing uses it",
                file=sys.stderr,
            )
            image = client.images.get(_debootstrap(client, repository, suite, mirror))
    except docker.errors.ImageNotFound:
        image = client.images.get(_debootstrap(client, repository, suite, mirror))
    # `:latest` is what invoke.yaml names, whatever the host's suite (bookworm, trixie, ...).
    image.tag(repository, "latest")
    return ref


def base_is_current(image: docker.models.images.Image) -> bool:
    """Whether a tagged base was made by this recipe (older ones lack the label or differ)."""
    return image.labels.get(RECIPE_LABEL) == str(BASE_RECIPE)


def _debootstrap(client: docker.DockerClient, repository: str, suite: str, mirror: str) -> str:
    """debootstrap, slim down and import; prints how long it took (it is the slow part)."""
    ref = f"{repository}:{suite}"
    if not shutil.which("debootstrap"):
        apt_install("debootstrap")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lara-bases-") as tmp:
        rootfs = Path(tmp, "rootfs")
        done = subprocess.run(
            ["debootstrap", "--variant=minbase", suite, str(rootfs), mirror],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).strip().splitlines()[-1:] or ["(no output)"]
            raise BuildToolsError(
                f"debootstrap {suite} from {mirror} failed: {tail[0]}",
                "check that the mirror in the apt sources answers",
            )
        bootstrapped = time.monotonic()
        slimify(rootfs)
        tarball = Path(tmp, "rootfs.tar")
        # /dev, /proc and /sys are the engine's to provide in every container.
        subprocess.run(
            [
                "tar",
                "-C",
                str(rootfs),
                "--numeric-owner",
                "--exclude=./dev/*",
                "--exclude=./proc/*",
                "--exclude=./sys/*",
                "-cf",
                str(tarball),
                ".",
            ],
            check=True,
        )
        client.api.import_image_from_file(
            str(tarball),
            repository=repository,
            tag=suite,
            changes=[
                'CMD ["bash"]',
                f'LABEL org.opencontainers.image.source="{mirror}"',
                f'LABEL {RECIPE_LABEL}="{BASE_RECIPE}"',
            ],
        )
    size = client.images.get(ref).attrs["Size"] / 1e6
    print(
        f"bases: made {ref} ({size:.0f} MB): debootstrap {bootstrapped - started:.0f} s,"
        f" slim and import {time.monotonic() - bootstrapped:.0f} s",
        file=sys.stderr,
    )
    return ref


def _matches(path: str, patterns: tuple[str, ...]) -> bool:
    # dpkg's globs: `*` also matches `/`, which fnmatchcase does too.
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in patterns)


def slimify(rootfs: Path) -> None:
    """Make a debootstrapped rootfs as lean as Debian's slim images, and keep later installs so."""
    for name, text in BASE_FILES.items():
        _replace(rootfs / name, text, 0o755 if name.startswith("usr/sbin/") else 0o644)
    # What dpkg would not have unpacked under the rules above.
    for top in {p.split("/*")[0] for p in SLIM_EXCLUDES}:
        base = rootfs / top.lstrip("/")
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*"), reverse=True):  # children before their directory
            inside = "/" + str(path.relative_to(rootfs))
            if path.is_dir() and not path.is_symlink():
                with contextlib.suppress(OSError):
                    path.rmdir()  # only if it is empty now
            elif _matches(inside, SLIM_EXCLUDES) and not _matches(inside, SLIM_INCLUDES):
                path.unlink()
    for pattern in ROOTFS_LITTER:
        for path in rootfs.glob(pattern):
            if path.is_file() or path.is_symlink():
                path.unlink()
            elif path.is_dir() and pattern in ("tmp/*", "var/tmp/*"):
                shutil.rmtree(path)
    # debootstrap copies the host's; the engine mounts its own into every container.
    for name in ("etc/resolv.conf", "etc/hostname"):
        _replace(rootfs / name, "", 0o644)


def _replace(path: Path, text: str, mode: int) -> None:
    # Never write through a symlink: in a rootfs, an absolute one points into the host.
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    path.write_text(text)
    path.chmod(mode)
