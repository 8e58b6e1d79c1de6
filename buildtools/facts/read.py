"""Read a build's facts once: git and the CI environment into one frozen BuildInfo.

Each fact comes from the first source that has it: explicit overrides (task flags, config) >
the CI environment > git > defaults. Which branch, tag or pull request is built is taken as a
unit from one source, because the sources disagree by design: a Travis *branch* build of a
tagged commit is not a tag build, and a Travis tag build reports the tag as its "branch".

This is the only module that calls the git and CI readers; a task calls :func:`gather` once
and plans everything else from its result (:mod:`buildtools.plan.metadata`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from buildtools.config.schema import Settings
from buildtools.errors import BuildToolsError
from buildtools.facts import ci_env, gitinfo
from buildtools.facts.buildinfo import BuildInfo, Overrides, build_date, make_version
from buildtools.facts.versions import parse_version

_COMMIT = re.compile(r"^[0-9a-f]{7,64}$")


def _override_commit(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    commit = value.strip().lower()
    if not _COMMIT.match(commit):
        raise BuildToolsError(
            f"--commit {value!r} is not a commit hash",
            "pass the full or abbreviated (7 or more hex digits) commit",
        )
    return commit


def _read_git(
    path: Path | str | None, untracked_is_dirty: bool, commit_given: bool, warnings: list[str]
) -> gitinfo.GitFacts | None:
    if path is None:
        return None
    try:
        return gitinfo.read(path, untracked_is_dirty=untracked_is_dirty)
    except gitinfo.NotACheckout as exc:
        if not commit_given:
            raise
        warnings.append(f"{exc.problem}: using only the given commit, branch and tag")
        return None


COMMIT_VARIABLES = {
    "travis": "TRAVIS_COMMIT",
    "github": "GITHUB_SHA",
    "gitlab": "CI_COMMIT_SHA",
    "dockerhub": "SOURCE_COMMIT",
}


def _ci_commit(context: ci_env.CIContext | None) -> str | None:
    """The commit the CI names, which must be a commit hash (lower-cased)."""
    if context is None or not context.commit:
        return None
    commit = context.commit.strip().lower()
    if not _COMMIT.match(commit):
        variable = COMMIT_VARIABLES.get(context.provider, "the CI's commit variable")
        raise BuildToolsError(
            f"{variable}={context.commit!r} is not a commit hash",
            f"unset {variable} or set it to the full commit the CI checked out",
        )
    return commit


def _check_tag(
    path: Path | str | None, git_facts: gitinfo.GitFacts, tag: str, variable: str, commit: str
) -> None:
    """A tag named by CI or ``--tag`` must exist in git at the commit built (fetched if a
    shallow clone lacks it): otherwise a typo or a stale variable would publish a release
    nobody tagged."""
    target = git_facts.tag_commits.get(tag)
    if target is None and path is not None:
        target = gitinfo.fetch_tag(path, tag, shallow=git_facts.shallow)
    if target == commit:
        return
    unset = "leave out --tag" if variable == "--tag" else f"unset {variable}"
    if target:
        raise BuildToolsError(
            f"{variable} names tag {tag!r}, but that tag points at {target[:7]}, "
            f"not at commit {commit[:7]}",
            f"check out {tag} to build it, or {unset} for a build that is not a tag build",
        )
    raise BuildToolsError(
        f"{variable} names tag {tag!r}, but that tag does not exist in git "
        f"(checkout at {commit[:7]})",
        f"tag this commit and push the tag (git push origin {tag}), or {unset} for a build "
        "that is not a tag build",
    )


def _check_commit(wanted: str, git_facts: gitinfo.GitFacts) -> None:
    """Inside a checkout, ``--commit`` may only name HEAD: the images are built from the
    working tree, so any other commit would label HEAD's (maybe dirty) code as that commit."""
    if git_facts.commit.startswith(wanted):
        return
    raise BuildToolsError(
        f"--commit {wanted[:12]} is not the checkout's HEAD ({git_facts.commit[:12]}): the images "
        "are built from the working tree, so they would not be that commit",
        f"check out {wanted[:12]} (git checkout {wanted[:12]}) and run it again without --commit",
    )


def _check_branch(
    path: Path | str | None,
    git_facts: gitinfo.GitFacts,
    branch: str,
    commit: str,
    warnings: list[str],
) -> None:
    """``--branch`` must be a branch git says the commit is on: reachable from the local
    branch or a remote-tracking one (origin is asked when the checkout does not show it).
    Otherwise any commit could be pushed as ``master``/``edge``. When git cannot tell (a
    single-ref shallow clone, origin unreachable), it is a warning saying how to let it."""
    where = path if path is not None else git_facts.root
    found = gitinfo.branch_check(where, branch, commit, shallow=git_facts.shallow)
    short, flag = commit[:7], f"--branch {branch!r}"
    if found.verdict == gitinfo.ON:
        return
    if found.verdict == gitinfo.UNKNOWN:
        warnings.append(
            f"git cannot confirm {flag}: this checkout has no branch {branch} and origin did "
            f"not answer; building commit {short} as {branch} unconfirmed (to check it: "
            f"git fetch origin {branch})"
        )
        return
    leave_out = "leave out --branch to build it as what git says it is"
    if found.verdict == gitinfo.INVALID:
        raise BuildToolsError(f"{flag} is not a name git allows for a branch", leave_out)
    if found.verdict == gitinfo.MISSING:
        if found.origin == "absent":
            problem = f"{flag}: neither this checkout nor origin has a branch {branch}"
        else:
            problem = f"{flag}: this checkout has no branch {branch} (and no origin to ask)"
        raise BuildToolsError(problem, f"check the name (git branch -a), or {leave_out}")
    tips = ", ".join(f"{ref.removeprefix('refs/')} at {sha[:7]}" for ref, sha in found.refs)
    shallow = " (a shallow clone may lack the history: git fetch --unshallow)"
    raise BuildToolsError(
        f"{flag}: commit {short} is not on that branch ({tips})",
        f"merge it into {branch} and build there, or {leave_out}"
        + (shallow if git_facts.shallow else ""),
    )


def gather(
    path: Path | str | None,
    env: Mapping[str, str],
    overrides: Overrides | None = None,
    untracked_is_dirty: bool = False,
) -> tuple[BuildInfo, tuple[str, ...]]:
    """The BuildInfo of the checkout at ``path`` (None: no git) under CI environment ``env``,
    and the warnings for the user.

    Without git (not a checkout), ``overrides.commit`` must be given; the build date then
    comes from ``SOURCE_DATE_EPOCH`` or the current time.
    """
    o = overrides or Overrides()
    warnings: list[str] = []
    wanted = _override_commit(o.commit)
    facts = _read_git(path, untracked_is_dirty, wanted is not None, warnings)
    context = ci_env.detect(env, facts.tag_names if facts else ())
    warnings.extend(context.warnings if context else ())

    if wanted and facts:
        _check_commit(wanted, facts)
        wanted = facts.commit
    ci_commit = _ci_commit(context)
    if ci_commit and not wanted and facts is not None:
        if not facts.commit.startswith(ci_commit):
            variable = COMMIT_VARIABLES.get(context.provider if context else "", "the CI")
            raise BuildToolsError(
                f"{variable} says commit {ci_commit[:12]}, but the checkout is at "
                f"{facts.commit[:12]}: the images would be built from other code",
                f"check out {ci_commit[:12]} before building (git checkout {ci_commit[:12]})",
            )
        ci_commit = facts.commit
    commit = wanted or ci_commit or (facts.commit if facts else None)
    if commit is None:
        raise BuildToolsError("no commit is known for this build", "pass --commit")
    # Inside a checkout the commit is always HEAD (checked above); without one, only the
    # given commit, branch and tag are known.
    head = facts

    branch = tag = base = None
    pull_request = None
    if o.gives_ref:
        branch, tag, pull_request = o.branch, o.tag, o.pull_request
        if tag and facts is not None:
            _check_tag(path, facts, tag, "--tag", commit)
        if branch and facts is not None:
            _check_branch(path, facts, branch, commit, warnings)
    elif context is not None and context.knows_ref:
        branch, tag, pull_request = context.branch, context.tag, context.pull_request
        base = context.base_branch
        if tag and facts is not None:
            variable = context.tag_variable or "the CI environment"
            _check_tag(path, facts, tag, variable, commit)
    elif head is not None:
        branch = head.branch
        tag = head.head_tags[0] if head.head_tags else None
        releases = [t for t in head.head_tags if parse_version(t) is not None]
        if len(releases) > 1:
            warnings.append(
                f"commit {commit[:7]} carries the release tags {', '.join(releases)}: "
                f"building {tag} (the highest); pass --tag to build another"
            )

    dirty = bool(head and head.dirty)
    last_tag = head.last_tag if head else None
    since = head.commits_since_tag if head else None
    version = make_version(
        tag,
        commit,
        branch=branch,
        dirty=dirty,
        exact_tags=head.head_tags if head else (),
        last_tag=last_tag,
        commits_since_tag=since,
    )
    info = BuildInfo(
        version=version,
        commit=commit,
        branch=branch,
        tag=tag,
        dirty=dirty,
        pull_request=pull_request,
        build_number=o.build_number or (context.build_number if context else None),
        build_url=o.build_url or (context.build_url if context else None),
        build_date=build_date(env, head.commit_time if head else None),
        ci=context.provider if context else None,
        event=context.event if context else None,
        base_branch=base,
        last_tag=last_tag,
        commits_since_tag=since,
        shallow=bool(facts and facts.shallow),
        known_versions=facts.versions if facts else (),
    )
    return info, tuple(warnings)


@dataclass(frozen=True)
class Run:
    """One task invocation's facts: the settings, the environment and the BuildInfo read from
    them once. Tags and labels are planned from it (:func:`buildtools.plan.metadata.of_run`),
    never re-read."""

    settings: Settings
    env: Mapping[str, str]
    info: BuildInfo
    warnings: tuple[str, ...]

    @classmethod
    def read(
        cls, settings: Settings, env: Mapping[str, str], overrides: Overrides | None = None
    ) -> Run:
        info, warnings = gather(settings.repo, env, overrides, settings.untracked_is_dirty)
        return cls(settings, env, info, settings.warnings + warnings)
