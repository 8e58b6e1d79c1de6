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

from buildtools.config import checks, nginx_checks, services
from buildtools.config.kinds import (
    Check,
    Choice,
    Count,
    FilePath,
    Flag,
    Folder,
    Key,
    Kind,
    Names,
    Number,
    OptionalPath,
    Pairs,
    Section,
    Text,
    value_only,
)

# The sidecar's Dockerfile, entrypoint and health check, shipped in the package so that an app
# repository needs no copy of them (``nginx.dockerfile``/``nginx.context`` left empty).
SIDECAR_DIR = Path(__file__).resolve().parents[1] / "sidecar"
# The templates `cache.from` understands (buildtools.engine.cache expands them).
CACHE_TEMPLATES = ("{sha}", "{branch}", "{release_branches}", "{release}")

_TIME = nginx_checks.matching(nginx_checks.TIME, "3m, 30s or 7d")
_SIZE = "1g or 500m"


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


def _nginx(name: str, kind: Kind, default: object, help: str, check: Check | None = None) -> Key:
    return Key(f"nginx.{name}", kind, default, help, check)


NGINX_KEYS = (
    _nginx(
        "upstream",
        Text(),
        "app:3000",
        "default `APP_UPSTREAM` (host:port of the app; the container's env overrides it)",
        value_only(nginx_checks.check_upstream),
    ),
    _nginx(
        "asset_prefixes",
        Names(),
        "assets,images,javascripts,stylesheets,swfs,system",
        "path prefixes served from disk and cached; `system` (Rails' user uploads) is served "
        "from disk or by the app, never cached",
        value_only(nginx_checks.check_asset_prefixes),
    ),
    _nginx(
        "cache_size",
        Text(),
        "1g",
        "`max_size` of the proxy cache for assets only the app has",
        nginx_checks.matching(nginx_checks.SIZE, _SIZE),
    ),
    _nginx("cache_inactive", Text(), "7d", "how long an unused cached asset stays", _TIME),
    _nginx(
        "short_max_age",
        Count(0, example="300 (seconds)"),
        300,
        "`max-age` (s) of asset-path files without a fingerprint",
    ),
    _nginx(
        "client_max_body_size",
        Text(),
        "10m",
        "upload limit (LARA's own nginx says `10M`)",
        nginx_checks.matching(nginx_checks.SIZE, "100m"),
    ),
    _nginx("proxy_read_timeout", Text(), "3m", "as in LARA's nginx config", _TIME),
    _nginx(
        "resolver",
        Text(),
        "127.0.0.11",
        "DNS used to re-resolve the app at run time (Docker's)",
        nginx_checks.resolver,
    ),
    _nginx(
        "resolver_valid",
        Text(),
        "5s",
        "how long a DNS answer is trusted: the sidecar follows a restarted app to its new IP "
        "within this",
        _TIME,
    ),
    _nginx("proxy_connect_timeout", Text(), "5s", "connecting to the app", _TIME),
    _nginx(
        "fingerprint_min_length",
        Count(7, 128, "32 for Sprockets (md5 or sha256 digests), 20 for webpack's contenthash"),
        32,
        "hex digits that make a name fingerprinted (`name-<hex>.ext`, no `-` in `ext`; cached "
        "forever); Sprockets uses 64, webpack 20",
    ),
    _nginx(
        "access_log_buffer",
        Text(),
        "32k",
        "buffer of the sidecar's access log on stdout, flushed every second; empty for one "
        "write per request",
        nginx_checks.matching(nginx_checks.LOG_BUFFER, "32k, or empty for none", empty_ok=True),
    ),
    _nginx(
        "server_names",
        Names(),
        "",
        "host names served, `lara.example.org,*.concord.org`; any other `Host` gets 421 and "
        "never reaches the app; empty: any host",
        value_only(nginx_checks.check_server_names),
    ),
    _nginx(
        "trusted_proxies",
        Names(),
        "",
        "addresses or CIDRs of the proxies in front whose `X-Forwarded-*` are believed; from "
        "anyone else (empty: everyone) the app gets the connection's own",
        value_only(nginx_checks.check_trusted_proxies),
    ),
    _nginx(
        "asset_fallback",
        Choice(*nginx_checks.ASSET_FALLBACKS, fix=nginx_checks.ASSET_FALLBACK_FIX),
        "auto",
        "a file missing under the asset prefixes: `proxy` (fetched from the app, cached), "
        "`404` (nginx's own, the app never asked), `auto` (decided from the app image, see "
        "below)",
    ),
    _nginx(
        "source_maps",
        Flag(),
        False,
        "serve `*.map` files (source maps show the app's original code); off: 404",
    ),
    _nginx(
        "gzip_pages",
        Flag(),
        False,
        "also compress the app's own pages at the sidecar (assets always are); off because a "
        "page that mixes a secret with what the client sent must not be compressed (BREACH)",
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
