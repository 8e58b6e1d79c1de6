"""The config checks that need the tag policy, and every check of more than one key.

Each single key is read and checked as :mod:`buildtools.config.keys` declares it, when the
settings are loaded. What is left needs :mod:`buildtools.plan.tags`, which the config layer may
not import: the keys whose declaration names a ``policy`` are checked here
(:data:`POLICY_CHECKS`), and so are the checks that read more than one key
(:data:`CROSS_KEY_CHECKS`, the one list of them). All run before the first engine or registry
call, ``--dry-run`` included.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from buildtools.config.kinds import refuse
from buildtools.config.schema import CACHE_TEMPLATES, Settings
from buildtools.errors import BuildToolsError
from buildtools.plan import release_rule, tags

_SHA_PREFIX = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def check_sha_prefix(value: str) -> None:
    """The commit tag's prefix must start a valid Docker tag, and must not be empty or make
    the tag pose as a release (``v`` would give ``v1234567`` for an all-digit commit): the
    prefix is what tells a commit tag from a version or a branch name."""
    key = "tags.sha_prefix"
    longest = tags.MAX_LENGTH - tags.SHA_LENGTH
    if not value:
        raise BuildToolsError(
            "config key buildtools.tags.sha_prefix is empty: commit tags would look like "
            "version or branch tags",
            "set it to a prefix such as sha- (the default) or git- (LARA's GitHub workflow)",
        )
    if not _SHA_PREFIX.fullmatch(value) or len(value) > longest:
        what = (
            f"the start of a Docker tag (letters, digits, _ . -, not starting with . or -, "
            f"at most {longest} characters)"
        )
        raise refuse(key, value, what, "git-")
    if tags.is_release_lookalike(tags.sha_tag_name("1234567", value)):
        what = "a prefix that keeps commit tags from looking like releases"
        raise refuse(key, value, what, "git-")
    lower = value.lower()
    other = [p for p in (*tags.KIND_PREFIXES, *tags.FLOATING_NAMES) if lower.startswith(p)]
    if other:
        raise BuildToolsError(
            f"config key buildtools.tags.sha_prefix = {value!r} makes commit tags look like "
            f"{other[0]!r} tags, another kind",
            "choose a prefix of its own, such as sha- (the default) or git- "
            "(invoke.yaml or INVOKE_BUILDTOOLS_TAGS_SHA_PREFIX)",
        )


def check_sha_prefix_against_branches(value: str, branches: tuple[str, ...]) -> None:
    """A release branch whose name the prefix starts (``ma`` for ``main``) would have its tag
    renamed ``branch-main`` to keep it apart from commit tags: the prefix is to blame."""
    for branch in branches:
        if any(c in branch for c in "*?[") or not branch.lower().startswith(value.lower()):
            continue
        raise BuildToolsError(
            f"config key buildtools.tags.sha_prefix = {value!r} starts the release branch "
            f"{branch!r} (buildtools.release.branches): its tag would be renamed "
            f"branch-{branch} to keep it apart from commit tags",
            "choose a prefix no release branch starts with, such as sha- (the default) or "
            "git- (invoke.yaml or INVOKE_BUILDTOOLS_TAGS_SHA_PREFIX)",
        )


def check_cache_from(templates: tuple[str, ...]) -> None:
    """Templates this build can fill in, and plain tags."""
    for template in templates:
        if "{" in template and template not in CACHE_TEMPLATES:
            raise BuildToolsError(
                f"config key buildtools.cache.from has the unknown template {template!r}",
                f"use {', '.join(CACHE_TEMPLATES)} or plain tags",
            )
        if "{" not in template and not tags.VALID_TAG.match(template):
            raise BuildToolsError(
                f"config key buildtools.cache.from has {template!r}, which is not a Docker tag",
                "list tags such as edge, or the templates " + ", ".join(CACHE_TEMPLATES),
            )


def check_extra_tags(extra: dict[str, tuple[str, ...]], sha_prefix: str) -> None:
    """An extra tag must be a tag, and one no release, commit, pull request, stage cache, git
    tag or prefixed branch can have (those kinds are told apart by their names)."""
    for branch, names in extra.items():
        for name in names:
            try:
                tag = tags.sanitize(name)
            except BuildToolsError:
                raise BuildToolsError(
                    f"config key buildtools.tags.extra gives branch {branch!r} the tag {name!r}, "
                    "which has no letter or digit",
                    "name the tag, e.g. master=edge",
                ) from None
            if tag.lower().startswith(sha_prefix.lower()) and not tags.poses_as_other_kind(tag, ""):
                # The extra tag is a fine name: the prefix is what makes them collide.
                raise BuildToolsError(
                    f"config key buildtools.tags.sha_prefix = {sha_prefix!r} starts the tag "
                    f"{name!r} that buildtools.tags.extra gives branch {branch!r}: commit tags "
                    f"({tags.sha_tag_name('1a2b3c4', sha_prefix)}) and that branch's tag could "
                    "not be told apart",
                    "choose a prefix no extra tag starts with, such as sha- (the default) or "
                    "git- (invoke.yaml or INVOKE_BUILDTOOLS_TAGS_SHA_PREFIX)",
                )
            if tags.poses_as_other_kind(tag, sha_prefix):
                prefixes = ", ".join((*tags.KIND_PREFIXES, sha_prefix))
                raise BuildToolsError(
                    f"config key buildtools.tags.extra gives branch {branch!r} the tag {name!r}, "
                    "which only releases (or another kind of build) may carry",
                    f"use a name that is not latest, a version or starts with {prefixes}, "
                    "e.g. master=edge",
                )


def check_distinct_repositories(settings: Settings) -> None:
    if settings.app.repository == settings.nginx.image.repository:
        raise BuildToolsError(
            f"app.repository and nginx.repository are both {settings.app.repository!r}",
            "give the sidecar a repository of its own, e.g. lara/nginx",
        )


@dataclass(frozen=True)
class CrossCheck:
    """A check that reads several keys (all named), and when it runs."""

    keys: tuple[str, ...]
    run: Callable[[Settings], None]
    # "load": with every task (check() below); "release": where a pull request is released.
    when: str = "load"


# The tag policy's checks of a key, by the name the key's declaration gives, in the order
# they run (the sha prefix first: the extra tags must not look like commit tags with it).
POLICY_CHECKS: dict[str, Callable[[Settings], None]] = {
    "check_sha_prefix": lambda s: (
        check_sha_prefix(s.sha_prefix),
        check_sha_prefix_against_branches(s.sha_prefix, s.release.branches),
    ),
    "check_extra_tags": lambda s: check_extra_tags(dict(s.extra_tags), s.sha_prefix),
    "check_cache_from": lambda s: check_cache_from(s.cache_from),
}

# Every check of more than one key (besides tags.extra against tags.sha_prefix, above).
CROSS_KEY_CHECKS: tuple[CrossCheck, ...] = (
    CrossCheck(("app.repository", "nginx.repository"), check_distinct_repositories),
    # Releasing pull requests needs their tags; only a pull request's release is refused, so
    # the release pipeline runs it (buildtools.plan.release_rule.check_pull_request_release).
    CrossCheck(
        ("release.allow_pull_requests", "tags.pull_requests"),
        lambda s: release_rule.check_pull_request_release(s.release, s.pull_request_tags),
        when="release",
    ),
)


def check(settings: Settings) -> Settings:
    """``settings`` if the tag policy and every cross-key check accept them, else the first
    problem as one line (single keys were checked when the settings were loaded)."""
    for policy in POLICY_CHECKS.values():
        policy(settings)
    for cross in CROSS_KEY_CHECKS:
        if cross.when == "load":
            cross.run(settings)
    return settings
