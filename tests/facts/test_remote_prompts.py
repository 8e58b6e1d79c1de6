"""facts.remote on a remote that wants a login: ``invoke prune`` run at a terminal must fail in
one line, not sit at git's ``Username for …`` prompt (nor ssh's password prompt) forever.

The run gets a real terminal of its own (a pty as its controlling terminal, that nobody types
into), as a person's shell or a ``cron``-less scheduler with a tty would give it; the remote
is a loopback HTTP server that answers every request ``401`` with a Basic challenge
(tests/fixtures/git_prompts.py).
"""

from __future__ import annotations


def test_a_remote_that_wants_a_login_fails_in_one_line_at_a_terminal_instead_of_prompting(
    asking_clone,
) -> None:
    code, said = asking_clone(
        "import sys\nfrom buildtools.errors import BuildToolsError\n"
        "from buildtools.facts import remote\n"
        "try:\n    remote.read(sys.argv[1], 'origin', 20)\n"
        "except BuildToolsError as exc:\n    print('error:', exc)\n    sys.exit(1)\n"
    )

    assert code == 1, f"still waiting after 30 s; it said: {said!r}"
    lines = [line for line in said.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: git ls-remote failed in "), said
    assert "use an ssh key or a credential helper" in lines[0]
