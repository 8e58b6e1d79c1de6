"""What one repository of a registry holds: every tag with its manifest digest, and, for the
tags asked, the image's own date. Read for ``invoke prune``.

About one request per tag: the tag list's pages (100 tags each), one ``HEAD`` per tag (its
``Docker-Content-Digest``), and only for the tags whose age needs the image's date a ``GET``
of the manifest and one of each distinct config. The ``HEAD`` requests go out a few at a
time, so a repository of thousands of tags is read in seconds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from buildtools.plan.retention import image_date
from buildtools.registry.client import RegistryClient

WORKERS = 8


@dataclass(frozen=True)
class Listing:
    """One repository of one registry: tag -> manifest digest, and the dates read."""

    registry: str
    repository: str
    digests: Mapping[str, str]
    dates: Mapping[str, dt.datetime] = field(default_factory=dict)


def read(
    client: RegistryClient,
    repository: str,
    dated: Callable[[Collection[str]], Collection[str]],
) -> Listing:
    """Every tag of ``repository`` with its digest; ``dated(tags)`` names the tags whose
    image date is wanted (a tag that vanished meanwhile is left out)."""
    tags = client.tags(repository)
    wanted = set(dated(tags))

    def one(tag: str) -> tuple[str, str | None, str | None]:
        if tag in wanted:
            manifest = client.manifest(repository, tag)
            if manifest is None:
                return tag, None, None
            return tag, manifest.digest, manifest.config_digest or None
        return tag, client.digest(repository, tag), None

    with ThreadPoolExecutor(WORKERS) as pool:
        found = list(pool.map(one, tags))
    digests = {tag: digest for tag, digest, _ in found if digest}
    configs = {tag: config for tag, _, config in found if config}
    by_config: dict[str, dt.datetime | None] = {}
    for config in sorted(set(configs.values())):
        by_config[config] = image_date(client.blob(repository, config))
    dates = {tag: by_config[c] for tag, c in configs.items() if by_config[c] is not None}
    return Listing(client.registry.name, repository, digests, dates)  # type: ignore[arg-type]


def heads(client: RegistryClient, repository: str, tags: Collection[str]) -> dict[str, str]:
    """The digest each of ``tags`` points at now, a few ``HEAD`` requests at a time; a tag
    that is gone is left out."""
    with ThreadPoolExecutor(WORKERS) as pool:
        found = list(pool.map(lambda tag: (tag, client.digest(repository, tag)), tags))
    return {tag: digest for tag, digest in found if digest}
