"""invoke tasks: each is a few lines that call library functions.

An app repository uses them with a one-line ``tasks.py`` (``from buildtools.tasks import ns``)
and its own ``invoke.yaml``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from invoke import Collection, Context, task
from invoke.exceptions import Exit

from buildtools import config
from buildtools.errors import BuildToolsError


def settings(c: Context) -> config.Settings:
    """The project's Settings; paths are relative to the directory holding tasks.py."""
    root = Path(getattr(c.config, "_project_prefix", None) or os.getcwd())
    return config.load(c.config.buildtools, root)


@contextlib.contextmanager
def reported() -> Iterator[None]:
    """Turn a BuildToolsError into a one-line message and a non-zero exit, no traceback."""
    try:
        yield
    except BuildToolsError as exc:
        raise Exit(f"error: {exc}", code=exc.exit_code) from None


@task(help={"suite": "Debian suite to bootstrap (default: the host's own)"})
def bases(c, suite=""):
    """Make the local Debian base image with debootstrap (Docker Hub is not needed)."""
    from buildtools import testbed

    with reported():
        cfg = settings(c)
        client = testbed.ensure_engine()
        print(testbed.ensure_base_image(client, cfg.bases_repository, suite=suite or None))


ns = Collection(bases)
