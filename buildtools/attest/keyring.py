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


def load_keys(release: ReleaseConfig, env: Mapping[str, str]) -> Keys:
    """The configured keys, read now. The verify key (``buildtools.release.verify_key``)
    defaults to the signing key's public half."""
    configured = release.signing_key or release.verify_key or env.get("COSIGN_PRIVATE_KEY")
    if not configured:
        return Keys()  # nothing configured: the crypto of the attest extra is not loaded
    from buildtools.attest import keys

    signing = keys.load_signing_key(release.signing_key, env)
    if signing is not None:
        from buildtools.attest import sbom

        sbom.syft_binary()  # every signed image gets an SBOM: a missing syft stops it here
    if release.verify_key is not None:
        verify = keys.load_verify_key(release.verify_key)
    else:
        verify = signing.public_key() if signing else None
    return Keys(signing, verify)
