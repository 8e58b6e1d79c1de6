"""OCI labels: what `docker inspect` shows about an image."""

from __future__ import annotations

from buildtools.facts.buildinfo import BuildInfo
from buildtools.plan.labels import oci_labels
from buildtools.plan.tags import ImageTag

SHA = "0123abcdef0123abcdef0123abcdef0123abcdef"
SOURCE = "https://github.com/concord-consortium/lara"


def test_release_labels() -> None:
    info = BuildInfo(
        version="1.2.3",
        commit=SHA,
        tag="v1.2.3",
        build_date="2024-01-02T03:04:05Z",
        ci="travis",
        build_number="101",
    )
    tags = [ImageTag("1.2.3", False, "release"), ImageTag("latest", True, "highest")]
    labels = oci_labels(info, "LARA", SOURCE, tags)
    oci = "org.opencontainers.image."
    assert labels[oci + "created"] == "2024-01-02T03:04:05Z"
    assert labels[oci + "revision"] == SHA
    assert labels[oci + "version"] == "1.2.3"
    assert labels[oci + "source"] == SOURCE
    assert labels[oci + "url"] == SOURCE
    assert labels[oci + "title"] == "LARA"
    assert labels[oci + "ref.name"] == "1.2.3"
    assert labels["org.concord.lara.build.tag"] == "v1.2.3"
    assert labels["org.concord.lara.build.ci"] == "travis"
    assert labels["org.concord.lara.build.number"] == "101"
    assert labels["org.concord.lara.build.tags"] == "1.2.3,latest"  # version.yml's image_tags


def test_unknown_facts_are_left_out_and_values_are_strings() -> None:
    info = BuildInfo(version="0.0.0-gabc", commit=SHA, dirty=True, pull_request=7)
    labels = oci_labels(info, "LARA", SOURCE, [])
    assert "org.opencontainers.image.ref.name" not in labels
    assert "org.opencontainers.image.created" not in labels
    assert "org.concord.lara.build.branch" not in labels
    assert labels["org.concord.lara.build.dirty"] == "true"
    assert labels["org.concord.lara.build.pull-request"] == "7"
    assert all(isinstance(v, str) and v for v in labels.values())


def test_the_smoke_test_label_says_whether_the_build_pushes_only_after_one_passed() -> None:
    """`invoke ci` with its smoke test sets ``smoke_gated``: its images are pushed only after
    the test passed, so the label is true of every registry copy. Any other build says none."""
    info = BuildInfo(version="1.2.3", commit=SHA, tag="v1.2.3")
    key = "org.concord.lara.build.smoke-test"
    assert oci_labels(info, "LARA", SOURCE)[key] == "none"
    gated = BuildInfo(version="1.2.3", commit=SHA, tag="v1.2.3", smoke_gated=True)
    assert oci_labels(gated, "LARA", SOURCE)[key] == "passed-before-push"
