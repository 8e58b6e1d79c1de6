"""``invoke prune``: release-aware retention in every configured registry, both images.

Everything is read and decided before the first delete: every registry's tags and digests
(:mod:`buildtools.registry.inventory`), the remote's branches (:mod:`buildtools.facts.remote`),
then the rules (:mod:`buildtools.plan.retention`) for each repository. With ``yes``, every
registry that has something to delete is asked whether it deletes at all (a ``DELETE`` of a
digest no manifest has) before the first real one, so a registry that refuses stops the run
with nothing deleted anywhere. Deletes go images first (app and sidecar of the same tags side
by side, registry after registry), then signatures, attestations and caches: an interrupted
run leaves no kept tag deleted and no image without its signature, and a re-run decides the
same and finishes the job (a digest already gone is skipped).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from buildtools.config.schema import Settings
from buildtools.errors import BuildToolsError
from buildtools.facts import remote as remote_facts
from buildtools.plan import retention
from buildtools.plan.tags import TagPolicy
from buildtools.registry import tag_digests, targets
from buildtools.registry.client import DeletesRefused
from buildtools.registry.targets import Target


@dataclass(frozen=True)
class Repository:
    """One repository of one registry and what the rules say of its tags."""

    target: Target
    repository: str
    verdict: retention.Verdict

    def as_dict(self) -> dict[str, Any]:
        def rows(decisions: Sequence[retention.Decision]) -> list[dict[str, str]]:
            return [{"tag": d.tag, "digest": d.digest, "reason": d.reason} for d in decisions]

        return {
            "registry": self.target.name,
            "repository": self.repository,
            "keep": rows(self.verdict.kept),
            "delete": rows(self.verdict.deleted),
        }


@dataclass
class Outcome:
    """What prune decided and did."""

    repositories: list[Repository]
    dry_run: bool
    refused: list[str] = field(default_factory=list)
    deleted: list[dict[str, Any]] = field(default_factory=list)
    spared: list[dict[str, Any]] = field(default_factory=list)  # tagged after the plan

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "repositories": [r.as_dict() for r in self.repositories],
            "refused": self.refused,
            "deleted": self.deleted,
            "spared": self.spared,
        }

    def listing(self) -> list[str]:
        """Every tag with its verdict and reason, one line each."""
        lines = []
        for repo in self.repositories:
            where = f"{repo.target.name}/{repo.repository}"
            for d in repo.verdict.decisions:
                lines.append(f"{'keep  ' if d.keep else 'delete'} {where}:{d.tag} ({d.reason})")
        return lines

    def text(self) -> str:
        lines = []
        kept = sum(len(r.verdict.kept) for r in self.repositories)
        going = sum(len(r.verdict.deleted) for r in self.repositories)
        if self.dry_run:
            lines.append(f"dry run: would delete {going} tags, keep {kept} (--yes deletes)")
        else:
            spared = sum(len(d["tags"]) for d in self.spared)
            lines.append(f"deleted {going - spared} tags, kept {kept + spared}")
        lines.append(
            "blob bytes come back only after the registry's garbage collection "
            "(docker-registry: registry garbage-collect CONFIG)"
        )
        return "\n".join(lines)


def rules_of(cfg: Settings) -> retention.Rules:
    policy = TagPolicy(cfg.sha_prefix, cfg.extra_tags, cfg.pull_request_tags)
    return retention.Rules(cfg.prune.keep_commits, cfg.prune.keep_days, policy)


def plan(
    cfg: Settings,
    found: Sequence[Target],
    remote: retention.Remote,
    now: dt.datetime,
) -> list[Repository]:
    """Every repository of every registry read and decided; nothing changed."""
    rules = rules_of(cfg)
    made = []
    for target in found:
        for repository in (cfg.app.repository, cfg.nginx.image.repository):
            held = tag_digests.read(
                target.client, repository, lambda tags: retention.undated(tags, remote, rules)
            )
            verdict = retention.decide(held.digests, remote, rules, now, held.dates)
            made.append(Repository(target, repository, verdict))
    return made


def check_deletes(repos: Sequence[Repository]) -> list[DeletesRefused]:
    """Each registry with something to delete, asked once whether it deletes at all."""
    refused: list[DeletesRefused] = []
    asked: set[str] = set()
    for repo in repos:
        if not repo.verdict.deletes or repo.target.name in asked:
            continue
        asked.add(repo.target.name)
        try:
            repo.target.client.check_deletes(repo.repository)
        except DeletesRefused as exc:
            refused.append(exc)
    return refused


def ordered(repos: Sequence[Repository]) -> list[tuple[Repository, retention.Delete]]:
    """Images before followers; the same tags in every repository and registry side by side."""
    rank = {id(r): n for n, r in enumerate(repos)}
    pairs = [(repo, delete) for repo in repos for delete in repo.verdict.deletes]
    return sorted(pairs, key=lambda p: (p[1].follower, p[1].tags, rank[id(p[0])]))


# How old a second look at a repository may be when a delete relies on it: the registry API
# has no "which tags point at this digest", so each look is its tag list and HEADs.
RECHECK_SECONDS = 1.0


class Recheck:
    """What points at a digest now, looked up right before it is deleted: the tag list read
    again (at most every :data:`RECHECK_SECONDS` per repository), and a ``HEAD`` of each tag
    the plan had not seen and of each kept tag that can move (floating, branch and extra tags;
    exact releases and ``sha-`` tags do not)."""

    def __init__(self, repos: Sequence[Repository]) -> None:
        self._digests = {id(r): {d.tag: d.digest for d in r.verdict.decisions} for r in repos}
        self._movable = {id(r): {d.tag for d in r.verdict.kept if _movable(d)} for r in repos}
        self._looked: dict[int, float] = {}
        self.spared: set[tuple[int, str]] = set()

    def holders(self, repo: Repository, digest: str) -> set[str]:
        key = id(repo)
        if time.monotonic() - self._looked.get(key, -RECHECK_SECONDS) >= RECHECK_SECONDS:
            known = self._digests[key]
            tags = repo.target.client.tags(repo.repository)
            ask = [t for t in tags if t not in known or t in self._movable[key]]
            fresh = tag_digests.heads(repo.target.client, repo.repository, ask)
            self._digests[key] = {t: fresh[t] if t in ask else known[t] for t in tags
                                  if t in fresh or t not in ask}  # fmt: skip
            self._looked[key] = time.monotonic()
        return {t for t, d in self._digests[key].items() if d == digest}

    def newcomer(self, repo: Repository, delete: retention.Delete) -> str | None:
        """A tag the plan did not send with ``delete`` that holds its digest now, or that it is
        the signature of an image kept that way; None when the delete may go."""
        subjects = {m.group(1) for t in delete.tags if (m := retention.FOLLOWER.match(t))}
        for subject in sorted(subjects):
            if (id(repo), f"sha256:{subject}") in self.spared:
                return f"its image sha256:{subject[:12]}"
        others = sorted(self.holders(repo, delete.digest) - set(delete.tags))
        if others:
            self.spared.add((id(repo), delete.digest))
            return others[0]
        return None


def _movable(decision: retention.Decision) -> bool:
    """A kept tag that a release, rollback or rebuild can point elsewhere."""
    fixed = retention.is_release(decision.tag) or retention.FOLLOWER.match(decision.tag)
    return not fixed and not decision.reason.startswith(("commit ", "rollback marker"))


def run(
    cfg: Settings,
    env: Mapping[str, str],
    *,
    yes: bool,
    say: Callable[[str], None],
    listing: bool = True,
    now: dt.datetime | None = None,
) -> Outcome:
    """Plan (and with ``yes``, make) the deletes of every configured registry; ``listing``:
    each tag's verdict is said before the first delete."""
    found = targets.configured(cfg.release, env)
    repositories = [cfg.app.repository, cfg.nginx.image.repository]
    targets.preflight(found, repositories)
    read = remote_facts.read(cfg.repo, cfg.prune.remote, cfg.prune.keep_commits)
    remote = retention.Remote(read.branches, read.dates)
    repos = plan(cfg, found, remote, now or dt.datetime.now(dt.UTC))
    refused = check_deletes(repos)
    outcome = Outcome(repos, dry_run=not yes, refused=[str(r) for r in refused])
    if refused and yes:
        raise refused[0]
    for line in outcome.listing() if listing else ():
        say(line)
    for exc in refused:
        say(f"warning: {exc.problem} (fix: {exc.fix})")
    if not yes:
        return outcome
    recheck = Recheck(repos)
    ignored: list[str] = []
    for repo, delete in ordered(repos):
        where = f"{repo.target.name}/{repo.repository}"
        newcomer = recheck.newcomer(repo, delete)
        if newcomer:
            say(f"kept {where}@{delete.digest}: {newcomer} points at it now (tagged after the "
                f"plan; {', '.join(delete.tags)} stay)")  # fmt: skip
            outcome.spared.append({"registry": repo.target.name, "repository": repo.repository,
                                   "digest": delete.digest, "tags": list(delete.tags),
                                   "held_by": newcomer})  # fmt: skip
            continue
        gone = repo.target.client.delete_manifest(repo.repository, delete.digest)
        if gone and repo.target.client.digest(repo.repository, delete.digest) is not None:
            ignored.append(f"{where}@{delete.digest}")  # 202, and still served
            continue
        say(f"deleted {where}@{delete.digest} ({', '.join(delete.tags)})" if gone else
            f"already gone: {where}@{delete.digest} ({', '.join(delete.tags)})")  # fmt: skip
        outcome.deleted.append(
            {"registry": repo.target.name, "repository": repo.repository,
             "digest": delete.digest, "tags": list(delete.tags), "was_there": gone}
        )  # fmt: skip
    if ignored:
        raise BuildToolsError(
            f"{len(ignored)} deletes were answered 202 (accepted) but the registry still serves "
            f"those manifests, first {ignored[0]}",
            "check the registry's storage.delete setting and its log, and any proxy or cache in "
            "front of it; then run invoke prune --yes again",
        )
    return outcome
