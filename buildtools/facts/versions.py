"""Semantic versions as git tags and Docker tags spell them: the one place that parses them."""

from __future__ import annotations

from collections.abc import Iterable

import semver


def parse_version(name: str) -> semver.Version | None:
    """A tag name as a semantic version (an optional leading ``v`` is dropped), else None."""
    text = name[1:] if name[:1] in ("v", "V") else name
    if text.count(".") < 2:  # not MAJOR.MINOR.PATCH: a quick no for most tags (nightly-1234)
        return None
    try:
        return semver.Version.parse(text)
    except (ValueError, TypeError):
        return None


def docker_version(version: semver.Version) -> str:
    """A version as a Docker tag: build metadata joined with ``_`` (``+`` is not allowed)."""
    text = str(version.replace(build=None))
    return f"{text}_{version.build}" if version.build else text


def semver_tags(tags: Iterable[str]) -> list[str]:
    """The Docker tags that are release versions (``1.2.3``, ``1.2.3-rc.1``, ``1.2.3_build``),
    as semantic versions (``_`` turned back into ``+``)."""
    found = []
    for tag in tags:
        text = tag.replace("_", "+", 1)
        if parse_version(text) is not None:
            found.append(text)
    return found


def ascending(versions: Iterable[str]) -> list[str]:
    """Version strings, lowest first (unparsable ones sort by text, after none in particular)."""
    return sorted(set(versions), key=lambda v: parse_version(v) or v)
