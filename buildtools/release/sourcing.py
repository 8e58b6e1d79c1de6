"""A task's build source, decided before the first step: the commit's tree or the directory.

Reads git (the commit's tree under the context, its Dockerfile, the untracked files left
out) and hands the choice to :func:`buildtools.plan.build_source.choose`. A working-tree
build's facts say ``dirty`` (its labels, version and tag then say so too); a commit-tree
build's Dockerfile is the commit's own when the checkout holds it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from buildtools.engine import context as commit_context
from buildtools.engine import images, records
from buildtools.errors import BuildToolsError
from buildtools.facts import source_tree
from buildtools.facts.buildinfo import as_worktree
from buildtools.facts.read import Run
from buildtools.facts.source_tree import CommitTree
from buildtools.plan import build_source
from buildtools.plan.build_record import WORKTREE
from buildtools.plan.build_source import Source


@dataclass(frozen=True)
class Sourced:
    """What a build is made from: the choice, the commit's tree (None for the directory), the
    app Dockerfile's text as it will be built, the record store, and the lines to say."""

    run: Run
    source: Source
    tree: CommitTree | None
    dockerfile_text: str | None
    store: records.Store | None
    notes: tuple[str, ...] = ()


def commit_dockerfile(tree: CommitTree, dockerfile: Path) -> str | None:
    """The Dockerfile a commit-tree build uses: the commit's, when it lies in the checkout (None
    when the checkout has it but the commit does not); else the file itself."""
    if source_tree.inside(tree.root, dockerfile) is None:
        return images.read_dockerfile(dockerfile)  # outside the repository: as it is
    return source_tree.read_file(tree, tree.root, dockerfile)


def decide(
    run: Run,
    *,
    context: Path | None,
    dockerfile: Path | None,
    releasing: bool,
    worktree: bool = False,
    app: bool = True,
) -> Sourced:
    """The source of this task's app build (``app`` False: the sidecar alone, which is
    generated and needs none), read from git; a working-tree build's facts marked dirty."""
    settings = run.settings
    store = records.Store.of(settings.repo)
    folder = context or settings.app.context
    root = source_tree.checkout_root(settings.repo)
    in_checkout = root is not None and source_tree.inside(root, folder) is not None
    chosen = build_source.choose(
        releasing=releasing,
        worktree=worktree,
        dirty=run.info.dirty,
        in_checkout=in_checkout,
        context=str(folder),
    )
    if not chosen.commit_tree:
        return _worktree(run, chosen, store)
    if not app:
        return Sourced(run, chosen, None, None, store)
    tree = source_tree.read(settings.repo, run.info.commit, folder)
    path = dockerfile or settings.app.dockerfile
    text = commit_dockerfile(tree, path)
    if text is None and releasing:
        raise BuildToolsError(
            f"the Dockerfile {path} is not in commit {tree.commit[:7]}: a release is built "
            "from the commit's own files",
            "commit it, then release",
        )
    if text is None:  # a Dockerfile being written: the build is the working tree's
        return _worktree(run, Source(WORKTREE, f"the Dockerfile {path} is not committed"), store)
    patterns = commit_context.dockerignore_of(tree)
    left = commit_context.kept(source_tree.untracked(tree), patterns)
    note = build_source.left_out_note(len(left))
    return Sourced(run, chosen, tree, text, store, (note,) if note else ())


def _worktree(run: Run, chosen: Source, store: records.Store | None) -> Sourced:
    """A working-tree build: its facts marked dirty, and the one line that says so."""
    marked = dataclasses.replace(run, info=as_worktree(run.info))
    note = f"{build_source.WORKTREE_NOTE} ({chosen.why})"
    return Sourced(marked, chosen, None, None, store, (note,))
