"""What an image build is asked and what it answers, and the interface every builder offers.

:class:`BuildSpec` and :class:`BuiltImage` are plain values, and :class:`Builder` and
:class:`BuildReporter` only shapes: the plans (``--dry-run``), the summaries and the pipeline
name them without importing a builder, and a BuildKit/``docker buildx`` builder slots in beside
the classic one (:mod:`buildtools.engine.images`) by implementing :class:`Builder`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from buildtools.plan.build_record import BuildRecord

if TYPE_CHECKING:
    from buildtools.facts.source_tree import CommitTree


@dataclass(frozen=True)
class BuildSpec:
    """Everything one image build needs; plain values so it can be printed by --dry-run."""

    name: str
    dockerfile: Path
    context: Path
    tags: tuple[str, ...]
    buildargs: Mapping[str, str]
    labels: Mapping[str, str]
    nocache: bool = False
    # Images whose layers may serve as cache (pulled beforehand); the classic builder uses
    # only the final stage of each.
    cache_from: tuple[str, ...] = ()
    # Build only up to this named stage (a multi-stage Dockerfile's earlier stages).
    target: str = ""
    # The commit's tree to send as the context (a releasable build); None: ``context`` as it
    # is on disk (a working-tree build, or a generated context such as the sidecar's).
    source: CommitTree | None = None
    # The Dockerfile's text as built (read from the commit for a commit-tree build); None:
    # read from ``dockerfile``.
    dockerfile_text: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dockerfile": str(self.dockerfile),
            "context": str(self.context),
            "tags": list(self.tags),
            "buildargs": dict(self.buildargs),
            "labels": dict(self.labels),
            "cache_from": list(self.cache_from),
            **({"target": self.target} if self.target else {}),
            "source": f"commit {self.source.commit[:7]}" if self.source else "directory",
        }


@dataclass(frozen=True)
class BuiltImage:
    name: str
    id: str
    tags: tuple[str, ...]
    size: int
    steps: int
    cached_steps: int
    seconds: float
    # Cache sources and the steps each held: (reference, why it was a source, steps).
    cache: tuple[tuple[str, str, int], ...] = ()
    # What made it (stored beside the checkout, :mod:`buildtools.engine.records`); None for a
    # stage image, which is never released.
    record: BuildRecord | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "id": self.id,
            "tags": list(self.tags),
            "size": self.size,
            "steps": self.steps,
            "cached_steps": self.cached_steps,
            "seconds": round(self.seconds, 2),
            "cache": [{"ref": r, "reason": why, "steps": n} for r, why, n in self.cache],
            "source": self.record.source if self.record else None,
        }


class Builder(Protocol):
    """Builds one image from a spec, reporting each step; raises BuildToolsError on failure."""

    def build(self, spec: BuildSpec, reporter: BuildReporter | None = None) -> BuiltImage: ...


class BuildReporter(Protocol):
    """What a build tells whoever watches it (a terminal display, or nothing)."""

    def step(self, image: str, number: int, total: int, instruction: str) -> None: ...

    def step_done(self, image: str, number: int, cached: bool, seconds: float) -> None: ...

    def output(self, image: str, line: str) -> None: ...


class SilentReporter:
    def step(self, image: str, number: int, total: int, instruction: str) -> None:
        pass

    def step_done(self, image: str, number: int, cached: bool, seconds: float) -> None:
        pass

    def output(self, image: str, line: str) -> None:
        pass
