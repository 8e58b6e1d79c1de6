"""The keys one task signs and checks with, loaded once in its plan's preflight.

A key configured but unusable (a missing file, a wrong ``COSIGN_PASSWORD``, not P-256, the
attest extra missing) is one line before anything is built, never a failure after the push.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from buildtools.config.schema import ReleaseConfig

if TYPE_CHECKING:
    from buildtools.attest.keys import PublicKey, SigningKey


@dataclass(frozen=True)
class Keys:
    """The key that signs what is pushed and the one a promotion checks the tested images
    with; None: not configured."""

    signing: SigningKey | None = field(default=None, repr=False)
    verify: PublicKey | None = field(default=None, repr=False)


def load_keys(release: ReleaseConfig, env: Mapping[str, str], *, signs: bool = False) -> Keys:
    """The configured keys, read now. The verify key (``buildtools.release.verify_key``)
    defaults to the signing key's public half. ``signs``: the task signs what it pushes, so
    syft (every signed image gets an SBOM) must be runnable too; a task that only verifies
    (releases, rollback) does not need it."""
    configured = release.signing_key or release.verify_key or env.get("COSIGN_PRIVATE_KEY")
    if not configured:
        return Keys()  # nothing configured: the crypto of the attest extra is not loaded
    from buildtools.attest import keys

    signing = keys.load_signing_key(release.signing_key, env)
    if signing is not None and signs:
        from buildtools.attest import sbom

        sbom.syft_binary()  # a missing syft stops the release here, not after its first push
    if release.verify_key is not None:
        verify = keys.load_verify_key(release.verify_key)
    else:
        verify = signing.public_key() if signing else None
    return Keys(signing, verify)
