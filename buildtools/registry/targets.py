"""The registries a release goes to: each with its API client and its credentials.

Built once per task from the release config and the environment; the preflight (reachable,
login accepted) runs once on them before anything is pushed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from buildtools.config.registry_address import Registry, parse_registry
from buildtools.config.schema import ReleaseConfig
from buildtools.errors import BuildToolsError
from buildtools.facts.versions import ascending, semver_tags
from buildtools.registry import credentials as creds
from buildtools.registry.client import RegistryClient, registry_versions
from buildtools.registry.credentials import Credentials
from buildtools.registry.failures import CredentialsMissing
from buildtools.registry.retry import RetryPolicy


@dataclass(frozen=True)
class Target:
    """One registry to release to, its API client and the login both the client and the
    engine's pushes use (None: anonymous)."""

    registry: Registry
    client: RegistryClient
    credentials: Credentials | None = None

    @property
    def name(self) -> str:
        return self.registry.name

    @property
    def auth_config(self) -> dict[str, str] | None:
        return self.credentials.auth_config() if self.credentials else None


def secrets_of(found: Sequence[Target]) -> list[str]:
    """Every password in play, for redacting foreign messages."""
    return [t.credentials.password for t in found if t.credentials]


def credential_routes(found: Sequence[Target]) -> list[str]:
    """Where each registry's credentials go, as its preflight learnt (``--dry-run`` says
    it): the registry itself (Basic), or the token server its challenge named (bearer)."""
    lines = []
    for target in found:
        if target.credentials is None:
            lines.append(f"credentials for {target.name}: none set, none sent")
            continue
        where = target.client.credentials_go_to()
        to = "; ".join(where) or "nowhere: the registry asked for no login"
        lines.append(f"credentials for {target.name} ({target.credentials.source}) go to {to}")
    return lines


def retry_policy(config: ReleaseConfig) -> RetryPolicy:
    return RetryPolicy(
        retries=max(0, config.retries),
        base_delay=max(0.0, config.retry_base_delay),
        max_delay=max(0.0, config.retry_max_delay),
    )


def configured(
    config: ReleaseConfig,
    env: Mapping[str, str],
    retry: RetryPolicy | None = None,
    on_retry: Callable[[str, int, float, str], None] | None = None,
) -> list[Target]:
    """The configured registries (none configured: Docker Hub) with credentials from ``env``."""
    retry = retry or retry_policy(config)
    found: list[Target] = []
    for entry in config.registries_or_default:
        registry = parse_registry(entry)
        if any(t.registry.name == registry.name for t in found):
            continue
        login = creds.for_registry(registry.name, env)
        client = RegistryClient(registry, login, retry, on_retry=on_retry)
        found.append(Target(registry, client, login))
    return found


def check(found: Sequence[Target], repositories: Sequence[str]) -> list[CredentialsMissing]:
    """Every registry answers and accepts our login, or one clear error; returns the registries
    that ask for a login and have no credentials here (the caller decides what that means:
    ``invoke release`` refuses, a pull request from a fork just does not push)."""
    missing: list[CredentialsMissing] = []
    for target in found:
        client = target.client
        full, client.retry = client.retry, preflight_retry(client.retry)
        try:
            client.check_access(repositories)
        except CredentialsMissing as exc:
            missing.append(exc)
        finally:
            client.retry = full
    return missing


def preflight_retry(policy: RetryPolicy) -> RetryPolicy:
    """The check runs before any build: as many retries as a push gets (a registry's brief
    503s are no reason to fail), but short waits, so one that does not answer fails the check
    in seconds (under 4 s for the default five) where a push, with work done, waits longer."""
    return RetryPolicy(
        retries=policy.retries,
        base_delay=min(policy.base_delay, 0.25),
        max_delay=min(policy.max_delay, 1.0),
    )


def missing_error(missing: Sequence[CredentialsMissing]) -> BuildToolsError:
    """One error for every registry that asks for a login and has no credentials."""
    if len(missing) == 1:
        return missing[0]
    names = ", ".join(m.registry for m in missing)
    fixes = "; ".join(m.fix for m in missing)
    return BuildToolsError(f"registries {names} require a login and have no credentials", fixes)


def preflight(found: Sequence[Target], repositories: Sequence[str]) -> None:
    """Every registry answers and accepts our login (if it needs one), or one clear error.

    Missing credentials for several registries are reported together.
    """
    missing = check(found, repositories)
    if missing:
        raise missing_error(missing)


def known_versions(found: Sequence[Target], repositories: Sequence[str]) -> list[str]:
    """Release versions already in any registry: pass them to the tag plan so that a backport
    (1.4.9 after 2.0.0) does not move ``latest``, ``1``… (see :mod:`buildtools.plan.tags`)."""
    return registry_versions([t.client for t in found], repositories)


# Every tag of every repository in every registry, by (registry name, repository).
TagLists = Mapping[tuple[str, str], tuple[str, ...]]


def tag_lists(
    found: Sequence[Target], repositories: Sequence[str]
) -> dict[tuple[str, str], tuple[str, ...]]:
    """Every tag each registry holds per repository, read once: the release versions the tag
    plan needs (:func:`versions_in`), and which release tags exist for a promotion's survey."""
    return {
        (target.name, repository): tuple(target.client.tags(repository))
        for target in found
        for repository in repositories
    }


def versions_in(lists: TagLists) -> list[str]:
    """The release versions among the tags read (what :func:`known_versions` reads)."""
    return ascending({v for names in lists.values() for v in semver_tags(names)})
