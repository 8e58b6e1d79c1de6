"""Read what the CI service says about a build from its environment variables.

CI services know things git cannot tell from a shallow, detached checkout: the branch being
built, whether it is a tag or pull-request build, and the build number and URL. Each provider
spells them differently; :func:`detect` maps them onto one :class:`CIContext` so that the rest
of the code never looks at environment variables.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from buildtools.errors import BuildToolsError
from buildtools.facts.versions import parse_version


@dataclass(frozen=True)
class CIContext:
    """What one CI build is, as the CI service reports it.

    ``branch`` is the branch whose code is built: on a pull-request build it is the PR's
    *source* branch and ``base_branch`` is the branch it targets. On a tag build ``branch`` is
    None (Travis reports the tag name as its "branch"; it is not one).
    """

    provider: str
    branch: str | None = None
    tag: str | None = None
    commit: str | None = None
    pull_request: int | None = None
    base_branch: str | None = None
    event: str | None = None
    build_number: str | None = None
    build_url: str | None = None
    # The variable that named the tag (it must exist in git at this commit), and what the
    # user should know about variables that were ignored.
    tag_variable: str | None = field(default=None, compare=False)
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def knows_ref(self) -> bool:
        """Whether the CI said which branch, tag or pull request this build is for."""
        return bool(self.branch or self.tag or self.pull_request is not None)


def has_control_character(value: str) -> bool:
    """A line break, escape or other control character: in a name that becomes tags, labels
    and ``--format env`` lines it would end up as something else."""
    return any(ord(ch) < 32 or ord(ch) == 127 for ch in value)


def _get(env: Mapping[str, str], name: str) -> str | None:
    """An environment value, with unset and empty treated alike (CIs export empty strings).

    A line break or other control character in a CI variable is refused: it would end up in
    tags, labels and the ``--format env`` lines as something else."""
    value = env.get(name, "").strip()
    if has_control_character(value):
        raise BuildToolsError(
            f"{name}={value!r} holds a control character (a line break?)",
            f"unset {name} or set it to a plain name",
        )
    return value or None


def _on(env: Mapping[str, str], name: str) -> bool:
    """A CI's marker variable: true, 1, yes or on, in any case."""
    return (_get(env, name) or "").lower() in ("true", "1", "yes", "on")


def _pr_number(value: str | None, variable: str) -> int | None:
    if value is None or value == "false":
        return None
    if not re.fullmatch(r"[0-9]+", value):
        raise BuildToolsError(
            f"{variable}={value!r} is neither 'false' nor a pull-request number",
            f"unset {variable} or set it to the pull-request number",
        )
    return int(value)


def _travis(env: Mapping[str, str]) -> CIContext:
    tag = _get(env, "TRAVIS_TAG")
    pull_request = _pr_number(_get(env, "TRAVIS_PULL_REQUEST"), "TRAVIS_PULL_REQUEST")
    travis_branch = _get(env, "TRAVIS_BRANCH")
    if tag:
        branch, base = None, None  # TRAVIS_BRANCH holds the tag name on tag builds
    elif pull_request is not None:
        branch, base = _get(env, "TRAVIS_PULL_REQUEST_BRANCH"), travis_branch
    else:
        branch, base = travis_branch, None
    return CIContext(
        provider="travis",
        branch=branch,
        tag=tag,
        commit=_get(env, "TRAVIS_COMMIT"),
        pull_request=pull_request,
        base_branch=base,
        event=_get(env, "TRAVIS_EVENT_TYPE"),
        build_number=_get(env, "TRAVIS_BUILD_NUMBER"),
        build_url=_get(env, "TRAVIS_BUILD_WEB_URL") or _get(env, "TRAVIS_JOB_WEB_URL"),
        tag_variable="TRAVIS_TAG",
    )


_GITHUB_PULL = re.compile(r"^refs/pull/(\d+)/(?:merge|head)$")


def _github(env: Mapping[str, str]) -> CIContext:
    ref = _get(env, "GITHUB_REF") or ""
    branch = tag = base = None
    pull_request = None
    warnings: tuple[str, ...] = ()
    if ref.startswith("refs/heads/"):
        branch = ref.removeprefix("refs/heads/")
    elif ref.startswith("refs/tags/"):
        tag = ref.removeprefix("refs/tags/")
    elif match := _GITHUB_PULL.match(ref):
        pull_request = int(match.group(1))
        branch, base = _get(env, "GITHUB_HEAD_REF"), _get(env, "GITHUB_BASE_REF")
    elif ref:
        warnings = (
            f"GITHUB_REF={ref!r} is not refs/heads/…, refs/tags/… or refs/pull/N/merge: "
            "ignored, the branch and tag come from git",
        )
    run_id = _get(env, "GITHUB_RUN_ID")
    repository = _get(env, "GITHUB_REPOSITORY")
    server = _get(env, "GITHUB_SERVER_URL") or "https://github.com"
    url = None
    if run_id and repository:
        url = f"{server.rstrip('/')}/{repository}/actions/runs/{run_id}"
    return CIContext(
        provider="github",
        branch=branch,
        tag=tag,
        commit=_get(env, "GITHUB_SHA"),
        pull_request=pull_request,
        base_branch=base,
        event=_get(env, "GITHUB_EVENT_NAME"),
        build_number=_get(env, "GITHUB_RUN_NUMBER"),
        build_url=url,
        tag_variable="GITHUB_REF",
        warnings=warnings,
    )


def _gitlab(env: Mapping[str, str]) -> CIContext:
    tag = _get(env, "CI_COMMIT_TAG")
    pull_request = _pr_number(_get(env, "CI_MERGE_REQUEST_IID"), "CI_MERGE_REQUEST_IID")
    branch = base = None
    if pull_request is not None:
        branch = _get(env, "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME")
        base = _get(env, "CI_MERGE_REQUEST_TARGET_BRANCH_NAME")
    elif not tag:
        branch = _get(env, "CI_COMMIT_BRANCH")
    return CIContext(
        provider="gitlab",
        branch=branch,
        tag=tag,
        commit=_get(env, "CI_COMMIT_SHA"),
        pull_request=pull_request,
        base_branch=base,
        event=_get(env, "CI_PIPELINE_SOURCE"),
        build_number=_get(env, "CI_PIPELINE_IID"),
        build_url=_get(env, "CI_JOB_URL") or _get(env, "CI_PIPELINE_URL"),
        tag_variable="CI_COMMIT_TAG",
    )


def _dockerhub(env: Mapping[str, str], tag_names: Collection[str]) -> CIContext:
    """Docker Hub gives one ``SOURCE_BRANCH`` for branches and tags alike.

    It is taken as a tag when git has a tag of that name, or, when git knows no tags at all
    (a clone without them), when it looks like a version (``v1.2.3``, ``1.2.3-rc.1``);
    otherwise as a branch. A branch named like a version is therefore misread only when git
    has no tags at all.
    """
    ref = _get(env, "SOURCE_BRANCH")
    # Git's tags decide when git has any: a branch named like a version (1.2.x) is a branch.
    known = ref in tag_names if tag_names else parse_version(ref or "") is not None
    is_tag = ref is not None and known
    return CIContext(
        provider="dockerhub",
        branch=None if is_tag else ref,
        tag=ref if is_tag else None,
        commit=_get(env, "SOURCE_COMMIT"),
        tag_variable="SOURCE_BRANCH",
    )


def _markers(env: Mapping[str, str]) -> list[str]:
    """The variables that say which CI service runs this build (Docker Hub has no marker:
    ``SOURCE_BRANCH`` with one of its other variables)."""
    found = [name for name in ("TRAVIS", "GITHUB_ACTIONS", "GITLAB_CI") if _on(env, name)]
    if _get(env, "SOURCE_BRANCH") and (
        _get(env, "SOURCE_COMMIT") or _get(env, "DOCKER_REPO") or _get(env, "IMAGE_NAME")
    ):
        found.append("SOURCE_BRANCH")
    return found


_TAG_VARIABLES = {"travis": "TRAVIS_TAG", "gitlab": "CI_COMMIT_TAG"}
_PR_VARIABLES = {"travis": "TRAVIS_PULL_REQUEST", "gitlab": "CI_MERGE_REQUEST_IID"}


def detect(env: Mapping[str, str], tag_names: Collection[str] = ()) -> CIContext | None:
    """The CI context of this build, or None when not running under a CI service.

    ``tag_names`` (the tags git knows) only help to tell branches from tags on Docker Hub.
    Any other service that sets ``CI=true`` yields provider ``"ci"`` with no other facts.
    Variables that contradict each other (two services, a tag build that is also a pull
    request) are refused: whichever were believed, the release could be the wrong one.
    """
    markers = _markers(env)
    if len(markers) > 1:
        shown = " and ".join(f"{name}={env.get(name, '')!r}" for name in markers)
        raise BuildToolsError(
            f"the environment says two CI services run this build: {shown}",
            f"unset the variables of the service that does not ({', '.join(markers)})",
        )
    readers = {
        "TRAVIS": _travis,
        "GITHUB_ACTIONS": _github,
        "GITLAB_CI": _gitlab,
        "SOURCE_BRANCH": lambda e: _dockerhub(e, tag_names),
    }
    if markers:
        context = readers[markers[0]](env)
        if context.tag and context.pull_request is not None:
            tag_var = _TAG_VARIABLES.get(context.provider, "the tag variable")
            pr_var = _PR_VARIABLES.get(context.provider, "the pull-request variable")
            raise BuildToolsError(
                f"{tag_var}={context.tag!r} and {pr_var}={context.pull_request} both set: a "
                "build is a tag build or a pull request, not both",
                f"unset the one that does not describe this build ({tag_var} or {pr_var})",
            )
        return context
    if _on(env, "CI"):
        return CIContext(provider="ci")
    return None
