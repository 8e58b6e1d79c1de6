"""Signing what a release put in the registries, and attaching its proof.

With a signing key configured (``buildtools.release.signing_key``, or ``COSIGN_PRIVATE_KEY``),
every digest that got a release tag (``sha-`` included; app and sidecar; every registry) is
signed and gets, in cosign's registry layout (:mod:`buildtools.attest.cosign`): SLSA
provenance v1 made from the image's build record, its CycloneDX SBOM (syft, through the
registry), and for `invoke ci` the smoke test that passed with it. A promoted digest is signed
too, and the tested image's attestations are carried over to it: provenance and smoke test
re-issued about the promoted digest, naming the tested one; the SBOM, the same content, by
reference (no upload). The keys are loaded in the plan's preflight
(:func:`buildtools.attest.keyring.load_keys`): an unusable key stops a release before its
first build.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from buildtools.plan.build_record import COMMIT, WORKTREE, BuildRecord

if TYPE_CHECKING:
    from buildtools.attest.cosign import Proof
    from buildtools.attest.keys import SigningKey
    from buildtools.plan.manifests import Manifest
    from buildtools.registry.targets import Target
    from buildtools.release.identity import Proven
    from buildtools.release.prepare import Plan
    from buildtools.release.publish import ReleaseResult
    from buildtools.release.steps import Outcomes, Session

# SLSA's builder.id: this tool.
BUILDER_ID = "https://github.com/concord-consortium/lara-buildtools"
NO_KEY = (
    "NOT SIGNED: no signing key (set buildtools.release.signing_key or COSIGN_PRIVATE_KEY "
    "to sign and attest what is pushed)"
)


def now() -> str:
    """RFC 3339, UTC, to the second: when a smoke test started and ended."""
    import datetime as dt

    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def tool_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("lara-buildtools")
    except metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class Subject:
    """One digest in one registry to sign, the release tags it got, and (promoted) the tested
    digest it was made from."""

    target: Target = field(repr=False)
    image: str  # app / nginx
    repository: str
    digest: str
    image_id: str | None
    tags: tuple[str, ...]
    tested: str | None = None

    @property
    def name(self) -> str:
        """The repository as cosign names it (``host/repository``): the statements' subject
        and the signature's docker-reference."""
        return self.target.registry.push_name(self.repository)


def subjects(found: Sequence[Target], result: ReleaseResult) -> list[Subject]:
    """Every digest the release's tags point at now, once per registry and repository."""
    by_name = {t.name: t for t in found}
    tested = {
        (p["registry"], p["repository"], p["digest"]): p["source_digest"]
        for p in result.promoted
        if p["source_digest"] != p["digest"]
    }
    grouped: dict[tuple[str, str, str], list[Any]] = {}
    for push in result.pushes:
        digest = push.digest or push.previous
        if digest:
            grouped.setdefault((push.registry, push.repository, digest), []).append(push)
    return [
        Subject(
            by_name[registry],
            pushes[0].image,
            repository,
            digest,
            pushes[0].image_id,
            tuple(p.tag for p in pushes),
            tested.get((registry, repository, digest)),
        )
        for (registry, repository, digest), pushes in grouped.items()
    ]


def fallback_record(plan: Plan, image: str, repository: str, image_id: str) -> BuildRecord:
    """What the plan knows of a build this run made, for an image that has no build record
    of its own: the commit, the build args and the Dockerfile's digest."""
    from buildtools.release import build as builder

    info, settings = plan.meta.info, plan.settings
    dockerfile = ""
    if image == "app" and plan.dockerfile_text is not None:
        dockerfile = "sha256:" + hashlib.sha256(plan.dockerfile_text.encode()).hexdigest()
    base = settings.app.base_image if image == "app" else settings.nginx.image.base_image
    return BuildRecord(
        image=image,
        repository=repository,
        image_id=image_id,
        commit=info.commit,
        source=WORKTREE if info.dirty else COMMIT,
        context_tree="",
        dockerfile_digest=dockerfile,
        build_args=builder.metadata_buildargs(plan.meta) if image == "app" else {},
        base_image=base or "",
        created=info.build_date,
    )


def record_of(plan: Plan, done: Outcomes, subject: Subject) -> BuildRecord:
    """The build record of the image behind ``subject``: the one its build left (a build of
    this run, or a local image the release reused, from this checkout's record store), else
    what the plan knows."""
    found = stored_record(plan, done, subject)
    if found is not None:
        return found
    return fallback_record(plan, subject.image, subject.repository, subject.image_id or "")


def stored_record(plan: Plan, done: Outcomes, subject: Subject) -> BuildRecord | None:
    """The record a build left for exactly the image behind ``subject``; None when none."""
    for built in done.get("build") or ():
        record = getattr(built, "record", None)  # ci's BuiltImages; release's build: IDs only
        # Only this very image's: a release may push a registry image instead of its build.
        if record is not None and built.name == subject.image and built.id == subject.image_id:
            return record
    return plan.record_of(subject.image_id) if subject.image_id else None


def provenance(plan: Plan, record: BuildRecord) -> dict[str, Any]:
    from buildtools.plan import statements

    info = plan.meta.info
    return statements.slsa_provenance(
        record,
        repository_url=plan.settings.source_url,
        builder_id=BUILDER_ID,
        builder_version=tool_version(),
        invocation_id=info.build_number or "",
        run_url=info.build_url or "",
    )


def smoke(passed: Mapping[str, Any], done: Outcomes, plan: Plan) -> dict[str, Any]:
    """The smoke test's predicate from what `invoke ci`'s smoke test step returned."""
    from buildtools.plan import statements

    ids = {b.name: b.id for b in done.get("build") or ()}
    return statements.smoke_predicate(
        app_image=ids.get("app", ""),
        sidecar_image=ids.get("nginx", ""),
        path=str(passed.get("path", "")),
        status=200,
        version=plan.meta.info.version,
        started=str(passed.get("started", "")),
        finished=str(passed.get("finished", "")),
        expected=str(passed.get("expected", "")),
    )


def attested_by(subject: Subject, key: SigningKey) -> set[str]:
    """The predicate types ``key``'s attestations of ``subject`` claim already (a re-run of a
    release: its SBOM is kept, not made and uploaded again)."""
    from buildtools.plan.cosign_layout import (
        KEY_ANNOTATION,
        PREDICATE_ANNOTATION,
        attestation_tag,
        layers_of,
    )

    found = subject.target.client.manifest_bytes(
        subject.repository, attestation_tag(subject.digest)
    )
    keyid = key.public_key().keyid()
    return {
        layer.annotations.get(PREDICATE_ANNOTATION, "")
        for layer in (layers_of(found[0]) if found else [])
        if layer.annotations.get(KEY_ANNOTATION) == keyid
    }


@dataclass
class Signer:
    """Signs the subjects of one release with one key; each SBOM is made once per digest
    (the same content in every registry)."""

    plan: Plan
    done: Outcomes
    session: Session
    key: SigningKey = field(repr=False)
    sboms: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def sbom(self, subject: Subject) -> dict[str, Any]:
        from buildtools.attest import sbom

        key = (subject.repository, subject.digest)
        if key not in self.sboms:
            self.sboms[key] = sbom.generate(
                subject.target, subject.repository, subject.digest, env=self.plan.run.env
            )
        return self.sboms[key]

    def built(self, subject: Subject) -> tuple[int, list[str]]:
        """Attest an image this release built or pushed: provenance, SBOM, smoke test."""
        from buildtools.attest import cosign
        from buildtools.plan import statements

        have = attested_by(subject, self.key)
        made = []
        known = stored_record(self.plan, self.done, subject)
        if known is not None or statements.SLSA_PROVENANCE_V1 not in have:
            # An image no record here names (a registry image a release adopted, proven by
            # this key's provenance) keeps that provenance, not one made from the plan.
            made.append(
                (statements.SLSA_PROVENANCE_V1, provenance(self.plan, self.record(subject)))
            )
        if statements.CYCLONEDX not in have:
            made.append((statements.CYCLONEDX, self.sbom(subject)))  # syft's: new every time
        passed = self.done.get("smoke test")
        if passed and known is not None:  # the image it ran, not one adopted instead
            made.append((statements.SMOKE_TEST, smoke(passed, self.done, self.plan)))
        about = [(subject.name, subject.digest)]
        attested = [statements.statement(about, kind, predicate) for kind, predicate in made]
        client = subject.target.client
        sent = cosign.attest(client, subject.repository, subject.digest, attested, self.key)
        kept = have & {statements.CYCLONEDX, statements.SLSA_PROVENANCE_V1}
        return sent, sorted({kind for kind, _ in made} | kept)

    def record(self, subject: Subject) -> BuildRecord:
        return record_of(self.plan, self.done, subject)

    def promoted(self, subject: Subject) -> tuple[int, list[str]]:
        """Carry the tested image's attestations over to the digest promoted from it."""
        from buildtools.attest import carry
        from buildtools.release import build as builder

        assert subject.tested is not None
        rewritten = builder.metadata_buildargs(self.plan.meta) if subject.image == "app" else None
        return carry.carry_over(
            subject.target.client,
            subject.repository,
            subject.name,
            subject.tested,
            subject.digest,
            self.key,
            rewritten,
            self.proof(subject),
        )

    def proof(self, subject: Subject) -> Proof | None:
        """The tested image's proof as the promotion's check read it (None: read it now)."""
        promotion = self.plan.promotion
        for candidate in promotion.candidates if promotion is not None else ():
            if (candidate.target.name, candidate.repository) == (
                subject.target.name,
                subject.repository,
            ) and (candidate.proof is not None and candidate.proof.digest == subject.tested):
                return candidate.proof
        return None

    def sign(self, subject: Subject) -> dict[str, Any]:
        from buildtools.attest import cosign

        ref = f"{subject.name}@{subject.digest}"
        what = f"promoted from {subject.tested}" if subject.tested else ", ".join(subject.tags)
        self.session.say(f"signing {ref} ({what})")
        client = subject.target.client
        sent = cosign.sign(client, subject.repository, subject.digest, subject.name, self.key)
        more, kinds = self.promoted(subject) if subject.tested else self.built(subject)
        found = {
            "image": subject.image,
            "registry": subject.target.name,
            "repository": subject.repository,
            "digest": subject.digest,
            "tags": list(subject.tags),
            "signed": True,
            "attestations": kinds,
            "bytes_sent": sent + more,
        }
        if subject.tested:
            found["promoted_from"] = subject.tested
        return found


def adoption_proof(plan: Plan) -> Proven:
    """Why a registry image labelled this commit's (left by an interrupted release) is not
    proven its build, or None when it is: a build record here names its config digest as a
    commit-tree build of this commit, or (with a signing or verify key) its signature and
    provenance by the key verify and name this commit. Labels, which anyone who can push
    writes, are never enough: the release would put this commit's tags (and signature) on it."""
    key, commit = plan.keys.verify, plan.meta.info.commit

    def why_not(target: Target, repository: str, there: Manifest) -> str | None:
        from buildtools.attest import verify
        from buildtools.errors import BuildToolsError
        from buildtools.plan.statements import CYCLONEDX

        record = plan.record_of(there.config_digest) if there.config_digest else None
        if record is not None and record.releasable and record.commit == commit:
            return None
        if key is None:
            return (
                "no build record here says it is (it was built elsewhere, or not by this tool; "
                "a signing key lets a release prove it on any machine)"
            )
        try:  # the SBOM is not read: it proves nothing here
            verify.verify(
                target.client, repository, there.digest, key, commit=commit, skip=(CYCLONEDX,)
            )
        except BuildToolsError as exc:
            return f"no build record here nor proof by the key says it is: {exc.problem}"
        return None

    return why_not


def before_floating(
    plan: Plan, done: Outcomes, session: Session
) -> tuple[Callable[[ReleaseResult], None] | None, list[dict[str, Any]]]:
    """What the push (or promotion) calls once its exact tags are pushed, before any floating
    tag moves: sign and attest the digests they hold, so ``latest`` never names an unsigned
    image (a refused ``.sig`` stops the release there). None when nothing is signed; the list
    collects what was signed, which the sign step then does not sign again."""
    signed: list[dict[str, Any]] = []
    key = plan.keys.signing
    if key is None or not_signing(plan) is not None:
        return None, signed
    signer = Signer(plan, done, session, key)

    def sign_exact(result: ReleaseResult) -> None:
        signed.extend(signer.sign(subject) for subject in subjects(plan.targets, result))

    return sign_exact, signed


def sign_release(plan: Plan, done: Outcomes, session: Session) -> list[dict[str, Any]]:
    """The sign step: sign and attest every digest the release (or promotion) tagged that
    was not signed before its floating tags moved (:func:`before_floating`)."""
    key = plan.keys.signing
    assert key is not None  # the step's skip says so
    result: ReleaseResult | None = done.get("promote") or done.get("push")
    if result is None:
        return []
    signer = Signer(plan, done, session, key)
    early = {(s["registry"], s["repository"], s["digest"]): s for s in result.signatures}
    found = []
    for subject in subjects(plan.targets, result):
        before = early.get((subject.target.name, subject.repository, subject.digest))
        found.append({**before, "tags": list(subject.tags)} if before else signer.sign(subject))
    return found


def not_signing(plan: Plan) -> str | None:
    """Why the sign step does not run (None: it does)."""
    if plan.options.dry_run:
        return "dry run"
    if not plan.releases:
        return "nothing is released"
    if plan.keys.signing is None:
        return NO_KEY
    return None
