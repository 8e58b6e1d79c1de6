"""The registry reads behind `invoke releases` and `invoke rollback`, kept few per tag.

Per repository: the tag list (paged, ``n``/``last`` and ``Link``); a GET of each release tag's
manifest (its digest and image config in one request); a HEAD of each floating tag; one config
read per distinct release image; a GET of each rollback marker. ``sha-``, branch, ``pr-`` and
cache tags cost nothing beyond the list, and cosign's ``.sig``/``.att`` tags are seen in it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor

from buildtools.plan import inventory, rollback
from buildtools.plan.inventory import Holdings, Kinds, Marker
from buildtools.plan.manifests import config_labels
from buildtools.registry.client import RegistryClient
from buildtools.registry.tag_digests import WORKERS

# (sha- tags) -> their commit time (epoch seconds) where git knows the commit.
ShaTimes = Callable[[Iterable[str]], Mapping[str, int]]


def markers(client: RegistryClient, repository: str, kinds: Kinds) -> dict[str, Marker]:
    """The rollback markers of a repository, as they say."""
    found = {}
    for tag in kinds.markers:
        read = client.manifest_bytes(repository, rollback.marker_tag(tag))
        if read is not None:
            found[tag] = rollback.parse_marker(tag, read[0])
    return found


def holdings(
    client: RegistryClient,
    image: str,
    repository: str,
    sha_prefix: str,
    extra_floating: Iterable[str] = (),
    sha_times: ShaTimes | None = None,
    *,
    labels: bool = True,
) -> Holdings:
    """What ``client``'s registry holds in ``repository``: the tag kinds from one paged list,
    every release and floating tag's digest, each release image's labels (``labels``)."""
    kinds = inventory.classify(client.tags(repository), sha_prefix, extra_floating)

    def release(tag: str) -> tuple[str, str | None, str | None]:
        found = client.manifest(repository, tag)
        return (tag, found.digest, found.config_digest or None) if found else (tag, None, None)

    def floating(tag: str) -> tuple[str, str | None, str | None]:
        return tag, client.digest(repository, tag), None

    # A few requests at a time (after the tag list, which got the pull token): a repository
    # of 45 releases was 100 requests one after the other.
    with ThreadPoolExecutor(WORKERS) as pool:
        releases = pool.map(release, kinds.releases)  # both sent before either is awaited
        floatings = pool.map(floating, kinds.floating)
        found = [*releases, *floatings]
        digests = {tag: digest for tag, digest, _ in found if digest is not None}
        configs = {digest: config for _, digest, config in found if digest and config}
        wanted = sorted(set(configs.values())) if labels else []
        read_labels = pool.map(lambda c: _labels(client, repository, c), wanted)
        by_config = dict(zip(wanted, read_labels, strict=True))
    read = {digest: by_config[config] for digest, config in configs.items() if labels}
    times = dict(sha_times(kinds.shas)) if sha_times and kinds.shas else {}
    return Holdings(
        client.registry.name,
        image,
        repository,
        kinds,
        digests,
        read,
        markers(client, repository, kinds),
        times,
    )


def _labels(client: RegistryClient, repository: str, config: str) -> dict[str, str]:
    return config_labels(client.config(repository, config))
