"""Which files an image is built from, and whether a build record proves an image is this
commit's: pure decisions over plain values.

A build that can be released reads the commit's own tree (:data:`COMMIT`); a working-tree
build (:data:`WORKTREE`) is for local development only: asked for (``--worktree``), or the
only one possible (a dirty tree, a context outside the checkout). It is labelled dirty, gets no
commit tag, and its record says ``worktree``, so no release ever takes it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from buildtools.errors import BuildToolsError
from buildtools.plan.build_record import COMMIT, WORKTREE, BuildRecord

WORKTREE_NOTE = "building the working tree: not releasable"


@dataclass(frozen=True)
class Source:
    """Where a build's files come from (:data:`COMMIT` or :data:`WORKTREE`) and why."""

    kind: str
    why: str = ""

    @property
    def commit_tree(self) -> bool:
        return self.kind == COMMIT


def choose(
    *, releasing: bool, worktree: bool, dirty: bool, in_checkout: bool, context: str = ""
) -> Source:
    """The source of a build. A release (``releasing``) is always the commit's tree, and
    refused when that cannot be (a context outside the checkout); otherwise the working tree
    when asked for, dirty, or outside the checkout."""
    if releasing:
        if not in_checkout:
            raise BuildToolsError(
                f"the build context {context or '(not in git)'} is not in the git checkout: a "
                "release is built from the commit's own files",
                "set buildtools.app.context to a folder of the checkout, and build there",
            )
        return Source(COMMIT)
    if worktree:
        return Source(WORKTREE, "--worktree")
    if not in_checkout:
        return Source(WORKTREE, f"the context {context} is outside the git checkout")
    if dirty:
        return Source(WORKTREE, "the working tree has uncommitted changes")
    return Source(COMMIT)


def left_out_note(count: int) -> str | None:
    """The one warning for untracked files a commit-tree build leaves out (None for none)."""
    if not count:
        return None
    files = "file" if count == 1 else "files"
    return (
        f"{count} untracked {files} in the build context left out: the image is built from "
        "the commit (commit them, or build the working tree with invoke build --worktree)"
    )


def digest(text: str) -> str:
    """``sha256:<hex>`` of a Dockerfile's text as built (UTF-8)."""
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Wanted:
    """What a release would build an image from: the records of local images must say the
    same. ``build_args`` are compared for the keys given (the metadata and the app's own
    args; the base image is compared as the engine resolved it, in ``base_image``, when set)."""

    image: str
    commit: str
    context_tree: str = ""
    dockerfile_digest: str = ""
    build_args: Mapping[str, str] | None = None


def mismatch(record: BuildRecord | None, wanted: Wanted) -> str | None:
    """Why ``record`` does not prove its image is what a release of ``wanted`` would build,
    or None when it does. Strict on what makes the content: the commit, a commit-tree build,
    the context's tree, the Dockerfile, the build args asked for."""
    if record is None:
        return "no build record names it (a build elsewhere, or changed since: docker commit?)"
    if record.image != wanted.image:
        return f"its record is of the {record.image} image"
    if record.commit != wanted.commit:
        return f"its record says commit {record.commit[:7] or 'unknown'}"
    if not record.releasable:
        return "its record says it was built from the working tree"
    if wanted.context_tree and record.context_tree != wanted.context_tree:
        return "built from another build context"
    if wanted.dockerfile_digest and record.dockerfile_digest != wanted.dockerfile_digest:
        return "built from another Dockerfile"
    for key, value in (wanted.build_args or {}).items():
        if record.build_args.get(key) != value:
            return f"built with another {key}"
    return None


def keyless_promotable(
    record: BuildRecord | None, config_digest: str, commit: str, smoke_needed: bool
) -> str | None:
    """Why a registry image whose config digest is ``config_digest`` may not be promoted
    without keys, or None: a record on this machine of a commit-tree build of ``commit`` must
    name exactly that digest (and, when the release needs one, a passed smoke test)."""
    if record is None or record.image_id != config_digest:
        return (
            f"no build record here names its config {config_digest[:19]}… (labels are no "
            "proof: anyone who can push can write them)"
        )
    if record.commit != commit or not record.releasable:
        return "its build record is not a commit-tree build of this commit"
    if smoke_needed and not record.smoke_test:
        return "its build record has no passed smoke test"
    return None


__all__ = ["COMMIT", "WORKTREE", "Source", "Wanted", "choose", "keyless_promotable", "mismatch"]
