"""The registry edge of promotion: release this commit's tested ``sha-`` images under the
release tags without an engine, or say in one line why a build is needed instead
(:class:`CannotPromote`, raised by :func:`prepare`).

For every registry and both images it reads the ``sha-`` manifest and configs once, checks
they are this commit's clean build (:meth:`buildtools.release.identity.Expected.tested`), has
:mod:`buildtools.plan.manifest_rewrite` make the release image, uploads the few new blobs and
puts the manifest under each release tag in the push plan's order
(:mod:`buildtools.plan.push_order`: exact versions first, immutability), through
:func:`buildtools.release.publish.execute`. Verification is lighter than an engine push's
read-back of every tag, and as strict: the registry's answer to each PUT must name the digest
of the bytes sent, and the last tag of each repository is read back (:class:`ManifestPusher`).
Only the registry client is used: its retries, error classes and redaction apply.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from buildtools.config.schema import Settings
from buildtools.engine.records import Store
from buildtools.errors import BuildToolsError
from buildtools.plan import (
    build_source,
    manifest_rewrite,
    promotion_recipe,
    push_order,
    versionfile,
)
from buildtools.plan.manifest_rewrite import CannotPromote, Changes, Promoted, SourceImage
from buildtools.plan.manifests import Manifest, config_labels
from buildtools.plan.metadata import Metadata
from buildtools.plan.push_order import Push, ReleaseImage
from buildtools.plan.tags import ImageTag
from buildtools.registry.client import RegistryClient
from buildtools.registry.targets import TagLists, Target, retry_policy
from buildtools.release import build as builder
from buildtools.release import floating, identity, publish
from buildtools.release.progress import PushReporter

if TYPE_CHECKING:
    from buildtools.attest.cosign import Proof
    from buildtools.attest.keys import PublicKey


@dataclass(frozen=True)
class Candidate:
    """One release image to put in one registry, and the tested image it is made from."""

    target: Target
    image: str  # app / nginx
    repository: str
    promoted: Promoted
    proof: Proof | None = None  # the tested image's, as read: signing carries it over


@dataclass(frozen=True)
class Promotion:
    """A promotion ready to run: every image of every registry, and the pushes in order."""

    candidates: tuple[Candidate, ...]
    pushes: tuple[Push, ...]
    source_tag: str
    warnings: tuple[str, ...] = ()


def changes(meta: Metadata, dockerfile_text: str) -> dict[str, Changes]:
    """What the release changes in each image: the labels ``invoke build`` gives both, and for
    the app the ``LARA_*`` ENV and version.yml its Dockerfile makes from the build args."""
    version_yml = versionfile.render(meta.version_data(), "yaml").encode()
    env, files = promotion_recipe.app_recipe(
        dockerfile_text, builder.metadata_buildargs(meta), version_yml
    )
    created = meta.info.build_date
    return {
        "app": Changes(dict(meta.labels), env, files, created),
        "nginx": Changes(dict(meta.labels), created=created),
    }


def read_source(client: RegistryClient, repository: str, tag: str) -> SourceImage | None:
    """The tested image as the registry serves it, with the child manifests and configs it
    needs (an attestation is never read); None when the tag does not exist. The client checks
    each against the digest it is read by, and its shape: a registry that serves anything
    else stops the release (:class:`buildtools.registry.failures.RegistryError`)."""
    found = client.manifest_bytes(repository, tag)
    if found is None:
        return None
    body, content_type = found
    children: dict[str, bytes] = {}
    for digest in manifest_rewrite.wanted_children(body, content_type):
        child = client.manifest_bytes(repository, digest)
        if child is None:
            raise CannotPromote(f"its index lists {digest}, which the registry does not hold")
        children[digest] = child[0]
    source = SourceImage(body, content_type, children)
    configs = {d: client.config(repository, d) for d in manifest_rewrite.config_digests(source)}
    return dataclasses.replace(source, configs=configs)


def source_labels(source: SourceImage) -> list[dict[str, str]]:
    """The labels of every image config read (one per platform of an index)."""
    return [config_labels(body) for body in source.configs.values()]


def already_released(
    source: SourceImage, changes: manifest_rewrite.Changes
) -> manifest_rewrite.Promoted | None:
    """``source`` itself when it already says everything the release would write (a branch
    build's ``sha-`` image is its release; a re-run of a finished one): its tags then get that
    very manifest, and a re-run moves nothing. None when it must be rewritten."""
    labels = source_labels(source)
    if not labels or any(
        found.get(key) != value for found in labels for key, value in changes.labels.items()
    ):
        return None
    configs = list(source.configs)
    return manifest_rewrite.Promoted(
        source.digest,
        source.manifest,
        source.media_type,
        config_digest=configs[0] if len(configs) == 1 and not source.manifests else None,
    )


def release_tags(meta: Metadata) -> list[ImageTag]:
    """The tags a promotion puts: every release tag but the ``sha-`` one, which stays on the
    tested image."""
    return [t for t in meta.tags if t.name != meta.sha_tag]


def prepare(
    settings: Settings,
    meta: Metadata,
    found: Sequence[Target],
    dockerfile_text: str,
    *,
    force: bool = False,
    tag_lists: TagLists | None = None,
    verify_key: PublicKey | None = None,
    store: Store | None = None,
) -> Promotion:
    """The promotion of this release on every registry (reads only), or :class:`CannotPromote`
    with the reason a build is needed (one registry or image short is enough: all or nothing).
    ``tag_lists``: the tags each registry holds, as the release plan read them (read here
    for a repository they lack); ``store``: this checkout's build records (no keys: the proof
    a registry image is this commit's build, :func:`keyless_check`)."""
    if not found:
        raise CannotPromote("no registry to promote in")
    made = changes(meta, dockerfile_text)
    roles = [("app", settings.app.repository), ("nginx", settings.nginx.image.repository)]
    # `invoke ci` with its smoke test promotes only images pushed after a passing one.
    smoke = meta.labels.get(identity.SMOKE_LABEL)
    commit = meta.info.commit
    expected = identity.Expected(commit, meta.info.version, smoke_test=smoke)
    tags = release_tags(meta)
    if not tags:
        raise CannotPromote("the release has no tag but the sha- one")
    source_tag = meta.sha_tag
    candidates: list[Candidate] = []
    pushes: list[Push] = []
    warnings: list[str] = []
    for target in found:
        mine: list[Candidate] = []
        for name, repository in roles:
            ref = f"{target.registry.push_name(repository)}:{source_tag}"
            try:
                source = read_source(target.client, repository, source_tag)
            except CannotPromote as exc:
                raise CannotPromote(f"{ref}: {exc.why}") from None
            if source is None:
                raise CannotPromote(f"registry {target.name} has no {repository}:{source_tag}")
            for labels in source_labels(source) or [{}]:
                why = expected.tested(labels)
                if why is not None:
                    raise CannotPromote(f"{ref} is not this commit's tested image: {why}")
                if expected.unsmoked(labels) is not None:
                    raise CannotPromote(f"{ref} was pushed without a smoke test")
            # Proof, never labels: a signature with a key; else this machine's build record.
            proof = None
            if verify_key is not None:
                proof = require_proof(target, repository, ref, source.digest, verify_key, commit)
            try:
                promoted = already_released(source, made[name]) or manifest_rewrite.promote(
                    source, made[name]
                )
            except CannotPromote as exc:
                raise CannotPromote(f"{ref}: {exc.why}") from None
            if verify_key is None:
                keyless_check(store, source, ref, commit, smoke == identity.SMOKE_PASSED)
            warnings.extend(f"{ref}: {line}" for line in promoted.warnings)
            mine.append(Candidate(target, name, repository, promoted, proof))
        images = [ReleaseImage(c.image, c.repository, c.promoted.image_id) for c in mine]
        current = survey(target, mine, [t.name for t in tags], tag_lists or {})
        try:
            pushes.extend(push_order.pushes(images, tags, [target.registry], current, force=force))
        except BuildToolsError as exc:
            raise CannotPromote(exc.problem) from None
        candidates.extend(mine)
    # One order over every registry, as one plan gives: immutable tags first.
    ordered = sorted(pushes, key=lambda p: p.floating)
    return Promotion(tuple(candidates), tuple(ordered), source_tag, tuple(warnings))


def require_proof(
    target: Target, repository: str, ref: str, digest: str, key: PublicKey, commit: str
) -> Proof:
    """Labels are claims anyone who can push can write: with a key configured, the tested
    image must be signed with it, carry a smoke-test attestation signed with it, and its
    signed provenance must name this commit, else :class:`CannotPromote`. The proof read."""
    from buildtools.attest import verify
    from buildtools.plan.statements import CYCLONEDX

    try:  # the SBOM is not read: it proves nothing here and is most of the bytes
        _, proof = verify.checked(
            target.client, repository, digest, key, commit=commit, require_smoke=True,
            skip=(CYCLONEDX,),
        )  # fmt: skip
    except BuildToolsError as exc:
        raise CannotPromote(
            f"{ref} has no proof it is this commit's tested image: {exc.problem}"
        ) from None
    return proof


def keyless_check(
    store: Store | None, source: SourceImage, ref: str, commit: str, smoke_needed: bool
) -> None:
    """Without signing keys, a registry image is this commit's tested build only if a build
    record on this machine names its config digest (the image ID it was built as) as a
    commit-tree build of ``commit``, with a passed smoke test when the release needs one:
    labels are what anyone who can push writes. :class:`CannotPromote` (then it is built)."""
    configs = list(source.configs) or [""]
    for digest in configs:
        record = store.load(digest) if store is not None and digest else None
        why = build_source.keyless_promotable(record, digest, commit, smoke_needed)
        if why is not None:
            raise CannotPromote(f"{ref} is not proven to be this commit's build: {why}")


def survey(
    target: Target,
    candidates: Sequence[Candidate],
    names: Sequence[str],
    tag_lists: TagLists,
) -> push_order.Current:
    """What the registry holds under each release tag, by digest: the repository's tag list
    (the one the release plan read, else read now) and a HEAD for each tag it has (a release's
    tags rarely exist, where reading every tag's manifest costs a request each). A tag already
    on this very release image is given its image ID, so the plan leaves it alone and a re-run
    puts nothing."""
    current: dict[tuple[str, str, str], Manifest | None] = {}
    for candidate in candidates:
        repository = candidate.repository
        listed = tag_lists.get((target.name, repository))
        existing = set(target.client.tags(repository) if listed is None else listed)
        for name in names:
            key = (target.name, repository, name)
            digest = target.client.digest(repository, name) if name in existing else None
            if digest is None:
                current[key] = None
                continue
            same = digest == candidate.promoted.digest
            image_id = candidate.promoted.image_id if same else None
            current[key] = Manifest(digest, "", image_id, 0)
    return current


class ManifestPusher:
    """A :class:`buildtools.engine.push.Pusher` that puts a promoted manifest under a tag through
    the registry API; counts the bytes it sends per registry and repository.

    Verification (:meth:`verify`), per tag: the registry's answer to the PUT must name the
    manifest by the digest computed here from the bytes sent (``Docker-Content-Digest``: it
    stored exactly those bytes, under that tag). Then one read-back per registry and
    repository, of the last tag put there, must serve that digest (as
    :func:`buildtools.release.publish.verify` does for every tag of an engine push); a tag whose PUT
    answer names no digest is read back too. A read-back per tag would only repeat what the
    PUT answered, at a request each."""

    def __init__(
        self,
        candidates: Sequence[Candidate],
        sent: dict[tuple[str, str], int],
        pushes: Sequence[Push] = (),
    ) -> None:
        self.by_key = {(c.target.name, c.repository): c.promoted for c in candidates}
        self.sent = sent
        # The last tag put per registry and repository: the one read back.
        self.last = {
            (p.registry, p.repository): p.tag for p in pushes if p.action != push_order.UNCHANGED
        }
        self.unanswered: set[tuple[str, str, str]] = set()

    def push(self, push: Push, target: Target, on_layer: Callable[..., None]) -> str:
        promoted = self.by_key[(push.registry, push.repository)]
        answer = target.client.put_manifest_answer(
            push.repository, push.tag, promoted.manifest, promoted.media_type
        )
        key = (push.registry, push.repository)
        self.sent[key] = self.sent.get(key, 0) + len(promoted.manifest)
        size = len(promoted.manifest)  # what this tag cost: its manifest (blobs went before)
        on_layer("manifest", "Pushed", size, size)
        if answer is None:
            self.unanswered.add((push.registry, push.repository, push.tag))
        elif answer != promoted.digest:
            raise BuildToolsError(
                f"verification failed for {push.reference}: the registry stored the manifest "
                f"as {answer}, not {promoted.digest} (the digest of the bytes sent)",
                "check that nothing between here and the registry rewrites manifests, then "
                "release again",
            )
        return promoted.digest

    def verify(self, push: Push, target: Target, digest: str) -> None:
        """The PUT's answer was checked in :meth:`push`; the last tag of each repository (and
        any whose answer named no digest) is read back as well."""
        key = (push.registry, push.repository)
        if self.last.get(key) == push.tag or (*key, push.tag) in self.unanswered:
            publish.verify(push, target, digest)

    def fetch(self, ref: str, tag: str, target: Target) -> str:
        raise BuildToolsError(f"promotion does not pull {ref}:{tag}", "release without promotion")

    def close(self) -> None:
        pass


def upload(candidate: Candidate) -> int:
    """The new blobs (layer, configs), then an index's child manifests by digest: everything
    a tag's manifest names exists before the tag does. The bytes sent. The blobs are made by
    this release, so the registry holds them only on a re-run after an interruption: they are
    sent without asking first (a HEAD each on every promotion, to save a few kB on a re-run)."""
    client = candidate.target.client
    sent = 0
    for blob in candidate.promoted.blobs:
        sent += client.put_blob(candidate.repository, blob.digest, blob.data, ask_first=False)
    for child in candidate.promoted.children:
        client.put_manifest(candidate.repository, child.digest, child.data, child.media_type)
        sent += len(child.data)
    return sent


def _promoted(planned: Promotion, sent: Mapping[tuple[str, str], int]) -> list[dict[str, Any]]:
    """Per registry and image: the tested image each release image was made from."""
    return [
        {
            "image": c.image,
            "registry": c.target.name,
            "repository": c.repository,
            "source_tag": planned.source_tag,
            "source_digest": c.promoted.source,
            "digest": c.promoted.digest,
            "bytes_sent": sent.get((c.target.name, c.repository), 0),
        }
        for c in planned.candidates
    ]


def execute(
    found: Sequence[Target],
    planned: Promotion,
    *,
    settings: Settings,
    dry_run: bool = False,
    reporter: PushReporter | None = None,
    before_floating: Callable[[publish.ReleaseResult], None] | None = None,
) -> publish.ReleaseResult:
    """Upload and put the prepared promotion (``dry_run``: only say what it would do).
    ``before_floating``: given what the exact tags hold, before a floating tag moves."""
    sent: dict[tuple[str, str], int] = {}
    early = None
    if before_floating is not None:
        hook = before_floating

        def early(exact: list[Push]) -> None:
            made = _promoted(planned, sent)
            hook(publish.ReleaseResult(exact, dry_run=False, promoted=made))

    if not dry_run:
        for candidate in planned.candidates:
            key = (candidate.target.name, candidate.repository)
            work = [p for p in planned.pushes if (p.registry, p.repository) == key]
            if all(p.action == push_order.UNCHANGED for p in work):
                continue  # every tag holds it already: nothing to upload
            sent[key] = sent.get(key, 0) + upload(candidate)
        pusher = ManifestPusher(planned.candidates, sent, planned.pushes)
        pushes = publish.execute(
            None,
            planned.pushes,
            found,
            retry=retry_policy(settings.release),
            reporter=reporter,
            pusher=pusher,
            verifier=pusher.verify,
            before_floating=early,
        )
    else:
        pushes = list(planned.pushes)
    promoted = _promoted(planned, sent)
    warnings = [*planned.warnings, *publish.nothing_moves(pushes), *floating.notes(pushes)]
    return publish.ReleaseResult(
        list(pushes), dry_run=dry_run, warnings=warnings, promoted=promoted
    )
