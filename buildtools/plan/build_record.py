"""What made an image: the record a build leaves beside the image, outside the engine.

Labels are claims anyone can write (``docker commit`` keeps them); an image ID is the digest
of the image's config, so a record naming the ID binds exactly that content to its inputs. A
release uses a local image only when a record of a commit-tree build of this commit names its
ID; provenance is made from the same record. Plain values: reading and writing the records is
the job of whoever stores them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

# Where the build context came from.
COMMIT = "commit"  # the files git has at the commit (``.dockerignore`` applied): releasable
WORKTREE = "worktree"  # the directory as it is on disk: local development only


@dataclass(frozen=True)
class BuildRecord:
    """One image build's inputs and result.

    ``context_tree``: the git tree ID of the context directory at ``commit`` (empty for a
    working-tree build); ``dockerfile_digest``: ``sha256:<hex>`` of the Dockerfile's bytes as
    built; ``build_args``: as passed (never a secret); ``base_image``: the base as the engine
    resolved it (an image ID or a digest reference); ``image_id``: the built image's ID
    (``sha256:<hex>``, the digest of its config); ``smoke_test``: what the smoke test that
    passed with this image said (empty when none ran)."""

    image: str  # app / nginx
    repository: str
    image_id: str
    commit: str
    source: str  # COMMIT / WORKTREE
    context_tree: str
    dockerfile_digest: str
    build_args: Mapping[str, str]
    base_image: str
    created: str  # RFC 3339, UTC
    smoke_test: Mapping[str, Any] = field(default_factory=dict)

    @property
    def releasable(self) -> bool:
        return self.source == COMMIT and bool(self.context_tree)

    def as_dict(self) -> dict[str, Any]:
        found = asdict(self)
        found["build_args"] = dict(self.build_args)
        found["smoke_test"] = dict(self.smoke_test)
        return found

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True, indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BuildRecord:
        """A record as :meth:`as_dict` wrote it; ``ValueError`` for anything else."""
        names = {f for f in cls.__dataclass_fields__}
        missing = names - set(data) - {"smoke_test"}
        if missing or not set(data) <= names:
            raise ValueError(f"not a build record: fields {sorted(set(data) ^ names)}")
        values = dict(data)
        for key in names - {"build_args", "smoke_test"}:
            if not isinstance(values[key], str):
                raise ValueError(f"not a build record: {key} is not a string")
        args = values["build_args"]
        if not isinstance(args, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in args.items()
        ):
            raise ValueError("not a build record: build_args is not a string map")
        if not isinstance(values.get("smoke_test", {}), dict):
            raise ValueError("not a build record: smoke_test is not a map")
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> BuildRecord:
        return cls.from_dict(json.loads(text))
