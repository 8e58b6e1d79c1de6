"""Every key of the ``buildtools`` config section, declared once: name, kind, default, help, check.

From this table come the defaults invoke registers (``ns.configure``), the typed
:class:`~buildtools.config.schema.Settings` the code reads (``field`` says where), every check
of a single value, the ``INVOKE_BUILDTOOLS_*`` names, the unknown-key warnings and the README's
configuration table (``python -m buildtools.config.readme``). Defaults fit an app repository
laid out like LARA's (Dockerfile at the top, invoke.yaml beside tasks.py). Lists are
comma-separated strings so that environment variables can set them too. Checks of more than
one key, and those needing the tag policy (``policy``), are in :mod:`buildtools.plan.validate`.
"""

from __future__ import annotations

from pathlib import Path

from buildtools.config import checks, services
from buildtools.config.kinds import (
    Choice,
    Count,
    FilePath,
    Flag,
    Folder,
    Key,
    Names,
    Number,
    OptionalPath,
    Pairs,
    Section,
    Text,
)
from buildtools.config.nginx_keys import NGINX_KEYS

# The sidecar's Dockerfile, entrypoint and health check, shipped in the package so that an app
# repository needs no copy of them (``nginx.dockerfile``/``nginx.context`` left empty).
SIDECAR_DIR = Path(__file__).resolve().parents[1] / "sidecar"
# The templates `cache.from` understands (buildtools.engine.cache expands them).
CACHE_TEMPLATES = ("{sha}", "{branch}", "{release_branches}", "{release}")


def _image_keys(name: str, what: str, field: str) -> tuple[Key, ...]:
    """The keys every image has (``app.*``, ``nginx.*``), with their defaults."""
    app = name == "app"
    return (
        Key(
            f"{name}.repository",
            Text(),
            f"lara/{name}",
            f"image repository of the {what}"
            + (" (registry host is added at release)" if app else ""),
            checks.repository,
            field=f"{field}.repository",
        ),
        Key(
            f"{name}.dockerfile",
            FilePath() if app else FilePath(SIDECAR_DIR / "Dockerfile"),
            "Dockerfile" if app else "",
            "the app Dockerfile"
            if app
            else "the sidecar's Dockerfile; empty: the one shipped in the package "
            "(`buildtools/sidecar/Dockerfile`), a path: your own copy",
            field=f"{field}.dockerfile",
        ),
        Key(
            f"{name}.context",
            FilePath() if app else FilePath(SIDECAR_DIR),
            "." if app else "",
            "the app's build context (this repository sets `example`)"
            if app
            else "the folder with the sidecar's entrypoint and health check; empty: the "
            "package's `buildtools/sidecar/`",
            field=f"{field}.context",
        ),
        Key(
            f"{name}.base_image",
            Text(),
            "" if app else "debian:bookworm-slim",
            "passed as `BASE_IMAGE` when set; empty leaves the Dockerfile's own `FROM`"
            if app
            else "Debian (nginx is installed) or the official `nginx` image",
            checks.image_or_empty if app else checks.image,
            field=f"{field}.base_image",
        ),
        Key(
            f"{name}.build_args",
            Pairs("BUNDLE_INSTALL_ARGS=--local", last=True),
            "",
            "extra, non-secret build args, `KEY=VALUE,KEY=VALUE`"
            if app
            else "extra build args for the sidecar",
            checks.build_args,
            field=f"{field}.build_args",
        ),
    )


RELEASE_KEYS = (
    Key(
        "release.registries",
        Names(),
        "",
        "registries to push to, `host[:port],…`; empty means Docker Hub",
        checks.registries,
    ),
    Key(
        "release.branches",
        Names(),
        "master,main",
        "branches whose builds may be released (tag builds always may): names or fnmatch "
        "globs, `*` for every branch (as LARA's workflow pushes today), `release/*` (`*` also "
        "matches `/`; case-sensitive, like git)",
        checks.branch_globs,
    ),
    Key("release.allow_pull_requests", Flag(), False, "release pull-request builds too"),
    Key(
        "release.retries",
        Count(0),
        5,
        "retries of a push or registry call on transient errors (the check of every registry "
        "before a build makes as many, with waits under a second)",
    ),
    Key(
        "release.retry_base_delay",
        Number(),
        1.0,
        "first backoff delay in seconds (doubles, with jitter)",
    ),
    Key("release.retry_max_delay", Number(), 30.0, "the longest backoff delay in seconds"),
    Key(
        "release.promote",
        Choice("auto", "never", false_means="never"),
        "auto",
        "`auto`: a release of a commit whose `sha-` images every registry already holds "
        "promotes them (see *Promotion*); `never` (or YAML's `no`, `off`, `false`): always build",
    ),
    Key(
        "release.signing_key",
        OptionalPath(),
        "",
        "PEM ECDSA P-256 private key (or `cosign generate-key-pair`'s `cosign.key`) that signs "
        "and attests what is pushed; empty: env `COSIGN_PRIVATE_KEY`, else nothing is signed. "
        "Its password only from env `COSIGN_PASSWORD`",
    ),
    Key(
        "release.verify_key",
        OptionalPath(),
        "",
        "PEM public key that `invoke verify` checks with; empty: the signing key's public half",
    ),
)

SMOKE_KEYS = (
    Key(
        "smoke.path",
        Text(empty="/"),
        "/",
        "the page the smoke test (and `invoke up`) asks for through the sidecar",
        checks.url_path,
    ),
    Key(
        "smoke.expect",
        Text(),
        "",
        "text that page must show; empty: the build's version string (LARA's footer shows it)",
    ),
    Key(
        "smoke.env",
        Names(),
        "",
        "the app's environment, `KEY=VALUE,…`; a bare `KEY` is read from the environment "
        "(secrets: never written here)",
        checks.env_entries,
    ),
    Key(
        "smoke.prepare",
        Text(),
        "",
        "a command run in the app image before it starts, e.g. `bin/rails db:prepare db:seed`",
    ),
    Key(
        "smoke.timeout",
        Count(1),
        120,
        "seconds each service, the prepare command and the app get to be ready",
    ),
    Key(
        "smoke.services",
        Section(services.parse),
        {},
        "service containers by name (their network alias), each with "
        + ", ".join(f"`{k}` ({v})" for k, v in services.SERVICE_KEYS.items())
        + ", e.g. MariaDB",
        services.check,
    ),
)

# Every key, in the order of the README's table.
KEYS: tuple[Key, ...] = (
    Key("title", Text(), "LARA", "`org.opencontainers.image.title`"),
    Key(
        "source_url",
        Text(),
        "https://github.com/concord-consortium/lara",
        "`org.opencontainers.image.source` and `url`",
    ),
    Key("repo", Folder(), ".", "the git checkout whose branch/tag/commit describe the build"),
    *_image_keys("app", "app", "app"),
    *_image_keys("nginx", "sidecar", "nginx.image"),
    *NGINX_KEYS,
    Key(
        "git.untracked_is_dirty",
        Flag(),
        False,
        "whether untracked files make the tree dirty",
        field="untracked_is_dirty",
    ),
    Key(
        "tags.extra",
        Pairs("master=edge"),
        "master=edge",
        "extra floating tags per branch, `branch=tag,…`",
        field="extra_tags",
        policy="check_extra_tags",
    ),
    Key(
        "tags.pull_requests",
        Flag(),
        False,
        "give pull-request builds a `pr-N` tag",
        field="pull_request_tags",
    ),
    Key(
        "tags.sha_prefix",
        Text(),
        "sha-",
        "starts the commit tag, `sha-0123abc` (LARA's GitHub workflow uses `git-`); letters, "
        "digits, `_`, `.`, `-`, not empty, and not one that would make a commit tag look like "
        "a version (`v`)",
        field="sha_prefix",
        policy="check_sha_prefix",
    ),
    *RELEASE_KEYS,
    *SMOKE_KEYS,
    Key(
        "cache.from",
        Names(),
        ",".join(CACHE_TEMPLATES),
        "earlier images to reuse layers from on a fresh machine, best first: this commit's "
        "`sha-` tag, this branch's tag, each release branch's tag, the highest release; plain "
        "tags too",
        field="cache_from",
        policy="check_cache_from",
    ),
    Key(
        "cache.pull",
        Flag(),
        True,
        "look for and pull those images before building (`false`: only the engine's own cache)",
        field="cache_pull",
    ),
    Key(
        "cache.registries",
        Names(),
        "",
        "registries to look in for those images, `host[:port],…`; empty means those of "
        "`release.registries` (the Docker Hub a release falls back to is never asked unless "
        "named here or there); one named only here logs in with its own "
        "`DOCKER_USERNAME_<HOST>`/`DOCKER_PASSWORD_<HOST>` or not at all, never "
        "`DOCKER_PASSWORD`",
        checks.registries,
        field="cache_registries",
    ),
    Key(
        "prune.keep_commits",
        Count(0),
        20,
        "`invoke prune` keeps the `sha-` tags of this many last commits of each branch on the "
        "remote",
    ),
    Key(
        "prune.keep_days",
        Count(0),
        30,
        "`invoke prune` keeps `sha-` and `pr-` tags newer than this many days",
    ),
    Key(
        "prune.remote",
        Text(),
        "origin",
        "the git remote whose branches `invoke prune` asks for (`git ls-remote`): tags of "
        "branches gone from it are deleted",
        checks.remote_name,
    ),
    Key(
        "bases.repository",
        Text(),
        "lara-buildtools/debian",
        "where `invoke bases` tags the debootstrapped image",
        checks.repository,
        field="bases_repository",
    ),
)

KEY = {key.name: key for key in KEYS}


def default_of(name: str) -> object:
    """The typed default of key ``name`` (for the dataclasses' own defaults)."""
    return KEY[name].typed_default()
