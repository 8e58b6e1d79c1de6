"""A build's Docker tags, OCI labels and version.yml: pure functions of its BuildInfo.

Making them reads nothing: after the registries told which releases exist, a task makes them
again with those versions added, without reading git or the CI environment again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from buildtools.config.schema import Settings
from buildtools.facts.buildinfo import BuildInfo
from buildtools.plan import labels, rollback, versionfile
from buildtools.plan.tags import ImageTag, TagPolicy


@dataclass(frozen=True)
class Metadata:
    """A build's facts, Docker tags, OCI labels and warnings: what build and release use, and
    the policy the tags came from, which also names the build's cache and stage images."""

    info: BuildInfo
    tags: tuple[ImageTag, ...]
    labels: Mapping[str, str]
    warnings: tuple[str, ...]
    policy: TagPolicy = field(default_factory=TagPolicy)

    @property
    def tag_names(self) -> list[str]:
        return [t.name for t in self.tags]

    @property
    def sha_tag(self) -> str:
        """This commit's immutable tag (``sha-abc1234``), also for builds the policy tags not."""
        return self.policy.sha_tag(self.info.commit)

    @property
    def cache_branch(self) -> str | None:
        """The branch whose images this build reuses and whose stage images it makes: its own,
        else (a pull request) the branch it targets."""
        return self.info.branch or self.info.base_branch

    def branch_tag(self, branch: str) -> str:
        """The tag a build of ``branch`` is pushed under (:meth:`TagPolicy.branch_tag`)."""
        return self.policy.branch_tag(branch)

    def local_refs(self, repository: str) -> tuple[str, ...]:
        """Local image references, one per tag (``sha-<commit>``, with the configured prefix,
        when the policy gives none): how ``invoke build`` names its images and how release, up
        and ci find them again."""
        names = self.tag_names or [self.sha_tag]
        return tuple(f"{repository}:{name}" for name in names)

    def version_data(self) -> dict[str, Any]:
        """The content of version.yml (render it with :func:`versionfile.render`)."""
        return versionfile.as_dict(self.info, self.tags)


def policy_of(settings: Settings) -> TagPolicy:
    return TagPolicy(settings.sha_prefix, settings.extra_tags, settings.pull_request_tags)


def of_info(
    settings: Settings,
    info: BuildInfo,
    warnings: Iterable[str] = (),
    known_versions: Iterable[str] = (),
    held: Mapping[str, Sequence[str]] | None = None,
    force: bool = False,
) -> Metadata:
    """Tags, labels and warnings of ``info`` under ``settings``.

    ``known_versions`` (e.g. tags already in the registry) add to git's when deciding whether
    ``1.2``, ``1`` and ``latest`` move; ``held``: floating tags a rollback marker holds, and
    where (left out unless ``force``, see :func:`buildtools.plan.rollback.hold`).
    """
    policy = policy_of(settings)
    chosen = policy.choose(info, known_versions)
    tags, notes = rollback.hold(chosen.tags, held or {}, force)
    oci = labels.oci_labels(info, settings.title, settings.source_url, tags)
    return Metadata(info, tags, oci, (*warnings, *chosen.warnings, *notes), policy)


class Facts(Protocol):
    """What a build's metadata is made of: one task's settings, BuildInfo and warnings
    (:class:`buildtools.facts.read.Run`)."""

    settings: Settings
    info: BuildInfo
    warnings: tuple[str, ...]


def of_run(
    run: Facts,
    known_versions: tuple[str, ...] | list[str] = (),
    held: Mapping[str, Sequence[str]] | None = None,
    force: bool = False,
) -> Metadata:
    """The metadata of one task invocation's facts, with the releases the registries hold
    (and the floating tags a rollback holds there)."""
    return of_info(run.settings, run.info, run.warnings, known_versions, held, force)
