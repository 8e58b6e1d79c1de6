"""facts.remote on a remote that wants a login: ``invoke prune`` run at a terminal must fail in
one line, not sit at git's ``Username for …`` prompt (nor ssh's password prompt) forever.

The run gets a real terminal of its own (a pty as its controlling terminal, that nobody types
into), as a person's shell or a ``cron``-less scheduler with a tty would give it; the remote
is a loopback HTTP server that answers every request ``401`` with a Basic challenge.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.fixtures.git import git_env, init_repo

ROOT = Path(__file__).resolve().parents[2]


class _LoginWanted(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="git"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def login_wanted() -> Iterator[str]:
    """The URL of a git remote that asks for a login."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LoginWanted)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/lara.git"
    server.shutdown()
    server.server_close()


def _at_a_terminal(command: list[str], env: dict[str, str], limit: float) -> tuple[int | None, str]:
    """Run ``command`` with a pty as its controlling terminal; (exit code or None when it was
    still running after ``limit`` seconds, everything it wrote)."""
    leader, follower = pty.openpty()

    def own_terminal() -> None:
        os.setsid()
        fcntl.ioctl(follower, termios.TIOCSCTTY, 0)

    child = subprocess.Popen(command, stdin=follower, stdout=follower, stderr=follower, env=env,
                             preexec_fn=own_terminal, close_fds=True)  # fmt: skip
    os.close(follower)
    out = b""
    deadline = time.monotonic() + limit
    os.set_blocking(leader, False)
    while child.poll() is None and time.monotonic() < deadline:
        try:
            out += os.read(leader, 4096)
        except (BlockingIOError, OSError):
            time.sleep(0.05)
    code = child.poll()
    if code is None:
        os.killpg(child.pid, 9)
        child.wait()
    with contextlib.suppress(OSError):
        out += os.read(leader, 65536)
    os.close(leader)
    return code, out.decode(errors="replace")


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

    code, said = _at_a_terminal([sys.executable, "-c", script, str(clone.path)], run_env, 30)

    assert code == 1, f"still waiting after 30 s; it said: {said!r}"
    lines = [line for line in said.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: git ls-remote failed in "), said
    assert "use an ssh key or a credential helper" in lines[0]
