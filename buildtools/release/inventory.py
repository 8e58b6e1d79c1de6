"""`invoke releases`: what every configured registry holds for both images, read through the
registry API only (no engine, no publishing code imported), with each release verified under
the key when one is configured. The same proof check refuses a rollback to an unproven release.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from buildtools.attest.keyring import Keys, load_keys
from buildtools.config.schema import Settings
from buildtools.errors import BuildToolsError
from buildtools.facts.gitinfo import commit_times
from buildtools.plan import inventory
from buildtools.registry import inventory as reads
from buildtools.registry import targets
from buildtools.registry.client import RegistryClient


def roles(settings: Settings) -> list[tuple[str, str]]:
    return [("app", settings.app.repository), ("nginx", settings.nginx.image.repository)]


def extra_floating(settings: Settings) -> list[str]:
    return sorted({name for names in settings.extra_tags.values() for name in names})


def releases(settings: Settings, env: Mapping[str, str]) -> inventory.Inventory:
    """`invoke releases`: both images in every configured registry (reads only)."""
    prefix = settings.sha_prefix

    known: dict[tuple[str, ...], dict[str, int]] = {}  # both images have the same sha- tags

    def sha_times(tags: Sequence[str]) -> dict[str, int]:
        shorts = {t: t[len(prefix) :] for t in tags}
        wanted = tuple(sorted(set(shorts.values())))
        if wanted not in known:
            known[wanted] = commit_times(settings.repo, list(wanted))
        times = known[wanted]
        return {t: times[s] for t, s in shorts.items() if s in times}

    keys = load_keys(settings.release, env)  # a key that cannot be used: one line, now
    found = targets.configured(settings.release, env)
    holdings = [
        reads.holdings(
            target.client, image, repository, prefix, extra_floating(settings), sha_times
        )
        for target in found
        for image, repository in roles(settings)
    ]
    verified: dict[tuple[str, str], str] = {}
    if keys.verify is not None:
        clients = {target.name: target.client for target in found}
        for held in holdings:
            for version in held.kinds.releases:
                digest = held.digests.get(version)
                if digest is not None and (held.image, digest) not in verified:
                    why = proof_problem(clients[held.registry], held.repository, digest, keys)
                    verified[(held.image, digest)] = why or "verified"
    return inventory.build(holdings, verified)


def proof_problem(client: RegistryClient, repository: str, digest: str, keys: Keys) -> str | None:
    """Why ``digest`` is not a signed, smoke-tested release under the verify key (None: it
    is); what `invoke releases` shows and what refuses a rollback to it."""
    from buildtools.attest import verify

    assert keys.verify is not None
    try:
        verify.verify(client, repository, digest, keys.verify, require_smoke=True)
    except BuildToolsError as exc:
        return exc.problem
    return None
