"""What the registry client checks in everything a registry serves before using it.

A manifest or blob asked for by digest must hash to that digest; a reference must be a tag or
a digest before it goes into a URL path (an index's entries come from the registry too); JSON
must have the shape :mod:`buildtools.plan.shapes` expects. Each failure is one line naming
the registry and what was asked for.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from buildtools.plan import shapes
from buildtools.registry.failures import RegistryError
from buildtools.registry.transport import Answer

ALTERED = (
    "something between here and the registry alters what it serves, or its storage is "
    "damaged: check the registry and any proxy in front of it"
)


def subject(kind: str, api_name: str, reference: str) -> str:
    """``manifest org/app:1.0`` or ``blob org/app@sha256:…``: what was asked for."""
    return f"{kind} {api_name}{'@' if shapes.is_digest(reference) else ':'}{reference}"


def check_reference(registry: str, api_name: str, reference: str, kind: str) -> None:
    """A blob's reference is a digest, a manifest's a tag or a digest; else one line."""
    ok = shapes.is_digest(reference) if kind == "blob" else shapes.is_reference(reference)
    if not ok:
        raise RegistryError(
            f"registry {registry}: {kind} reference {reference[:80]!r} of {api_name} is not "
            f"a valid {'digest' if kind == 'blob' else 'tag or digest'}",
            "check the manifest that named it",
        )


def mismatch(registry: str, what: str, actual: str, expected: str) -> RegistryError:
    return RegistryError(
        f"registry {registry} served {what} with bytes of digest {actual}, not {expected}",
        ALTERED,
    )


def check_digest(registry: str, body: bytes, expected: str, what: str) -> None:
    """The bytes hash to ``expected`` (no check when it names no digest we know)."""
    if not shapes.is_digest(expected):
        return
    actual = shapes.digest_of(body, expected.partition(":")[0])
    if actual != expected:
        raise mismatch(registry, what, actual, expected)


def check_shape(
    registry: str, body: bytes, problem_of: Callable[[object], str | None], what: str
) -> None:
    """The JSON in ``body`` has the shape ``problem_of`` expects, else one line saying why."""
    try:
        problem = problem_of(shapes.load(body, what.split()[0]))
    except shapes.BadDocument as exc:
        problem = str(exc)
    if problem:
        raise RegistryError(
            f"registry {registry}: {what} is unusable: {problem}",
            "check what the registry serves under that name",
        )


def error_code(resp: Answer) -> str:
    """The registry's own error codes (``MANIFEST_INVALID``…), never its free text: short and
    free of anything a request carried."""
    try:
        parsed = shapes.load(resp.content, "error")
    except shapes.BadDocument:
        return ""
    errors = parsed.get("errors") if isinstance(parsed, dict) else None
    if not isinstance(errors, list):
        return ""
    codes = sorted(
        {e["code"][:40] for e in errors if isinstance(e, dict) and isinstance(e.get("code"), str)}
    )
    return f" ({', '.join(codes)})" if codes else ""


class DigestFile:
    """A blob streamed into a file and hashed as it comes; :meth:`start` begins an attempt
    anew (a retry truncates what a failed one wrote)."""

    def __init__(self, path: Path, digest: str) -> None:
        self.path = path
        self.digest = digest
        self.size = 0
        self._hasher = hashlib.new(digest.partition(":")[0])
        self._out: BinaryIO | None = None

    def start(self) -> Callable[[bytes], None]:
        self.close()
        self._out = self.path.open("wb")
        self._hasher = hashlib.new(self.digest.partition(":")[0])
        self.size = 0
        return self.write

    def write(self, chunk: bytes) -> None:
        assert self._out is not None
        self._out.write(chunk)
        self._hasher.update(chunk)
        self.size += len(chunk)

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None

    @property
    def actual(self) -> str:
        return f"{self.digest.partition(':')[0]}:{self._hasher.hexdigest()}"
