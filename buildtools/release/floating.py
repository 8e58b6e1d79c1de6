"""A release's floating tags (``X.Y``, ``X``, ``latest``) never move backwards.

The tags were planned from a registry read made before the builds; two releases at once (a
backport and a new version, two tag builds of one CI) both read "no higher release". So right
before each such tag moves, its repository's tags are read again, and the tag is left where it
is, with one line saying so, when the registry now holds a higher release of its series
(:func:`buildtools.plan.push_order.held_by` decides). Pushes and promotions alike pass here
(:func:`buildtools.release.publish.execute`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from buildtools.plan.push_order import HELD, Push, held_by
from buildtools.registry.targets import Target


def held(push: Push, target: Target) -> Push | None:
    """The record of ``push`` left unmoved when ``target`` holds a higher release now (one
    tag-list read, only for a release's floating tags), or None when it may move."""
    if push.release is None:
        return None
    higher = held_by(push, target.client.tags(push.repository))
    if higher is None:
        return None
    return dataclasses.replace(push, action=HELD, kept=higher, digest=push.previous)


def notes(records: Sequence[Push]) -> list[str]:
    """One line per floating tag left where it was."""
    return [
        f"{p.registry} {p.repository}:{p.tag} not moved to {p.release}: the registry holds "
        f"{p.kept} now (another release finished meanwhile); a floating tag never moves back"
        for p in records
        if p.action == HELD
    ]
