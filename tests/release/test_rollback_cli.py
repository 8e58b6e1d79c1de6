"""``invoke rollback`` typed as the README and its own error messages say: ``invoke rollback
latest 1.2.0`` (both positional), then ``invoke rollback --clear latest`` (no version). Invoke
fills a positional argument only while its value is None and errors when one is left unfilled,
so these two forms need the task's own argument class. The real console script, a real
docker-registry, the result read back with skopeo."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import testbed
from tests.fixtures import history
from tests.fixtures.registry import login_env, repos
from tests.fixtures.registry_images import skopeo_inspect

ROOT = Path(__file__).resolve().parents[2]
INVOKE = ROOT / ".venv" / "bin" / "invoke"


def test_rollback_tag_version_then_clear_tag_work_as_typed(
    tmp_path: Path, fast_registry: testbed.LocalRegistry
) -> None:
    app, nginx = repos()
    made = history.make(branches={"master": 1})
    for repository in (app, nginx):
        history.push(fast_registry, repository, made)
    project = tmp_path / "project"
    project.mkdir()
    (project / "tasks.py").write_text("from buildtools.tasks import ns  # noqa: F401\n")
    (project / "invoke.yaml").write_text(
        f"buildtools:\n  app:\n    repository: {app}\n  nginx:\n    repository: {nginx}\n"
        f"  release:\n    registries: {fast_registry.host}\n"
    )
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    env |= login_env(fast_registry.host, fast_registry.username, fast_registry.password)

    def invoke(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(INVOKE), "rollback", *args], cwd=project, env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip

    def digest(repository: str, tag: str) -> str:
        auth = tmp_path / "skopeo"
        auth.mkdir(exist_ok=True)
        return skopeo_inspect(fast_registry, f"{repository}:{tag}", auth)["Digest"]

    moved = invoke("latest", "1.2.0")
    assert moved.returncode == 0, moved.stderr
    for repository in (app, nginx):
        assert digest(repository, "latest") == digest(repository, "1.2.0")
        assert "rollback-latest" in fast_registry.tags(repository)

    both = invoke("latest", "1.2.0", "--clear")
    assert both.returncode == 1
    assert both.stderr.strip() == (
        "error: --clear removes the marker of latest and takes no version (1.2.0) "
        "(fix: invoke rollback --clear latest)"
    )

    cleared = invoke("--clear", "latest")
    assert cleared.returncode == 0, cleared.stderr
    for repository in (app, nginx):
        assert "rollback-latest" not in fast_registry.tags(repository)
        assert digest(repository, "latest") == digest(repository, "1.2.0")
