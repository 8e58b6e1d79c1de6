"""Signing and verify keys: ECDSA P-256 in PEM, as cosign makes and reads them.

A signing key comes from ``buildtools.release.signing_key`` (a path) or, when that is empty,
from the environment's ``COSIGN_PRIVATE_KEY`` (PEM text: what CI secrets hold). Accepted: an
unencrypted PKCS#8 or SEC1 PEM key, an encrypted PKCS#8 PEM key, and the
``ENCRYPTED SIGSTORE PRIVATE KEY`` (or older ``ENCRYPTED COSIGN PRIVATE KEY``) that
``cosign generate-key-pair`` writes: scrypt-derived key, NaCl secretbox around the PKCS#8 DER.
The password comes only from ``COSIGN_PASSWORD``. No error names the password or key bytes.

``cryptography`` and ``PyNaCl`` (the ``attest`` extra) are imported here, lazily, only when a
key is used: a task that signs nothing does not pay for them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from buildtools.errors import BuildToolsError

PRIVATE_KEY_ENV = "COSIGN_PRIVATE_KEY"
PASSWORD_ENV = "COSIGN_PASSWORD"
INSTALL = "pip install 'lara-buildtools[attest]'"
KEY_LIMIT = 64 * 1024  # a PEM key is a few hundred bytes; anything this big is not one
COSIGN_PEM_TYPES = ("ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY")
# Bounds on a cosign key's scrypt parameters (cosign uses N=32768, r=8, p=1): a file asking
# for more would make loading it take minutes or gigabytes.
SCRYPT_MAX_N = 1 << 20
SCRYPT_MAX_RP = 64
PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\s*(.*?)\s*-----END \1-----", re.DOTALL)


def _crypto() -> SimpleNamespace:
    """The ``cryptography`` parts used here, or one line saying how to install them."""
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
    except ImportError:
        raise BuildToolsError(
            "signing and verifying need the cryptography package, which is not installed",
            f"install the attest extra: {INSTALL}",
        ) from None
    return SimpleNamespace(
        ec=ec, hashes=hashes, serialization=serialization, InvalidSignature=InvalidSignature
    )


class PublicKey:
    """An ECDSA P-256 public key: checks signatures made over SHA-256 of the data."""

    def __init__(self, key: Any) -> None:
        self._key = key

    def verify(self, signature: bytes, data: bytes) -> bool:
        """Whether ``signature`` (DER ECDSA) is this key's over ``data``."""
        crypto = _crypto()
        try:
            self._key.verify(signature, data, crypto.ec.ECDSA(crypto.hashes.SHA256()))
        except (crypto.InvalidSignature, ValueError):
            return False
        return True

    def pem(self) -> bytes:
        """The key as cosign's ``cosign.pub`` holds it (SubjectPublicKeyInfo PEM)."""
        serialization = _crypto().serialization
        return self._key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def keyid(self) -> str:
        """``sha256:<hex>`` of the key's DER: names it in our layer annotations."""
        serialization = _crypto().serialization
        der = self._key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return "sha256:" + hashlib.sha256(der).hexdigest()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and other.pem() == self.pem()

    def __hash__(self) -> int:
        return hash(self.pem())


class SigningKey:
    """An ECDSA P-256 private key. Its repr names no key material."""

    def __init__(self, key: Any, source: str) -> None:
        self._key = key
        self.source = source  # where it came from, for messages: a path or the variable's name

    def sign(self, data: bytes) -> bytes:
        """A DER ECDSA signature over SHA-256 of ``data`` (what cosign makes and checks)."""
        crypto = _crypto()
        return self._key.sign(data, crypto.ec.ECDSA(crypto.hashes.SHA256()))

    def public_key(self) -> PublicKey:
        return PublicKey(self._key.public_key())

    def __repr__(self) -> str:
        return f"SigningKey(from {self.source})"


def _refuse(source: str, problem: str, fix: str) -> BuildToolsError:
    return BuildToolsError(f"signing key {source} {problem}", fix)


def _p256(key: Any, source: str, what: str) -> Any:
    ec = _crypto().ec
    if not isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) or not (
        isinstance(key.curve, ec.SECP256R1)
    ):
        curve = getattr(getattr(key, "curve", None), "name", type(key).__name__)
        raise BuildToolsError(
            f"{what} {source} is not an ECDSA P-256 key ({curve})",
            "make one with `cosign generate-key-pair` or "
            "`openssl ecparam -name prime256v1 -genkey | openssl pkcs8 -topk8 -nocrypt`",
        )
    return key


def _cosign_der(body: bytes, password: str, source: str) -> bytes:
    """The PKCS#8 DER inside cosign's encrypted key (JSON: scrypt parameters, secretbox)."""
    try:
        import nacl.exceptions
        import nacl.secret
    except ImportError:
        raise BuildToolsError(
            "a cosign key needs the PyNaCl package, which is not installed",
            f"install the attest extra: {INSTALL}",
        ) from None
    unreadable = _refuse(
        source, "is not a readable cosign key", "use the cosign.key that cosign wrote, unchanged"
    )
    try:
        box = json.loads(base64.b64decode(body, validate=False))
        kdf, cipher = box["kdf"], box["cipher"]
        params = kdf["params"]
        n, r, p = int(params["N"]), int(params["r"]), int(params["p"])
        salt = base64.b64decode(kdf["salt"])
        nonce = base64.b64decode(cipher["nonce"])
        sealed = base64.b64decode(box["ciphertext"])
        names = (kdf["name"], cipher["name"])
    except (ValueError, TypeError, KeyError, binascii.Error):
        raise unreadable from None
    if names != ("scrypt", "nacl/secretbox") or len(nonce) != nacl.secret.SecretBox.NONCE_SIZE:
        raise unreadable
    if not (1 < n <= SCRYPT_MAX_N and n & (n - 1) == 0 and 0 < r * p <= SCRYPT_MAX_RP):
        raise _refuse(
            source,
            f"asks for scrypt N={n}, r={r}, p={p}, beyond what cosign makes",
            "make a new key pair with `cosign generate-key-pair`",
        )
    if not password:
        raise _refuse(source, "is encrypted and COSIGN_PASSWORD is empty", "set COSIGN_PASSWORD")
    secret = hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, dklen=32, maxmem=256 * r * (n + p + 2)
    )
    try:
        return nacl.secret.SecretBox(secret).decrypt(sealed, nonce)
    except nacl.exceptions.CryptoError:
        raise _refuse(
            source,
            "cannot be decrypted with COSIGN_PASSWORD (wrong password, or a damaged key)",
            "set COSIGN_PASSWORD to the password the key was made with",
        ) from None


def parse_signing_key(data: bytes, password: str, source: str) -> SigningKey:
    """The P-256 key in PEM ``data`` (any of the accepted forms)."""
    crypto = _crypto()
    serialization = crypto.serialization
    block = PEM_BLOCK.search(data)
    if block is None:
        raise _refuse(source, "holds no PEM key", "give the PEM private key file (-----BEGIN …)")
    kind = block.group(1).decode()
    try:
        if kind in COSIGN_PEM_TYPES:
            der = _cosign_der(block.group(2), password, source)
            key = serialization.load_der_private_key(der, password=None)
        elif kind == "ENCRYPTED PRIVATE KEY":
            if not password:
                raise _refuse(
                    source, "is encrypted and COSIGN_PASSWORD is empty", "set COSIGN_PASSWORD"
                )
            key = serialization.load_pem_private_key(block.group(0), password.encode())
        elif kind in ("PRIVATE KEY", "EC PRIVATE KEY"):
            key = serialization.load_pem_private_key(block.group(0), password=None)
        else:
            raise _refuse(
                source,
                f"is a PEM {kind!r}, not a private key",
                "give the private key (cosign.key, or a PEM EC PRIVATE KEY / PRIVATE KEY)",
            )
    except (ValueError, TypeError):
        # cryptography's messages may quote the input: say what happened in our words only.
        wrong = "wrong COSIGN_PASSWORD, or " if kind == "ENCRYPTED PRIVATE KEY" else ""
        raise _refuse(
            source,
            f"cannot be read ({wrong}not a valid {kind})",
            "check the key file and COSIGN_PASSWORD",
        ) from None
    return SigningKey(_p256(key, source, "signing key"), source)


def load_signing_key(path: Path | None, env: Mapping[str, str]) -> SigningKey | None:
    """The configured signing key: the file at ``path``, else ``COSIGN_PRIVATE_KEY``'s PEM
    text; None when neither is set. Any problem is one line that names neither the password
    nor key bytes."""
    password = env.get(PASSWORD_ENV, "")
    if path is not None:
        source = str(path)
        try:
            if path.stat().st_size > KEY_LIMIT:
                raise _refuse(source, "is too large to be a PEM key", "give the key file")
            data = path.read_bytes()
        except OSError as exc:
            raise _refuse(
                source,
                f"cannot be read ({exc.strerror or type(exc).__name__})",
                "set buildtools.release.signing_key to a readable PEM key file, or leave it "
                f"empty (then {PRIVATE_KEY_ENV}, if set)",
            ) from None
    else:
        text = env.get(PRIVATE_KEY_ENV, "")
        if not text.strip():
            return None
        source = f"${PRIVATE_KEY_ENV}"
        data = text.encode()
    try:
        return parse_signing_key(data, password, source)
    except BuildToolsError as exc:
        raise exc.redact([password]) from None


def parse_verify_key(data: bytes, source: str) -> PublicKey:
    serialization = _crypto().serialization
    block = PEM_BLOCK.search(data)
    if block is None or block.group(1) != b"PUBLIC KEY":
        raise BuildToolsError(
            f"verify key {source} holds no PEM PUBLIC KEY",
            "give the public key (cosign.pub, or `openssl ec -pubout`)",
        )
    try:
        key = serialization.load_pem_public_key(block.group(0))
    except (ValueError, TypeError):
        raise BuildToolsError(
            f"verify key {source} is not a valid PEM public key", "check the key file"
        ) from None
    return PublicKey(_p256(key, source, "verify key"))


def load_verify_key(path: Path) -> PublicKey:
    """The PEM public key at ``path`` (cosign.pub); one line for any problem."""
    try:
        if path.stat().st_size > KEY_LIMIT:
            raise BuildToolsError(f"verify key {path} is too large to be a PEM key", "check it")
        data = path.read_bytes()
    except OSError as exc:
        raise BuildToolsError(
            f"verify key {path} cannot be read ({exc.strerror or type(exc).__name__})",
            "give a readable PEM public key file (--key, or buildtools.release.verify_key)",
        ) from None
    return parse_verify_key(data, str(path))
