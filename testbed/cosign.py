"""The real ``cosign`` (sigstore's CLI) for the interoperability tests: Debian 13's static
binary, unpacked by ``scripts/cosign`` (run by ``scripts/setup``) into a per-user cache, or one
on ``PATH``. The tests check our signatures and attestations with it, and ours with its."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def cached_cosign() -> Path:
    """Where ``scripts/cosign`` puts the binary (the same cache root as ``scripts/venv``'s uv)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "lara-buildtools" / "cosign" / "usr" / "bin" / "cosign"


def cosign_path() -> Path | None:
    """The cosign binary to run: the cached one, else one on ``PATH``; None when neither."""
    cached = cached_cosign()
    if cached.is_file() and os.access(cached, os.X_OK):
        return cached
    found = shutil.which("cosign")
    return Path(found) if found else None
