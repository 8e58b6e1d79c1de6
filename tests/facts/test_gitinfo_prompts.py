"""`--branch` checked against git asks origin when the checkout cannot tell; a tag a shallow
clone lacks is fetched from origin. Neither may sit at git's ``Username for …`` prompt when
origin wants a login: at a terminal nobody types into, each goes on at once, saying git could
not tell (tests/fixtures/git_prompts.py gives the remote and the terminal)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("script", "last_line"),
    [
        (
            "head = gitinfo.read(sys.argv[1]).commit\n"
            "found = gitinfo.branch_check(sys.argv[1], 'release-2', head)\n"
            "print('verdict', found.verdict, found.origin)\n",
            "verdict unknown unreachable",
        ),
        ("print('fetched', gitinfo.fetch_tag(sys.argv[1], 'v9.9.9'))\n", "fetched None"),
    ],
    ids=["branch check", "tag fetch"],
)
def test_asking_a_remote_that_wants_a_login_does_not_prompt(
    asking_clone, script: str, last_line: str
) -> None:
    code, said = asking_clone("import sys\nfrom buildtools.facts import gitinfo\n" + script)

    assert code == 0, f"still waiting after 30 s; it said: {said!r}"
    assert "Username" not in said
    assert said.strip().splitlines()[-1] == last_line
