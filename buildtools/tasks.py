"""invoke tasks: each is a few lines that call library functions.

An app repository uses them with a one-line ``tasks.py`` (``from buildtools.tasks import ns``)
and its own ``invoke.yaml``. Exit codes, error lines, pipes and ``--json`` are
:mod:`buildtools.cli.process`'s; flags are checked by :mod:`buildtools.cli.flags`; the work is
a pipeline of steps over one plan (:mod:`buildtools.release.pipeline`).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from invoke import Collection, Context, task

from buildtools.cli import flags, process
from buildtools.config import invokefiles, schema

# --- invoke integration ------------------------------------------------------------------------
# Defaults reach invoke once, as text (ns.configure at the end, schema.defaults). invoke reads
# the project's config file and environment right after this import: check them first, so what
# would be invoke's traceback is one line (invokefiles; public parts of invoke only).
IMPORTED_FROM = invokefiles.importer_dir()
invokefiles.check_project(IMPORTED_FROM)
process.freeze_at_exit()


def project_root(c: Context) -> Path:
    """The directory invoke took ``tasks.py`` (and ``invoke.yaml``) from: the file that imported
    this module (``-r``/``-c`` included), else found as invoke's own loader finds it (upwards
    from the working directory); the working directory when none is found."""
    if IMPORTED_FROM is not None:
        return IMPORTED_FROM
    found = invokefiles.project_dir(c.config, c.config.tasks.collection_name)
    return found if found is not None else Path.cwd()


def settings(c: Context) -> schema.Settings:
    """The project's Settings; paths are relative to the directory holding tasks.py."""
    from buildtools.plan import validate

    checked = validate.check(schema.load(invokefiles.section(c.config), project_root(c)))
    unread = schema.env_warnings(os.environ)  # invoke drops them silently
    return dataclasses.replace(checked, warnings=checked.warnings + unread) if unread else checked


def facts(c: Context, branch: str = "", tag: str = "", commit: str = ""):
    """This invocation's facts (settings, CI environment, git), read once."""
    from buildtools.cli import flags
    from buildtools.facts.read import Run

    return Run.read(settings(c), os.environ, flags.overrides(branch, tag, commit))


def path(value: str) -> Path | None:
    from buildtools.cli import flags

    return flags.path(value)


@task(help={"suite": "Debian suite to bootstrap (default: the host's own)"})
def bases(c, suite=""):
    """Make the local Debian base image with debootstrap (Docker Hub is not needed)."""
    from buildtools.engine.bases import ensure_base_image
    from buildtools.engine.connect import connect
    from buildtools.engine.images import repository_of

    with process.reported():
        client = connect()
        ref = ensure_base_image(client, settings(c).bases_repository, suite=suite or None)
        print(ref)
        # The digest of what was made (its image ID: an import is in no registry), as a pin.
        pinned = f"{repository_of(ref)}@{client.images.get(ref).id}"
        process.to_stderr(f"pin it: base_image: {pinned}")


REF_HELP = {
    "branch": "the branch being built, one git says this commit is on (replaces CI and git)",
    "tag": "the git tag being built, at this commit, e.g. v1.2.3 (replaces CI and git)",
    "commit": "the commit being built; with it, no git checkout is needed",
}


@task(help={"format": "yaml (default), json or env (LARA_*=... shell lines)", **REF_HELP})
def version(c, format="yaml", branch="", tag="", commit=""):
    """Print what this build is (version.yml content) and why it gets its image tags."""
    from buildtools.plan import metadata, versionfile

    with process.reported(as_json=format == "json"):
        versionfile.check_format(format)
        meta = metadata.of_run(facts(c, branch, tag, commit))
        for image_tag in meta.tags:
            kind = "floating" if image_tag.floating else "immutable"
            process.to_stderr(f"tag {image_tag.name} ({kind}): {image_tag.reason}")
        for warning in meta.warnings:
            process.to_stderr(f"warning: {warning}")
        print(versionfile.render(meta.version_data(), format), end="")


@task(
    help={
        "only": "build just one image: app or nginx (default: both, app first)",
        "context": "app build context (default: buildtools.app.context), e.g. a LARA checkout",
        "dockerfile": "app Dockerfile (default: buildtools.app.dockerfile)",
        "no-cache": "rebuild every layer",
        "dry-run": "print images, tags, build args, labels and the steps; build nothing",
        "json": "print the result as JSON on stdout (no progress display)",
        "quiet": "no progress display, only the summary",
        "verbose": "show every line the build prints",
        "worktree": "build the directory as it is, untracked files too (local only: labelled "
        "dirty, never released); default: the commit's own files when the tree is clean",
        **REF_HELP,
    }
)
def build(
    c,
    only="",
    context="",
    dockerfile="",
    no_cache=False,
    dry_run=False,
    json=False,
    quiet=False,
    verbose=False,
    branch="",
    tag="",
    commit="",
    worktree=False,
):
    """Build the app image with its version info, then the nginx sidecar from it."""
    from buildtools.cli import output
    from buildtools.release import pipeline
    from buildtools.release.prepare import Options

    with process.reported(as_json=json):
        flags = Options(only, path(dockerfile), path(context), no_cache, dry_run, worktree=worktree)
        done = pipeline.build(
            facts(c, branch, tag, commit),
            flags,
            process.session(as_json=json, quiet=quiet, verbose=verbose),
        )
        if dry_run:
            process.show(
                json, done.specs, lambda: output.dry_run_text(done.specs(), done.listing())
            )
            return
        built = done.built
        process.show(
            json,
            lambda: [b.as_dict() for b in built],
            lambda: output.build_summary(list(built), done.plan.meta),
        )


@task(
    help={
        "port": "port the sidecar is published on, on the engine's host (default: 8080)",
        "name": "name prefix of the containers and network (default: lara)",
        **REF_HELP,
    }
)
def up(c, port="", name="lara", branch="", tag="", commit=""):
    """Run the images built for this commit: app + nginx sidecar, and print the URL."""
    from buildtools.cli import flags
    from buildtools.engine import connect, stack
    from buildtools.plan import metadata
    from buildtools.release import build as builder

    with process.reported():
        host_port, name = flags.port_number(port or 8080), flags.stack_name(name)
        run = facts(c, branch, tag, commit)
        meta, cfg = metadata.of_run(run), run.settings
        app, sidecar = (
            meta.local_refs(r)[0] for r in (cfg.app.repository, cfg.nginx.image.repository)
        )
        client = connect.connect()
        builder.existing_image(client, app, "app")
        builder.existing_image(client, sidecar, "nginx")
        running = stack.up(
            client, app, sidecar, name=name, port=host_port, cfg=cfg.smoke, env=os.environ
        )
        print(f"LARA: {running.url}{cfg.smoke.path}")
        if running.note:
            process.warn(running.note)
        stop = "invoke down" if name == "lara" else f"invoke down --name {name}"
        print(f"logs: docker logs {running.app} / docker logs {running.sidecar}; stop: {stop}")


@task(help={"name": "name prefix given to `invoke up` (default: lara)"})
def down(c, name="lara"):
    """Stop and remove what `invoke up` started."""
    from buildtools.cli import flags
    from buildtools.engine import connect, stack

    with process.reported():
        checked = flags.stack_name(name)  # bad input is one line, with or without an engine
        stack.down(connect.connect(), checked)


@task(
    help={
        "port": "host port the sidecar publishes (default: 8080)",
        "tag": "the Docker image tag to name, one this build pushes (e.g. 1.2.3 or sha-0123abc;"
        " default: the first exact one); unlike the other tasks' --tag, not a git tag",
        "digest": "pin both images by the digest the registry serves for that tag",
        "swarm": "for docker stack deploy: depends_on as names only (Swarm refuses conditions)",
    }
)
def compose(c, port="", tag="", digest=False, swarm=False):
    """Print a Compose file for this build's pair and the smoke test's services."""
    from buildtools.cli import flags
    from buildtools.engine import compose as composer
    from buildtools.engine import stack_parts
    from buildtools.plan import metadata
    from buildtools.registry import targets

    with process.reported():
        host_port = flags.port_number(port or 8080)
        run = facts(c)
        cfg, meta = run.settings, metadata.of_run(run)
        name = composer.choose_tag(meta.tags, tag)
        target = targets.configured(cfg.release, os.environ)[0]
        pair = [
            composer.Image(target.registry.push_name(repo), repo, name)
            for repo in (cfg.app.repository, cfg.nginx.image.repository)
        ]
        if digest:
            pair = [composer.pin(image, target.client.digest) for image in pair]
        data = composer.document(
            cfg.smoke, *pair, host_port, stack_parts.APP_PORT, stack_parts.SIDECAR_PORT, swarm=swarm
        )
        info, secrets = meta.info, composer.secret_names(cfg.smoke)
        print(
            composer.render(
                data, title=cfg.title, version=info.version, commit=info.commit,
                secrets=secrets, swarm=swarm,
            ),
            end="",
        )  # fmt: skip


@task(name="config")
def nginx_config(c):
    """Print the nginx.conf the sidecar image is built with (from buildtools.sidecar.nginx_conf)."""
    from buildtools.sidecar import nginx_conf

    with process.reported():
        print(nginx_conf.render_config(settings(c).nginx), end="")


@task(
    help={
        "dry-run": "list every push (registry, repository, tag) and the steps; push nothing",
        "json": "print the result as JSON on stdout (no progress display)",
        "force": "overwrite exact release tags that already hold other content",
        "no-promote": "build and push even when the registries hold this commit's sha- images",
        **REF_HELP,
    }
)
def release(
    c, dry_run=False, json=False, force=False, branch="", tag="", commit="", no_promote=False
):
    """Push the app and nginx images with every policy tag to every registry, verified."""
    from buildtools.cli import flags
    from buildtools.release import pipeline
    from buildtools.release.prepare import Options

    with process.reported(as_json=json):
        flags_given = flags.overrides(branch, tag, commit)
        options = Options(dry_run=dry_run, force=force, promote=not no_promote)
        session = process.session(as_json=json)
        done = pipeline.release(
            settings(c), os.environ, flags_given, options, session, warn=not json
        )
        if dry_run and not json:
            process.to_stderr("\n".join(done.listing()))
        process.show(json, done.result.as_dict, done.result.text)


@task(
    help={
        "json": "print the outcome as JSON on stdout (progress and decisions go to stderr)",
        "no-smoke": "skip the smoke test (says so loudly): build and release only",
        "no-promote": "build a release even when the registries hold this commit's sha- images",
    }
)
def ci(c, json=False, no_smoke=False, no_promote=False):
    """For CI: build, smoke-test app + sidecar, and release only release branches and tags."""
    from buildtools.release import ci_steps
    from buildtools.release.prepare import Options

    with process.reported(as_json=json):
        options = Options(smoke_test=not no_smoke, promote=not no_promote)
        say = process.to_stderr if json else process.to_stdout
        session = process.session(as_json=json, say=say)
        done = ci_steps.ci(settings(c), os.environ, options, session, quiet=json)
        process.show(json, done.as_dict, lambda: None)


@task(
    help={
        "yes": "delete what the rules say (default: a dry run that only lists it)",
        "dry-run": "list what would be deleted and kept, and why (the default)",
        "json": "print the decisions (and deletes) as JSON on stdout",
    }
)
def prune(c, yes=False, dry_run=False, json=False):
    """Delete sha-, pr- and branch tags no one needs, in every registry (a dry run unless --yes)."""
    from buildtools.cli import flags
    from buildtools.release import prune as pruner

    with process.reported(as_json=json):
        flags.one_of_yes_and_dry_run(yes, dry_run)
        say = process.to_stderr if json else process.to_stdout
        done = pruner.run(settings(c), os.environ, yes=yes, say=say, listing=not json)
        process.show(json, done.as_dict, done.text)


@task(help={"json": "print the inventory as JSON on stdout"})
def releases(c, json=False):
    """List the releases both images have in every registry: digest, labelled commit and date,
    signature and smoke-test tags, floating tags; sha-/branch tags counted; disagreements."""
    from buildtools.release import inventory

    with process.reported(as_json=json):
        found = inventory.releases(settings(c), os.environ)
        process.show(json, found.as_dict, found.text)


@task(
    help={
        "tag": "the floating tag to move back: latest, X or X.Y",
        "version": "the exact release it goes back to (1.2.3); not with --clear",
        "dry-run": "show the move and the checks; change nothing",
        "json": "print the outcome as JSON on stdout",
        "clear": "remove TAG's rollback marker: the next release moves TAG again",
    },
    positional=["tag", "version"],
    klass=flags.VersionOrClear,
)
def rollback(c, tag, version=None, dry_run=False, json=False, clear=False):
    """Move a floating tag (latest, X, X.Y) of both images back to release VERSION in every
    registry, or neither; marks it so the next release does not move it silently."""
    from buildtools.errors import BuildToolsError
    from buildtools.release import rollback as rolling

    with process.reported(as_json=json):
        if tag.startswith("-"):  # invoke hands `rollback --help` here as the tag
            raise BuildToolsError(f"{tag!r} is no tag", "invoke --help rollback shows the usage")
        if clear and version:
            raise BuildToolsError(
                f"--clear removes the marker of {tag} and takes no version ({version})",
                f"invoke rollback --clear {tag}",
            )
        cfg = settings(c)
        if clear:
            done = rolling.clear(cfg, os.environ, tag, dry_run=dry_run)
        else:
            if not version:
                raise BuildToolsError(
                    f"which release should {tag} go back to?", f"invoke rollback {tag} 1.2.3"
                )
            done = rolling.run(cfg, os.environ, tag, version, dry_run=dry_run)
        process.show(json, done.as_dict, done.text)


@task(
    help={
        "image": "[host[:port]/]repository[:tag] or …@sha256:<hex>; no host: the first of "
        "buildtools.release.registries",
        "key": "PEM public key to check with (default: buildtools.release.verify_key, else the "
        "signing key's public half)",
        "commit": "also require the provenance to name this commit",
        "json": "print the result as JSON on stdout",
    }
)
def verify(c, image, key="", commit="", json=False):
    """Check an image's signature and attestations in its registry (no engine), and print
    the commit, version, smoke test and SBOM they prove."""
    from buildtools.attest import verify as checker

    with process.reported(as_json=json):
        release = settings(c).release
        public = checker.public_key(release, os.environ, path(key))
        client, repository, reference = checker.client_for(image, release, os.environ)
        done = checker.verify(client, repository, reference, public, commit=commit or None)
        process.show(json, done.as_dict, done.text)


ns = Collection(
    bases, version, build, up, down, compose, release, ci, releases, rollback, prune, verify
)
ns.add_collection(Collection("nginx", nginx_config))
# The defaults, defined once (buildtools/config/schema.py): an app's invoke.yaml holds only changes.
ns.configure({schema.SECTION: schema.defaults()})
