"""A build's Docker tags, OCI labels and version.yml: pure functions of its BuildInfo.

Planning reads nothing: after the registries told which releases exist, a task re-plans with
those versions added, without reading git or the CI environment again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from buildtools.config.schema import Settings
from buildtools.facts.buildinfo import BuildInfo
from buildtools.plan import labels, tags, versionfile
from buildtools.plan.tags import ImageTag


@dataclass(frozen=True)
class Metadata:
    """A build's facts, Docker tags, OCI labels and warnings: what build and release use."""

    info: BuildInfo
    tags: tuple[ImageTag, ...]
    labels: Mapping[str, str]
    warnings: tuple[str, ...]
    # buildtools.tags.sha_prefix: names the local image of a build the policy gives no tag.
    sha_prefix: str = tags.SHA_PREFIX

    @property
    def tag_names(self) -> list[str]:
        return [t.name for t in self.tags]

    @property
    def sha_tag(self) -> str:
        """This commit's immutable tag (``sha-abc1234``), also for builds the policy tags not."""
        return tags.sha_tag_name(self.info.commit, self.sha_prefix)

    def local_refs(self, repository: str) -> tuple[str, ...]:
        """Local image references, one per tag (``sha-<commit>``, with the configured prefix,
        when the policy gives none): how ``invoke build`` names its images and how release, up
        and ci find them again."""
        names = self.tag_names or [self.sha_tag]
        return tuple(f"{repository}:{name}" for name in names)

    def version_data(self) -> dict[str, Any]:
        """The content of version.yml (render it with :func:`versionfile.render`)."""
        return versionfile.as_dict(self.info, self.tags)


def plan(
    settings: Settings,
    info: BuildInfo,
    warnings: Iterable[str] = (),
    known_versions: Iterable[str] = (),
) -> Metadata:
    """Tags, labels and warnings of ``info`` under ``settings``.

    ``known_versions`` (e.g. tags already in the registry) add to git's when deciding whether
    ``1.2``, ``1`` and ``latest`` move.
    """
    tag_plan = tags.plan(
        info,
        known_versions=known_versions,
        extra=settings.extra_tags,
        pull_requests=settings.pull_request_tags,
        sha_prefix=settings.sha_prefix,
    )
    oci = labels.oci_labels(info, settings.title, settings.source_url, tag_plan.tags)
    return Metadata(
        info, tag_plan.tags, oci, tuple(warnings) + tag_plan.warnings, settings.sha_prefix
    )


class Facts(Protocol):
    """What a plan is made of: one task's settings, BuildInfo and warnings
    (:class:`buildtools.facts.read.Run`)."""

    settings: Settings
    info: BuildInfo
    warnings: tuple[str, ...]


def of_run(run: Facts, known_versions: tuple[str, ...] | list[str] = ()) -> Metadata:
    """The plan of one task invocation's facts, with the releases the registries hold."""
    return plan(run.settings, run.info, run.warnings, known_versions)
