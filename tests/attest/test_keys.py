"""Signing keys in every form users keep them, and one line for each that cannot be used."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from buildtools.attest import keys
from buildtools.errors import BuildToolsError
from tests.fixtures.signing import cosign_format, new_ec_key, pkcs8_pem, sec1_pem

PASSWORD = "correct horse battery staple"


def public_pem(key) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def one_line_without_secrets(exc: BuildToolsError, *secrets: bytes | str) -> str:
    text = str(exc)
    assert "\n" not in text and exc.fix
    for secret in secrets:
        shown = secret.decode(errors="replace") if isinstance(secret, bytes) else secret
        for line in shown.splitlines():
            if len(line) > 8 and "-----" not in line:
                assert line not in text
    return text


@pytest.mark.parametrize(
    ("form", "env"),
    [
        ("pkcs8", {}),
        ("sec1", {}),
        ("encrypted pkcs8", {"COSIGN_PASSWORD": PASSWORD}),
        ("cosign", {"COSIGN_PASSWORD": PASSWORD}),
        ("cosign (older label)", {"COSIGN_PASSWORD": PASSWORD}),
    ],
)
def test_each_form_loads_and_signs_what_its_public_key_verifies(tmp_path: Path, form, env) -> None:
    made = new_ec_key()
    data = {
        "pkcs8": lambda: pkcs8_pem(made),
        "sec1": lambda: sec1_pem(made),
        "encrypted pkcs8": lambda: pkcs8_pem(made, PASSWORD.encode()),
        "cosign": lambda: cosign_format(made, PASSWORD, n=1024),
        "cosign (older label)": lambda: cosign_format(made, PASSWORD, n=1024, kind="COSIGN"),
    }[form]()
    path = tmp_path / "signing.key"
    path.write_bytes(data)
    key = keys.load_signing_key(path, env)
    assert key is not None
    assert key.public_key().pem() == public_pem(made)
    signature = key.sign(b"payload")
    assert key.public_key().verify(signature, b"payload")
    assert not key.public_key().verify(signature, b"payload!")
    assert PASSWORD not in repr(key) and "PRIVATE" not in repr(key)


def test_cosigns_own_parameters_load(tmp_path: Path) -> None:
    # N=32768, r=8, p=1: what `cosign generate-key-pair` writes (32 MiB of scrypt memory).
    made = new_ec_key()
    path = tmp_path / "cosign.key"
    path.write_bytes(cosign_format(made, PASSWORD))
    key = keys.load_signing_key(path, {"COSIGN_PASSWORD": PASSWORD})
    assert key is not None and key.public_key().pem() == public_pem(made)


def test_the_key_comes_from_cosign_private_key_when_no_path_is_set() -> None:
    made = new_ec_key()
    env = {
        "COSIGN_PRIVATE_KEY": cosign_format(made, PASSWORD, n=1024).decode(),
        "COSIGN_PASSWORD": PASSWORD,
    }
    key = keys.load_signing_key(None, env)
    assert key is not None and key.public_key().pem() == public_pem(made)
    assert key.source == "$COSIGN_PRIVATE_KEY"


def test_no_path_and_no_variable_is_no_key() -> None:
    assert keys.load_signing_key(None, {}) is None
    assert keys.load_signing_key(None, {"COSIGN_PRIVATE_KEY": "  \n"}) is None


def test_a_configured_path_wins_over_the_variable(tmp_path: Path) -> None:
    chosen, other = new_ec_key(), new_ec_key()
    path = tmp_path / "k.pem"
    path.write_bytes(pkcs8_pem(chosen))
    key = keys.load_signing_key(path, {"COSIGN_PRIVATE_KEY": pkcs8_pem(other).decode()})
    assert key is not None and key.public_key().pem() == public_pem(chosen)


def bad(tmp_path: Path, data: bytes | None, env: dict[str, str]) -> BuildToolsError:
    path = tmp_path / "signing.key"
    if data is not None:
        path.write_bytes(data)
    with pytest.raises(BuildToolsError) as caught:
        keys.load_signing_key(path, env)
    return caught.value


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing file", "cannot be read"),
        ("wrong cosign password", "cannot be decrypted with COSIGN_PASSWORD"),
        ("no cosign password", "COSIGN_PASSWORD is empty"),
        ("wrong pkcs8 password", "wrong COSIGN_PASSWORD"),
        ("no pkcs8 password", "COSIGN_PASSWORD is empty"),
        ("P-384", "not an ECDSA P-256 key (secp384r1)"),
        ("RSA", "not an ECDSA P-256 key"),
        ("public key", "not a private key"),
        ("not PEM", "holds no PEM key"),
        ("damaged PEM", "cannot be read (not a valid PRIVATE KEY)"),
        ("damaged cosign box", "is not a readable cosign key"),
        ("huge scrypt cost", "beyond what cosign makes"),
    ],
)
def test_an_unusable_key_is_one_line_naming_neither_password_nor_key(
    tmp_path: Path, case: str, expected: str
) -> None:
    made = new_ec_key()
    wrong = {"COSIGN_PASSWORD": "not-" + PASSWORD}
    right = {"COSIGN_PASSWORD": PASSWORD}
    cosign_key = cosign_format(made, PASSWORD, n=1024)
    data, env = {
        "missing file": (None, right),
        "wrong cosign password": (cosign_key, wrong),
        "no cosign password": (cosign_key, {}),
        "wrong pkcs8 password": (pkcs8_pem(made, PASSWORD.encode()), wrong),
        "no pkcs8 password": (pkcs8_pem(made, PASSWORD.encode()), {}),
        "P-384": (pkcs8_pem(new_ec_key(ec.SECP384R1())), {}),
        "RSA": (pkcs8_pem(rsa.generate_private_key(65537, 2048)), {}),
        "public key": (public_pem(made), {}),
        "not PEM": (b"hello", {}),
        "damaged PEM": (pkcs8_pem(made).replace(b"M", b"N", 3), {}),
        "damaged cosign box": (cosign_key.replace(b"ey", b"xx", 1), right),
        "huge scrypt cost": (cosign_key, right),
    }[case]
    if case == "huge scrypt cost":
        data = _with_scrypt_n(data, 1 << 30)
    text = one_line_without_secrets(bad(tmp_path, data, env), *env.values(), data or b"")
    assert expected in text
    assert str(tmp_path / "signing.key") in text


def _with_scrypt_n(pem: bytes, n: int) -> bytes:
    """The same cosign key asking for another scrypt cost (a hostile or broken file)."""
    label, body = pem.split(b"\n", 1)
    inner = body.rsplit(b"-----END", 1)[0]
    box = json.loads(base64.b64decode(inner))
    box["kdf"]["params"]["N"] = n
    encoded = base64.encodebytes(json.dumps(box).encode())
    return label + b"\n" + encoded + pem[pem.index(b"-----END") :]


def test_an_unusable_key_in_the_variable_is_named_by_the_variable() -> None:
    env = {"COSIGN_PRIVATE_KEY": "garbage", "COSIGN_PASSWORD": PASSWORD}
    with pytest.raises(BuildToolsError, match=r"\$COSIGN_PRIVATE_KEY holds no PEM key"):
        keys.load_signing_key(None, env)


def test_the_verify_key_is_a_pem_public_key(tmp_path: Path) -> None:
    made = new_ec_key()
    path = tmp_path / "cosign.pub"
    path.write_bytes(public_pem(made))
    public = keys.load_verify_key(path)
    assert public.pem() == public_pem(made)
    signer = keys.parse_signing_key(pkcs8_pem(made), "", "test")
    assert public == signer.public_key() and public.keyid().startswith("sha256:")
    path.write_bytes(pkcs8_pem(made))
    with pytest.raises(BuildToolsError, match="holds no PEM PUBLIC KEY"):
        keys.load_verify_key(path)
    with pytest.raises(BuildToolsError, match="cannot be read"):
        keys.load_verify_key(tmp_path / "absent.pub")


def test_without_the_attest_extra_a_key_is_one_line_with_the_pip_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fault this environment cannot cause for real (the extra is installed): imports of
    # cryptography fail as they would without it.
    path = tmp_path / "k.pem"
    path.write_bytes(pkcs8_pem(new_ec_key()))
    for name in list(sys.modules):
        if name == "cryptography" or name.startswith("cryptography."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "cryptography", None)
    with pytest.raises(BuildToolsError) as caught:
        keys.load_signing_key(path, {})
    assert "pip install 'lara-buildtools[attest]'" in str(caught.value)
