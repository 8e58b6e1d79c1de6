"""facts.remote on a remote that wants a login: ``invoke prune`` run at a terminal must fail in
one line, not sit at git's ``Username for …`` prompt (nor ssh's password prompt) forever.

The run gets a real terminal of its own (a pty as its controlling terminal, that nobody types
into), as a person's shell or a ``cron``-less scheduler with a tty would give it; the remote
is a loopback HTTP server that answers every request ``401`` with a Basic challenge.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tests.fixtures.git import git_env, init_repo
from tests.fixtures.git_prompts import at_a_terminal

ROOT = Path(__file__).resolve().parents[2]


def test_a_remote_that_wants_a_login_fails_in_one_line_at_a_terminal_instead_of_prompting(
    tmp_path: Path, login_wanted: str
) -> None:
    env = git_env(tmp_path / "home")
    clone = init_repo(tmp_path / "clone", env)
    clone.git("remote", "add", "origin", login_wanted)
    script = (
        "import sys\nfrom buildtools.errors import BuildToolsError\n"
        "from buildtools.facts import remote\n"
        "try:\n    remote.read(sys.argv[1], 'origin', 20)\n"
        "except BuildToolsError as exc:\n    print('error:', exc)\n    sys.exit(1)\n"
    )
    run_env = {**env, "PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)}

    code, said = at_a_terminal([sys.executable, "-c", script, str(clone.path)], run_env, 30)

    assert code == 1, f"still waiting after 30 s; it said: {said!r}"
    lines = [line for line in said.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: git ls-remote failed in "), said
    assert "use an ssh key or a credential helper" in lines[0]
