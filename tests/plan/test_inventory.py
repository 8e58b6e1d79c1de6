"""A repository's tags by kind from the list alone, and the inventory built from what each
registry holds: plain values."""

from __future__ import annotations

from buildtools.plan import inventory
from buildtools.plan.inventory import Holdings

D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64


def test_tags_are_sorted_by_kind_without_a_request() -> None:
    kinds = inventory.classify(
        ["latest", "1.2.0", "1.10.0", "1.2", "edge", "sha-0123abc", "master", "pr-4",
         "cache-gems-master", "rollback-latest", f"sha256-{'1' * 64}.sig", "2.0.0-rc.1"],
        "sha-", ["edge"],
    )  # fmt: skip
    assert kinds.releases == ("1.2.0", "1.10.0", "2.0.0-rc.1")
    assert kinds.floating == ("latest", "1.2", "edge")
    assert (kinds.shas, kinds.branches, kinds.prs) == (("sha-0123abc",), ("master",), ("pr-4",))
    assert kinds.markers == ("latest",) and kinds.proofs == {D1: frozenset({"sig"})}


def holding(registry: str, digests: dict[str, str]) -> Holdings:
    kinds = inventory.classify([*digests, f"sha256-{'1' * 64}.att"], "sha-")
    labels = {D1: {inventory.REVISION: "abc"}}
    return Holdings(registry, "app", "lara/app", kinds, digests, labels)


def test_rows_flag_floating_tags_proofs_and_registries_that_disagree() -> None:
    found = inventory.build(
        [holding("one", {"1.0.0": D1, "latest": D1}), holding("two", {"1.0.0": D1, "latest": D2})]
    )
    (row,) = found.releases
    assert row.digest == D1 and row.floating == ("latest",) and row.attested and not row.signed
    assert row.labels[inventory.REVISION] == "abc"
    assert len(found.disagreements) == 1 and "app:latest differs" in found.disagreements[0]
    assert "DISAGREE: app:latest" in found.text()
