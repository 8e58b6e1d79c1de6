"""What every case of `invoke bench` stands on: the machine's description, a recorder of
build steps, and :class:`Bench`, the run's temporary git repository and image names.

Everything a run makes is named ``lara-bench-<run id>…`` (images, containers, network) or lives
in one temporary directory (git repositories, registries, nginx config); :meth:`Bench.close`
removes it, including the image layers the builds made.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import docker
import docker.errors
import requests

import testbed
from buildtools.config.schema import Settings
from buildtools.engine import build_spec
from buildtools.errors import BuildToolsError
from buildtools.facts import buildinfo, read
from buildtools.plan import metadata
from buildtools.release import build as builder
from buildtools.release import prepare

if TYPE_CHECKING:
    from tests.fixtures.git import GitRepo

ROOT = Path(__file__).resolve().parents[1]
LAYER_INSTRUCTIONS = ("RUN", "COPY", "ADD")
METADATA_START = "ARG LARA_VERSION"

if str(ROOT) not in sys.path:  # tests.fixtures.git, when run as a script
    sys.path.insert(0, str(ROOT))


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def machine(client: docker.DockerClient) -> tuple[str, str]:
    """(short label for the table, full description) of this machine."""
    cpus = os.cpu_count() or 0
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_gib = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        first = Path("/proc/meminfo").read_text().splitlines()[0]
        mem_gib = int(first.split()[1]) / 1024 / 1024
    engine = client.version().get("Version", "?")
    debian = ""
    with contextlib.suppress(OSError):
        debian = f"Debian {Path('/etc/debian_version').read_text().strip()}, "
    wrk = shutil.which("wrk")
    wrk_version = ""
    if wrk:
        done = subprocess.run([wrk, "--version"], capture_output=True, text=True)
        wrk_version = (done.stdout + done.stderr).split("Copyright")[0].strip()
    label = f"{cpus} CPU, {mem_gib:.0f} GiB, Docker {engine.split('+')[0]}"
    full = (
        f"{cpus} x {model}, {mem_gib:.1f} GiB RAM, {debian}Linux {platform.release()}, "
        f"Docker Engine {engine} (classic builder, storage {client.info().get('Driver', '?')}), "
        f"Python {platform.python_version()}, {wrk_version or 'wrk not installed'}"
    )
    return label, full


@dataclasses.dataclass
class Step:
    number: int
    instruction: str
    cached: bool = False
    seconds: float = 0.0
    # FROM, and ARG before the first FROM, make no image: the builder never says "Using cache".
    setup: bool = False

    @property
    def makes_layer(self) -> bool:
        return self.instruction.split(" ", 1)[0].upper() in LAYER_INSTRUCTIONS


class StepRecorder:
    """A BuildReporter that keeps every step of every image: instruction, cache hit, time."""

    def __init__(self) -> None:
        self.steps: dict[str, dict[int, Step]] = {}
        self._in_stage: set[str] = set()

    def step(self, image: str, number: int, total: int, instruction: str) -> None:
        keyword = instruction.split(" ", 1)[0].upper()
        setup = keyword == "FROM" or (keyword == "ARG" and image not in self._in_stage)
        if keyword == "FROM":
            self._in_stage.add(image)
        self.steps.setdefault(image, {})[number] = Step(number, instruction, setup=setup)

    def step_done(self, image: str, number: int, cached: bool, seconds: float) -> None:
        self.steps[image][number].cached = cached
        self.steps[image][number].seconds = seconds

    def output(self, image: str, line: str) -> None:
        pass

    def of(self, image: str) -> list[Step]:
        return [s for _, s in sorted(self.steps.get(image, {}).items())]

    def rebuilt(self, image: str) -> list[Step]:
        return [s for s in self.of(image) if not s.cached and not s.setup]

    def timing(self, image: str, total: float) -> str:
        """Where a build's time went: steps not from cache (LABEL ones apart), cached steps,
        and the rest (sending the context, tagging)."""
        steps = self.of(image)
        rebuilt = self.rebuilt(image)
        labels = [s for s in rebuilt if s.instruction.upper().startswith("LABEL")]
        others = [s for s in rebuilt if s not in labels]
        in_steps = sum(s.seconds for s in steps)
        slowest = max(others, key=lambda s: s.seconds, default=None)
        parts = [
            f"{len(others)} steps not from cache {sum(s.seconds for s in others):.2f} s"
            + (
                f" (slowest: `{short(slowest.instruction, 32)}` {slowest.seconds:.2f} s)"
                if slowest
                else ""
            ),
            f"{len(labels)} LABEL steps the builder adds, one per label, "
            f"{sum(s.seconds for s in labels):.2f} s",
            f"{len(steps) - len(rebuilt)} other steps (cached or FROM/ARG) "
            f"{in_steps - sum(s.seconds for s in rebuilt):.2f} s",
            f"outside the steps (context upload, image inspect, tagging) {total - in_steps:.2f} s",
        ]
        return "; ".join(parts)

    def metadata_from(self, image: str) -> int:
        """Number of the first metadata step (``ARG LARA_VERSION``); the builder's LABEL
        step for images without one (the sidecar)."""
        steps = self.of(image)
        for s in steps:
            if s.instruction.startswith(METADATA_START):
                return s.number
        return steps[-1].number if steps else 0


def short(instruction: str, width: int = 48) -> str:
    text = " ".join(instruction.split())
    return text if len(text) <= width else text[: width - 1] + "…"


class Bench:
    """A temporary git repository whose commits are the builds' metadata, and image names
    of this run; ``close()`` removes every image and layer the run made."""

    def __init__(self, client: docker.DockerClient, settings: Settings) -> None:
        from tests.fixtures.git import git_env, init_repo
        from tests.fixtures.project import commit_example

        self.client = client
        self.run_id = secrets.token_hex(4)
        self.prefix = f"lara-bench-{self.run_id}"
        self.work = Path(tempfile.mkdtemp(prefix="lara-bench-"))
        self.git_env = git_env(self.work / "home")
        self.repo = init_repo(self.work / "lara", dict(self.git_env), branch="master")
        context = commit_example(self.repo)  # a release builds the commit's own files
        self.settings = dataclasses.replace(
            settings,
            repo=self.repo.path,
            app=dataclasses.replace(settings.app, repository=f"{self.prefix}/app", context=context),
            # Case 3 measures the sidecar's proxy cache for assets only the app has, so the
            # sidecar fetches missing assets from the app (the example's auto would say 404).
            nginx=dataclasses.replace(
                settings.nginx,
                image=dataclasses.replace(settings.nginx.image, repository=f"{self.prefix}/nginx"),
                asset_fallback="proxy",
            ),
        )
        # IDs only: images.list() inspects each image, and one another user of the engine
        # removes meanwhile fails the whole run.
        self.before = set(client.api.images(all=True, quiet=True))
        self.built: list[str] = []

    def commit(self, message: str) -> metadata.Metadata:
        """A new commit that changes nothing in the build context: only the metadata.

        The run id makes every commit (and so every build's metadata) new to the engine."""
        self.repo.commit(f"{message} ({self.run_id})")
        return self.meta()

    def project(self, name: str) -> GitRepo:
        """A repository of its own holding this project on master, committed (a CI checkout)."""
        from tests.fixtures.git import init_repo
        from tests.fixtures.project import copy_into

        repo = init_repo(self.work / name, dict(self.git_env), branch="master")
        copy_into(repo)
        repo.commit(f"import lara-buildtools ({self.run_id})")
        return repo

    def plan(self, settings: Settings | None = None, only: str = "") -> prepare.Plan:
        """`invoke build`'s plan of HEAD: its metadata and its build source, the commit's own
        tree (a release reuses only a commit-tree build, so this is what users build)."""
        # No CI environment: the metadata comes from the temporary repository alone.
        run = read.Run.read(settings or self.settings, {}, buildinfo.Overrides())
        return prepare.for_build(run, prepare.Options(only=only))

    def meta(self, settings: Settings | None = None) -> metadata.Metadata:
        return self.plan(settings).meta

    def build(
        self,
        meta: metadata.Metadata,
        *,
        only: str = "",
        nocache: bool = False,
        reporter: StepRecorder | None = None,
    ) -> dict[str, build_spec.BuiltImage]:
        """Build HEAD (``meta`` is its metadata) as `invoke build` does: from the commit's tree,
        with its build records kept."""
        plan = self.plan(only=only)
        if plan.tree is None or plan.meta.info.commit != meta.info.commit:
            raise BuildToolsError(
                f"the bench builds HEAD from its commit, not {meta.info.commit[:7]} "
                f"({'; '.join(plan.source_notes) or 'another commit'})",
                "build right after Bench.commit, with a clean temporary repository",
            )
        built = builder.build_all(
            self.client,
            self.settings,
            plan.meta,
            only=only,
            nocache=nocache,
            reporter=reporter,
            dockerfile_text=plan.dockerfile_text,
            source=plan.tree,
            store=plan.store,
        )
        self.built += [b.id for b in built]
        return {b.name: b for b in built}

    def chain(self, image_id: str) -> list[str]:
        """The image and its parents, newest first, that did not exist before this run."""
        found = []
        current = image_id
        while current and current not in self.before:
            found.append(current)
            try:
                current = self.client.api.inspect_image(current).get("Parent") or ""
            except docker.errors.NotFound:
                break
        return found

    def close(self) -> None:
        """Remove this run's tags, then the images and layers it made (never older ones)."""
        # The chains first: removing an image's last tag deletes it, and its parent with it.
        depth: dict[str, int] = {}  # steps below the newest image: children before parents
        for image_id in self.built:
            chain = self.chain(image_id)
            for position, node in enumerate(chain):
                depth[node] = len(chain) - position
        for image in self.client.images.list():
            for tag in image.tags:
                if tag.split("/")[0] == self.prefix or f"/{self.prefix}/" in tag:
                    with contextlib.suppress(docker.errors.APIError):
                        self.client.images.remove(tag, noprune=True)
        for image_id in sorted(depth, key=depth.__getitem__, reverse=True):
            with contextlib.suppress(docker.errors.APIError):  # in use, or a child of ours
                self.client.images.remove(image_id, noprune=True)
        shutil.rmtree(self.work, ignore_errors=True)


def built_commands(engine: testbed.FreshEngine, bench: Bench) -> str:
    """ENTRYPOINT and CMD of this run's images on the fresh engine (the cache sources too):
    a failed smoke test is most often a container that exits at start."""
    found = []
    with contextlib.suppress(docker.errors.DockerException, requests.RequestException):
        for image in engine.client().images.list():
            config = image.attrs["Config"]
            found += [
                f"{tag}: Entrypoint {config.get('Entrypoint')} Cmd {config.get('Cmd')}"
                for tag in image.tags
                if f"{bench.prefix}/" in tag
                and tag.rsplit(":", 1)[1].startswith(("sha-", "master"))
            ]
    return "images on the fresh engine: " + ("; ".join(sorted(found)) or "none")


def base_images(settings: Settings) -> list[str]:
    return list(dict.fromkeys([settings.app.base_image, settings.nginx.image.base_image]))
