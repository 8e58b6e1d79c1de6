"""plan.retention: which tags prune keeps and deletes, from plain values (no registry, no git)."""

from __future__ import annotations

import datetime as dt

from buildtools.plan import retention
from buildtools.plan.retention import Remote
from buildtools.plan.tags import TagPolicy

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
RULES = retention.Rules(keep_commits=2, keep_days=30, policy=TagPolicy(extra={"master": ("edge",)}))


def commit(n: int) -> str:
    return f"{n:07x}" + "0" * 33


def days_ago(n: int) -> dt.datetime:
    return NOW - dt.timedelta(days=n)


def digest(name: str) -> str:
    return "sha256:" + name.encode().hex().ljust(64, "0")[:64]


def decide(tags: dict[str, str], remote: Remote, dates=None) -> dict[str, tuple[bool, str]]:
    verdict = retention.decide(tags, remote, RULES, NOW, dates)
    return {d.tag: (d.keep, d.reason) for d in verdict.decisions}


# master: commits 1 (newest) .. 4; feature/x: commit 9; commit 7 belonged to a deleted branch.
REMOTE = Remote(
    {"master": (commit(1), commit(2), commit(3)), "feature/x": (commit(9),)},
    {commit(n)[:7]: days_ago(40 + n) for n in (1, 2, 3, 4, 9)} | {commit(5)[:7]: days_ago(3)},
)


def test_releases_floating_tags_and_git_tags_are_always_kept() -> None:
    tags = {t: digest(t) for t in ("1.2.3", "2.0.0-rc.1", "1.2.3_b.1", "1.2", "1", "latest",
                                   "edge", "tag-nightly", "rollback-latest")}  # fmt: skip
    assert all(keep for keep, _ in decide(tags, REMOTE).values())
    assert decide(tags, REMOTE)["2.0.0-rc.1"] == (True, "release")


def test_sha_tags_of_the_last_commits_of_each_branch_or_newer_than_the_days_are_kept() -> None:
    tags = {f"sha-{commit(n)[:7]}": digest(str(n)) for n in (1, 2, 3, 4, 5, 9)}
    found = decide(tags, REMOTE)
    assert found[f"sha-{commit(1)[:7]}"][0] and found[f"sha-{commit(2)[:7]}"][0]
    assert "among the last 2 of master" in found[f"sha-{commit(2)[:7]}"][1]
    assert found[f"sha-{commit(9)[:7]}"] == (
        True,
        f"commit {commit(9)[:7]} is among the last 2 of feature/x",
    )
    # Commit 3 is master's third: beyond keep_commits and 43 days old.
    assert found[f"sha-{commit(3)[:7]}"][0] is False
    assert "43 days old (older than 30 days)" in found[f"sha-{commit(3)[:7]}"][1]
    assert found[f"sha-{commit(4)[:7]}"][0] is False
    assert found[f"sha-{commit(5)[:7]}"][0] is True  # 3 days old


def test_a_sha_tag_git_cannot_date_is_dated_by_its_image_and_kept_when_that_is_unknown() -> None:
    tags = {"sha-abcdef1": digest("a"), "sha-abcdef2": digest("b"), "sha-abcdef3": digest("c")}
    assert sorted(retention.undated(tags, REMOTE, RULES)) == sorted(tags)
    found = decide(tags, REMOTE, {"sha-abcdef1": days_ago(90), "sha-abcdef2": days_ago(1)})
    assert [found[t][0] for t in sorted(tags)] == [False, True, True]
    assert found["sha-abcdef3"] == (True, "commit abcdef3, age unknown")


def test_branch_tags_go_with_their_branch_and_pr_tags_with_age() -> None:
    tags = {"master": digest("m"), "feature-x": digest("f"), "old-branch": digest("o"),
            "pr-7": digest("p7"), "pr-8": digest("p8"), "pr-9": digest("p9")}  # fmt: skip
    assert sorted(retention.undated(tags, REMOTE, RULES)) == ["pr-7", "pr-8", "pr-9"]
    found = decide(tags, REMOTE, {"pr-7": days_ago(31), "pr-8": days_ago(2)})
    assert found["master"] == (True, "branch master exists")
    assert found["feature-x"] == (True, "branch feature/x exists")  # the sanitized name
    assert found["old-branch"] == (False, "no branch of that name on the remote")
    assert [found[t][0] for t in ("pr-7", "pr-8", "pr-9")] == [False, True, True]


def test_a_tag_to_go_that_shares_its_digest_with_a_kept_one_is_kept() -> None:
    shared = digest("release")
    tags = {"1.0.0": shared, "old-branch": shared, f"sha-{commit(4)[:7]}": shared}
    found = decide(tags, REMOTE)
    assert all(keep for keep, _ in found.values())
    assert found["old-branch"][1].endswith("kept: kept 1.0.0 shares its digest")
    assert retention.decide(tags, REMOTE, RULES, NOW).deletes == ()


def test_signatures_and_caches_follow_their_image_and_branch() -> None:
    kept_image, gone_image = digest("kept"), digest("gone")
    sig = lambda d, kind: f"{d.replace(':', '-')}.{kind}"  # noqa: E731
    tags = {
        "1.0.0": kept_image,
        sig(kept_image, "sig"): digest("s1"), sig(kept_image, "att"): digest("a1"),
        "old-branch": gone_image, sig(gone_image, "sig"): digest("s2"),
        sig(digest("nothing"), "att"): digest("a3"),
        "cache-build-master": digest("c1"), "cache-build-old-branch": digest("c2"),
    }  # fmt: skip
    found = decide(tags, REMOTE)
    assert found[sig(kept_image, "sig")] == (True, "signature of kept 1.0.0")
    assert found[sig(kept_image, "att")] == (True, "attestation of kept 1.0.0")
    assert found[sig(gone_image, "sig")] == (False, "signature of deleted old-branch")
    assert found[sig(digest("nothing"), "att")] == (False, "attestation of an image no tag names")
    assert found["cache-build-master"][0] is True
    assert found["cache-build-old-branch"] == (False, "build cache of a branch not on the remote")


def test_deletes_go_by_digest_images_before_what_follows_them() -> None:
    gone = digest("gone")
    tags = {"old-branch": gone, "older-branch": gone, f"{gone.replace(':', '-')}.sig": digest("s"),
            "cache-x-old-branch": digest("c"), "zz-branch": digest("z")}  # fmt: skip
    deletes = retention.decide(tags, REMOTE, RULES, NOW).deletes
    assert [(d.digest, d.tags, d.follower) for d in deletes] == [
        (gone, ("old-branch", "older-branch"), False),
        (digest("z"), ("zz-branch",), False),
        (digest("c"), ("cache-x-old-branch",), True),
        (digest("s"), (f"{gone.replace(':', '-')}.sig",), True),
    ]


def test_another_sha_prefix_names_the_commit_tags() -> None:
    rules = retention.Rules(2, 30, TagPolicy(sha_prefix="git-"))
    tags = {f"git-{commit(4)[:7]}": digest("g"), f"sha-{commit(4)[:7]}": digest("s")}
    verdict = retention.decide(tags, REMOTE, rules, NOW)
    reasons = {d.tag: d.reason for d in verdict.decisions}
    assert reasons[f"git-{commit(4)[:7]}"].startswith(f"commit {commit(4)[:7]}")
    assert reasons[f"sha-{commit(4)[:7]}"] == "no branch of that name on the remote"


def test_image_date_reads_the_config_created_time() -> None:
    assert retention.image_date(b'{"created": "2026-11-30T10:00:00.123456789Z"}') == dt.datetime(
        2026, 11, 30, 10, 0, 0, 123456, tzinfo=dt.UTC
    )
    assert retention.image_date(b'{"created": "yesterday"}') is None
    assert retention.image_date(b"[]") is None
