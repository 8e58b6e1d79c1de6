"""OCI image labels, so ``docker inspect`` tells what an image is without version.yml.

Standard keys follow the OCI image-spec annotations; the facts OCI has no key for (branch,
dirty tree, CI build) go under ``org.concord.lara.build.*``. Unknown facts are left out rather
than written as empty strings.
"""

from __future__ import annotations

from collections.abc import Iterable

from buildtools.facts.buildinfo import BuildInfo
from buildtools.plan.tags import ImageTag

OCI = "org.opencontainers.image."
BUILD = "org.concord.lara.build."
# The OCI keys :func:`oci_labels` writes (every BUILD key is ours too).
OCI_KEYS = ("created", "revision", "version", "source", "url", "title", "ref.name")
# Whether the image is pushed only after a passing smoke test. Labels are baked before the
# smoke test runs, but `invoke ci` pushes only after it passed, so the value is true of every
# registry copy; a promotion keeps the tested image's value (a fact about that image).
SMOKE_TEST = BUILD + "smoke-test"
SMOKE_PASSED = "passed-before-push"
SMOKE_NONE = "none"


def owned(key: str) -> bool:
    """Whether :func:`oci_labels` may write ``key``: a release replaces all of them."""
    return key.startswith(BUILD) or key in {OCI + name for name in OCI_KEYS}


def oci_labels(
    info: BuildInfo, title: str, source_url: str, tags: Iterable[ImageTag | str] = ()
) -> dict[str, str]:
    """Labels for an image of this build.

    ``ref.name`` is the first (most specific) image tag, as image layouts use it.
    """
    names = [t.name if isinstance(t, ImageTag) else t for t in tags]
    values: dict[str, object] = {
        OCI + "created": info.build_date,
        OCI + "revision": info.commit,
        OCI + "version": info.version,
        OCI + "source": source_url,
        OCI + "url": source_url,
        OCI + "title": title,
        OCI + "ref.name": names[0] if names else None,
        # Every tag this build's version.yml lists: a release checks the image it pushes was
        # built for exactly the tags it pushes (a backport's image must not claim `latest`).
        BUILD + "tags": ",".join(names),
        BUILD + "branch": info.branch,
        BUILD + "tag": info.tag,
        BUILD + "dirty": "true" if info.dirty else "false",
        SMOKE_TEST: SMOKE_PASSED if info.smoke_gated else SMOKE_NONE,
        BUILD + "pull-request": info.pull_request,
        BUILD + "ci": info.ci,
        BUILD + "number": info.build_number,
        BUILD + "url": info.build_url,
    }
    return {key: str(value) for key, value in values.items() if value not in (None, "")}
