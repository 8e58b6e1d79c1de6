"""Cache sources for a build on a fresh machine: earlier images of the same repositories.

Every CI job starts with an empty Docker cache, so without this each run rebuilds every layer.
Before building, the earlier images that are most likely to share layers with this build are
looked up in the configured registries (the first that has any), pulled, and handed to the
builder as ``cache_from``: this commit's ``sha-`` tag, this branch's tag, each release
branch's tag, then the highest release (``cache.from``, an ordered list of tag templates).

:func:`candidates` is pure (what ``--dry-run`` shows); :func:`resolve` talks to the registries and
the engine. A registry that is down, refuses, or has none of the sources is one warning line
and a cold build, never a failed build.

A lookup only saves time, so it must not cost much: one attempt per registry with a short
timeout and no retries (no backoff sleep on a name that does not resolve), and only registries
the user named (``cache.registries``, else ``release.registries``): the Docker Hub that a release
falls back to when none is named is not asked. A registry named only in ``cache.registries``
gets its own ``DOCKER_USERNAME_<HOST>``/``DOCKER_PASSWORD_<HOST>`` or no login, never the
release registries' ``DOCKER_USERNAME``/``DOCKER_PASSWORD``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import docker
import docker.errors
import requests

from buildtools.config.registry_address import Registry, parse_registry
from buildtools.config.schema import Settings
from buildtools.engine import images
from buildtools.errors import BuildToolsError
from buildtools.facts.versions import docker_version, parse_version
from buildtools.plan import tags
from buildtools.plan.metadata import Metadata
from buildtools.registry import credentials
from buildtools.registry.retry import RetryPolicy

LOCAL_SOURCES = 5  # local images of the repository kept as cache sources on a warm machine
# One quick attempt per registry: a miss costs a cold build, never a wait.
LOOKUP_RETRY = RetryPolicy(retries=0)
LOOKUP_TIMEOUT = 5.0


@dataclass(frozen=True)
class Candidate:
    """A tag that may hold an earlier image of a repository, and why it is a good source."""

    tag: str
    reason: str


def candidates(settings: Settings, meta: Metadata, prefix: str = "") -> list[Candidate]:
    """The tags to look for, best first, from ``cache.from`` (pure). Branch tags are the ones
    the release pushes for that branch (:meth:`Metadata.branch_tag`), so a lookup finds them.

    ``prefix`` names a multi-stage build's stage images (``cache-<stage>-``): they exist only
    per branch, so ``{sha}`` and ``{release}`` give nothing for them.
    """
    info = meta.info
    found: list[Candidate] = []

    def add(tag: str, reason: str) -> None:
        if tag and tag not in (c.tag for c in found):
            found.append(Candidate(tag, reason))

    for template in settings.cache_from:
        if template == "{sha}":
            if not prefix:
                add(meta.sha_tag, f"this commit {info.short_commit}")
        elif template == "{branch}":
            branch = meta.cache_branch
            if branch:
                add(tags.prefixed(prefix, meta.branch_tag(branch)), f"branch {branch}")
        elif template == "{release_branches}":
            for branch in settings.release.branches:
                if not any(ch in branch for ch in "*?["):
                    add(tags.prefixed(prefix, meta.branch_tag(branch)), f"release branch {branch}")
        elif template == "{release}":
            stable = [v for v in map(parse_version, info.known_versions) if v and not v.prerelease]
            if stable and not prefix:
                highest = max(stable)
                add(docker_version(highest), f"highest release {highest}")
        elif "{" not in template:
            add(tags.prefixed(prefix, template), "configured")
    return found


def stage_prefix(stage: str) -> str:
    return f"cache-{tags.sanitize(stage)}-"


@dataclass
class Resolved:
    """The cache sources found for one image, pulled and ready for ``cache_from``."""

    image: str
    refs: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)
    bytes_pulled: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "image": self.image,
            "sources": [{"ref": r, "reason": self.reasons.get(r, "")} for r in self.refs],
            "bytes_pulled": self.bytes_pulled,
        }


def _pull(client: docker.DockerClient, ref: str, tag: str, auth: dict[str, str] | None) -> int:
    """Pull ``ref:tag``; the compressed bytes downloaded (0 when every layer was here)."""
    sizes: dict[str, int] = {}
    for line in client.api.pull(ref, tag=tag, stream=True, decode=True, auth_config=auth):
        if "error" in line or "errorDetail" in line:
            detail = line.get("errorDetail") or {}
            raise docker.errors.APIError(str(detail.get("message") or line.get("error")))
        progress = line.get("progressDetail") or {}
        if line.get("status") == "Downloading" and line.get("id"):
            sizes[line["id"]] = max(sizes.get(line["id"], 0), int(progress.get("total") or 0))
    return sum(sizes.values())


def registries(settings: Settings) -> list[Registry]:
    """The registries asked for cache sources, in order: ``cache.registries``, else those
    named in ``release.registries``; none when neither names one (nobody asked)."""
    if not settings.cache_pull:
        return []
    # Both keys' entries were checked when the settings were loaded.
    entries = settings.cache_registries or settings.release.registries
    return [parse_registry(entry) for entry in entries]


def release_registries(settings: Settings) -> set[str]:
    """The names of the registries a release pushes to (Docker Hub when none is named): the
    only ones ``DOCKER_USERNAME``/``DOCKER_PASSWORD`` belong to."""
    return {parse_registry(entry).name for entry in settings.release.registries_or_default}


def local_sources(client: docker.DockerClient, repository: str) -> list[str]:
    """The newest local images of ``repository`` (a warm machine's own cache stays usable:
    with ``cache_from`` the classic builder only uses what descends from a source)."""
    try:
        found = client.images.list(name=repository)
    except docker.errors.APIError:
        return []
    found.sort(key=lambda image: image.attrs.get("Created", ""), reverse=True)
    return [image.id for image in found[:LOCAL_SOURCES]]


def resolve(
    client: docker.DockerClient,
    settings: Settings,
    meta: Metadata,
    env: Mapping[str, str],
    repository: str,
    image: str,
    *,
    prefix: str = "",
    say: Callable[[str], None] = print,
    retry: RetryPolicy | None = None,
) -> Resolved:
    """Find the candidates in the first registry that has any, pull them; warnings via ``say``."""
    result = Resolved(image)
    asked = registries(settings)
    wanted = candidates(settings, meta, prefix) if asked else []
    if not wanted:
        return result
    from buildtools.registry.client import RegistryClient  # only when a registry is asked

    retry = retry or LOOKUP_RETRY
    problems: list[str] = []
    secrets: list[str] = []
    releasing = release_registries(settings)
    for registry in asked:
        # A cache-only registry may be anyone's mirror: the release login is not its to see.
        login = credentials.for_registry(registry.name, env, release=registry.name in releasing)
        secrets += [login.password] if login else []
        api = RegistryClient(registry, login, retry, timeout=LOOKUP_TIMEOUT)
        try:
            # Each tag's digest once: sources that are the same image are pulled once.
            present = [(c, d) for c in wanted if (d := api.digest(repository, c.tag))]
        except BuildToolsError as exc:
            problems.append(f"{registry.name}: {exc.problem}")
            continue
        if not present:
            continue
        ref = registry.push_name(repository)
        auth = login.auth_config() if login else None
        pulled_digests: set[str] = set()
        for candidate, digest in present:
            if digest in pulled_digests:
                continue
            try:
                result.bytes_pulled += _pull(client, ref, candidate.tag, auth)
            except (docker.errors.APIError, requests.RequestException) as exc:
                problems.append(f"{ref}:{candidate.tag}: {str(exc).splitlines()[0]}")
                continue
            pulled_digests.add(digest)
            full = f"{ref}:{candidate.tag}"
            result.refs.append(full)
            result.reasons[full] = candidate.reason
        break
    if problems:
        text = credentials.redact("; ".join(problems), secrets)
        say(f"warning: cache for {image}: {text}; building without those sources")
    elif not result.refs:
        tried = ", ".join(c.tag for c in wanted)
        say(f"cache for {image}: no earlier image ({tried}) in {asked[0].name}")
    return result


def sources(resolved: Resolved | None, local: Sequence[str]) -> tuple[str, ...]:
    """``cache_from`` for one build: pulled sources first, then the local images.

    Nothing pulled means no ``cache_from`` at all: the engine's own cache then works as
    always (a source restores cached steps under new image IDs).
    """
    pulled = list(resolved.refs) if resolved else []
    return tuple(dict.fromkeys([*pulled, *local])) if pulled else ()


def served(
    client: docker.DockerClient, image_id: str, base: str, refs: Sequence[str]
) -> dict[str, int]:
    """How many of the built image's steps (above its base) each source holds: the length of
    their shared history. Only the best source is credited; ties go to the earlier one. An image
    the engine no longer has counts as no steps."""

    def history(image: str) -> list[str]:
        try:
            return images.history_steps(client, image)
        except docker.errors.APIError:
            return []

    built = history(image_id)
    base_len = len(history(base)) if base else 0
    best: tuple[str, int] | None = None
    for ref in refs:
        theirs = history(ref)
        shared = 0
        for mine, other in zip(built, theirs, strict=False):
            if mine != other:
                break
            shared += 1
        steps = max(0, shared - base_len)
        if steps and (best is None or steps > best[1]):
            best = (ref, steps)
    return {best[0]: best[1]} if best else {}
