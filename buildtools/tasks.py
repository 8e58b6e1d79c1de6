"""invoke tasks: each is a few lines that call library functions.

An app repository uses them with a one-line ``tasks.py`` (``from buildtools.tasks import ns``)
and its own ``invoke.yaml``.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import gc
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from invoke import Collection, Context, task
from invoke.exceptions import Exit

from buildtools.config import invokefiles, schema
from buildtools.errors import INTERRUPTED, BuildToolsError

# --- invoke integration ------------------------------------------------------------------------
# Defaults reach invoke once, as text (ns.configure at the end, schema.defaults). invoke reads
# the project's config file and environment right after this import: check them first, so what
# would be invoke's traceback is one line (invokefiles; public parts of invoke only).
IMPORTED_FROM = invokefiles.importer_dir()
invokefiles.check_project(IMPORTED_FROM)

# At exit the interpreter's last garbage collections walk every object the imports made (invoke,
# docker-py, GitPython): ~150 ms, more than a no-op build's engine work. Frozen first, they are
# skipped; the process is ending, and its memory goes back to the system with it. atexit handlers
# (temporary files, logging) run as before, and objects freed by reference counts still are.
atexit.unregister(gc.freeze)  # once, also when this module is imported again
atexit.register(gc.freeze)


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
    unread = validate.env_warnings(os.environ)  # invoke drops them silently
    return dataclasses.replace(checked, warnings=checked.warnings + unread) if unread else checked


def overrides_from(branch: str, tag: str, commit: str):
    """Task flags to buildinfo.Overrides; an empty flag means "ask CI and git"."""
    from buildtools.facts import buildinfo, ci_env

    for flag, value in (("--branch", branch), ("--tag", tag), ("--commit", commit)):
        if ci_env.has_control_character(value or ""):
            raise BuildToolsError(
                f"{flag} {value!r} holds a control character (a line break?)",
                f"pass {flag} a plain name",
            )
    return buildinfo.Overrides(branch=branch or None, tag=tag or None, commit=commit or None)


_STACK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


def stack_name(value: str) -> str:
    """``--name`` as the prefix of container and network names, or a one-line error."""
    if not _STACK_NAME.fullmatch(value):
        raise BuildToolsError(
            f"--name {value!r} cannot start container names",
            "use letters, digits, _ . and -, starting with a letter or digit",
        )
    return value


def port_number(value: object) -> int:
    """``--port`` as a TCP port, or a one-line error."""
    text = str(value).strip()
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise BuildToolsError(f"--port {value!r} is not a port number", "pass 1 to 65535")
    return int(text)


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def one_line(text: str) -> str:
    """Error text as one plain line: colour codes (from build output) only on a terminal."""
    text = " ".join(text.split("\n"))
    return text if sys.stderr.isatty() else _ANSI.sub("", text)


def _stdout_gone() -> bool:
    """Whether nobody reads stdout any more (``invoke build --json | head -1`` after head
    exited): a pipe whose reader closed reports POLLERR."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM ends a task as Ctrl-C does, so the same cleanup runs and the same line says what
    was left: it is how a CI cancels a job (GitLab, GitHub Actions), how `timeout` and
    `docker stop` end one; by default it kills Python at once, leaving a smoke test's
    containers and network on the engine and no word on a release's state. The previous
    handler comes back afterwards (tasks also run in-process, e.g. in the tests)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


@contextlib.contextmanager
def reported() -> Iterator[None]:
    """Turn a BuildToolsError into a one-line message and a non-zero exit, no traceback; and
    Ctrl-C (or SIGTERM) into exit 130 with one line (the code that was interrupted says what
    was left). A reader of stdout that stopped early (``| head``) ends the task quietly: it
    has what it wanted, and the work itself was done."""
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            # Closed by the caller (`>&-`, `2>&-`): Python then has None there, and a print to
            # a None stderr lands on stdout, in the JSON a script reads. Nowhere, instead.
            setattr(sys, name, open(os.devnull, "w"))  # noqa: SIM115 (the process's own)
    try:
        with _terminate_as_interrupt():
            yield
        sys.stdout.flush()  # here, not at exit, where a closed pipe is a traceback
    except BrokenPipeError:
        if not _stdout_gone():
            raise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise Exit(code=0) from None
    except BuildToolsError as exc:
        prefix = "" if exc.exit_code == INTERRUPTED else "error: "
        raise Exit(one_line(f"{prefix}{exc}"), code=exc.exit_code) from None
    except KeyboardInterrupt:
        raise Exit("interrupted", code=INTERRUPTED) from None


@task(help={"suite": "Debian suite to bootstrap (default: the host's own)"})
def bases(c, suite=""):
    """Make the local Debian base image with debootstrap (Docker Hub is not needed)."""
    from buildtools.engine.bases import ensure_base_image
    from buildtools.engine.connect import connect

    with reported():
        cfg = settings(c)
        print(ensure_base_image(connect(), cfg.bases_repository, suite=suite or None))


@task(
    help={
        "format": "yaml (default), json or env (LARA_*=... shell lines)",
        "branch": "the branch being built (replaces what CI and git say)",
        "tag": "the git tag being built, e.g. v1.2.3 (replaces what CI and git say)",
        "commit": "the commit being built; with it, no git checkout is needed",
    }
)
def version(c, format="yaml", branch="", tag="", commit=""):
    """Print what this build is (version.yml content) and why it gets its image tags."""
    import sys

    from buildtools.facts.read import Run
    from buildtools.plan import metadata, versionfile

    with reported():
        versionfile.check_format(format)
        meta = metadata.of_run(
            Run.read(settings(c), os.environ, overrides_from(branch, tag, commit))
        )
        for image_tag in meta.tags:
            kind = "floating" if image_tag.floating else "immutable"
            print(f"tag {image_tag.name} ({kind}): {image_tag.reason}", file=sys.stderr)
        for warning in meta.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        print(versionfile.render(meta.version_data(), format), end="")


REF_HELP = {
    "branch": "the branch being built (replaces what CI and git say)",
    "tag": "the git tag being built, e.g. v1.2.3 (replaces what CI and git say)",
    "commit": "the commit being built; with it, no git checkout is needed",
}


@task(
    help={
        "only": "build just one image: app or nginx (default: both, app first)",
        "context": "app build context (default: buildtools.app.context), e.g. a LARA checkout",
        "dockerfile": "app Dockerfile (default: buildtools.app.dockerfile)",
        "no-cache": "rebuild every layer",
        "dry-run": "print images, tags, build args and labels; build nothing",
        "json": "print the result as JSON on stdout (no progress display)",
        "quiet": "no progress display, only the summary",
        "verbose": "show every line the build prints",
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
):
    """Build the app image with its version info, then the nginx sidecar from it."""
    import json as jsonlib

    from buildtools.cli import output
    from buildtools.engine import connect
    from buildtools.facts.read import Run
    from buildtools.plan import metadata, validate
    from buildtools.release import build as builder
    from buildtools.release import pipeline, progress

    with reported():
        cfg = settings(c)
        meta = metadata.of_run(Run.read(cfg, os.environ, overrides_from(branch, tag, commit)))
        output.warnings(meta.warnings)
        paths = {
            "dockerfile": Path(dockerfile).resolve() if dockerfile else None,
            "context": Path(context).resolve() if context else None,
        }
        text = None if only == "nginx" else builder.read_app_dockerfile(cfg, paths["dockerfile"])
        output.warnings(builder.check_app_dockerfile(cfg, only, paths["dockerfile"], text))
        if only in ("", "app"):
            validate.check_context(paths["context"] or cfg.app.context, bool(context))
        if dry_run:
            plan = builder.dry_run_plan(cfg, meta, only, dockerfile_text=text, **paths)
            print(jsonlib.dumps(plan, indent=2) if json else output.plan_text(plan))
            return
        client = connect.connect()
        reporter = None if (json or quiet) else progress.BuildProgress(verbose=verbose)
        try:
            built = pipeline.build_images(
                client,
                cfg,
                meta,
                os.environ,
                say=lambda line: print(line, file=sys.stderr),
                reporter=reporter,
                only=only,
                nocache=no_cache,
                dockerfile_text=text,
                **paths,
            )
        finally:
            if reporter:
                reporter.close()
        if json:
            print(jsonlib.dumps([b.as_dict() for b in built], indent=2))
        else:
            output.build_summary(built, meta)


def built_refs(c: Context, branch: str, tag: str, commit: str) -> tuple[str, str, str]:
    """Local app and sidecar refs for this checkout's metadata, and its commit."""
    from buildtools.facts.read import Run
    from buildtools.plan import metadata

    cfg = settings(c)
    meta = metadata.of_run(Run.read(cfg, os.environ, overrides_from(branch, tag, commit)))
    app = meta.local_refs(cfg.app.repository)[0]
    sidecar = meta.local_refs(cfg.nginx.image.repository)[0]
    return app, sidecar, meta.info.commit


@task(
    help={
        "port": "port the sidecar is published on, on the engine's host (default: 8080)",
        "name": "name prefix of the containers and network (default: lara)",
        **REF_HELP,
    }
)
def up(c, port="", name="lara", branch="", tag="", commit=""):
    """Run the images built for this commit: app + nginx sidecar, and print the URL."""
    from buildtools.engine import connect, stack
    from buildtools.release import build as builder

    with reported():
        host_port = port_number(port or 8080)
        stack_name(name)
        app, sidecar, _ = built_refs(c, branch, tag, commit)
        client = connect.connect()
        builder.existing_image(client, app, "app")
        builder.existing_image(client, sidecar, "nginx")
        cfg = settings(c)
        running = stack.up(
            client, app, sidecar, name=name, port=host_port, cfg=cfg.smoke, env=os.environ
        )
        print(f"LARA: {running.url}{cfg.smoke.path}")
        print(f"logs: docker logs {running.app} / docker logs {running.sidecar}; stop: invoke down")


@task(help={"name": "name prefix given to `invoke up` (default: lara)"})
def down(c, name="lara"):
    """Stop and remove what `invoke up` started."""
    from buildtools.engine import connect, stack

    with reported():
        checked = stack_name(name)  # bad input is one line, with or without an engine
        stack.down(connect.connect(), checked)


@task(
    help={
        "port": "host port the sidecar publishes (default: 8080)",
        "tag": "image tag to name (default: the first exact tag this build pushes)",
        "digest": "pin both images by the digest the registry serves for that tag",
        "swarm": "for docker stack deploy: depends_on as names only (Swarm refuses conditions)",
    }
)
def compose(c, port="", tag="", digest=False, swarm=False):
    """Print a Compose file for this build's pair and the smoke test's services."""
    from buildtools.engine import compose as composer
    from buildtools.engine import stack
    from buildtools.facts.read import Run
    from buildtools.plan import metadata
    from buildtools.registry import targets

    with reported():
        host_port = port_number(port or 8080)
        cfg = settings(c)
        meta = metadata.of_run(Run.read(cfg, os.environ, overrides_from("", "", "")))
        name = composer.choose_tag(meta.tags, tag)
        target = targets.configured(cfg.release, os.environ)[0]
        pair = [
            composer.Image(target.registry.push_name(repo), repo, name)
            for repo in (cfg.app.repository, cfg.nginx.image.repository)
        ]
        if digest:
            pair = [composer.pin(image, target.client.digest) for image in pair]
        data = composer.document(
            cfg.smoke, *pair, host_port, stack.APP_PORT, stack.SIDECAR_PORT, swarm=swarm
        )
        secrets = composer.secret_names(cfg.smoke)
        print(
            composer.render(
                data,
                title=cfg.title,
                version=meta.info.version,
                commit=meta.info.commit,
                secrets=secrets,
                swarm=swarm,
            ),
            end="",
        )


@task(name="config")
def nginx_config(c):
    """Print the nginx.conf the sidecar image is built with (from buildtools.sidecar.nginx_conf)."""
    from buildtools.sidecar import nginx_conf

    with reported():
        print(nginx_conf.render_config(settings(c).nginx), end="")


@task(
    help={
        "dry-run": "list every push (registry, repository, tag) and push nothing",
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
    import json as jsonlib

    from buildtools.cli import output
    from buildtools.release import pipeline

    with reported():
        result = pipeline.release_task(
            settings(c),
            os.environ,
            overrides_from(branch, tag, commit),
            force=force,
            dry_run=dry_run,
            quiet=json,
            warn=None if json else lambda line: output.warnings([line]),
            promote=not no_promote,
        )
        print(jsonlib.dumps(result.as_dict(), indent=2) if json else result.text())


@task(
    help={
        "json": "print the outcome as JSON on stdout (progress and decisions go to stderr)",
        "no-smoke": "skip the smoke test (says so loudly): build and release only",
        "no-promote": "build a release even when the registries hold this commit's sha- images",
    }
)
def ci(c, json=False, no_smoke=False, no_promote=False):
    """For CI: build, smoke-test app + sidecar, and release only release branches and tags."""
    import json as jsonlib

    from buildtools.cli import output
    from buildtools.plan import validate
    from buildtools.release import build as builder
    from buildtools.release import pipeline

    with reported():
        say = (lambda line: print(line, file=sys.stderr)) if json else print
        cfg = settings(c)
        text = builder.read_app_dockerfile(cfg)  # once for the whole run, before the engine
        output.warnings(builder.check_app_dockerfile(cfg, dockerfile_text=text))
        if not no_smoke:
            validate.check_smoke_env(cfg, os.environ)
        result = pipeline.ci(
            cfg,
            os.environ,
            quiet=json,
            say=say,
            smoke_test=not no_smoke,
            dockerfile_text=text,
            promote=not no_promote,
        )
        if json:
            print(jsonlib.dumps(result, indent=2))


ns = Collection(bases, version, build, up, down, compose, release, ci)
ns.add_collection(Collection("nginx", nginx_config))
# The defaults, defined once (buildtools/schema.py): an app's invoke.yaml holds only changes.
ns.configure({schema.SECTION: schema.defaults()})
