"""`--branch` checked against git asks origin when the checkout cannot tell; a tag a shallow
clone lacks is fetched from origin. Neither may sit at git's ``Username for …`` prompt when
origin wants a login: at a terminal nobody types into, the check goes on in one line."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tests.fixtures.git import git_env, init_repo
from tests.fixtures.git_prompts import at_a_terminal

ROOT = Path(__file__).resolve().parents[2]


def test_a_branch_check_against_a_remote_that_wants_a_login_does_not_prompt(
    tmp_path: Path, login_wanted: str
) -> None:
    env = git_env(tmp_path / "home")
    clone = init_repo(tmp_path / "clone", env)
    clone.git("remote", "add", "origin", login_wanted)
    script = (
        "import sys\nfrom buildtools.facts import gitinfo\n"
        "head = gitinfo.read(sys.argv[1]).commit\n"
        "found = gitinfo.branch_check(sys.argv[1], 'release-2', head)\n"
        "print('verdict', found.verdict, found.origin)\n"
    )
    run_env = {**env, "PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)}

    code, said = at_a_terminal([sys.executable, "-c", script, str(clone.path)], run_env, 30)

    assert code == 0, f"still waiting after 30 s; it said: {said!r}"
    assert "Username" not in said
    assert said.strip().splitlines()[-1] == "verdict unknown unreachable"


def test_fetching_a_tag_from_a_remote_that_wants_a_login_does_not_prompt(
    tmp_path: Path, login_wanted: str
) -> None:
    env = git_env(tmp_path / "home")
    clone = init_repo(tmp_path / "clone", env)
    clone.git("remote", "add", "origin", login_wanted)
    script = (
        "import sys\nfrom buildtools.facts import gitinfo\n"
        "print('fetched', gitinfo.fetch_tag(sys.argv[1], 'v9.9.9'))\n"
    )
    run_env = {**env, "PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)}

    code, said = at_a_terminal([sys.executable, "-c", script, str(clone.path)], run_env, 30)

    assert code == 0, f"still waiting after 30 s; it said: {said!r}"
    assert "Username" not in said
    assert said.strip().splitlines()[-1] == "fetched None"
