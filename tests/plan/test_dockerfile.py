"""The app Dockerfile check: parsing (pure), and what `invoke build` is told before building."""

from __future__ import annotations

from pathlib import Path

import pytest

from buildtools.config import schema
from buildtools.errors import BuildToolsError
from buildtools.plan.dockerfile import ERROR, WARNING, instructions, parse, problems, stages
from buildtools.release import build
from tests.fixtures.bad_input import (
    NO_ENGINE,
    App,
    fails_in_one_line,
    goes_on_with_a_warning,
    whole_rows,
)

ROOT = Path(__file__).resolve().parents[2]

# The end of LARA's own Dockerfile today (reference: "LARA as it is today").
LARA = """\
FROM ruby:3.3.7
RUN apt-get update -qq && apt-get install -y build-essential libpq-dev nginx nodejs
RUN gem install foreman
ENV APP_HOME /lara
WORKDIR $APP_HOME
COPY Gemfile* $APP_HOME/
RUN bundle install
COPY . $APP_HOME
RUN RAILS_SECRET_KEY_BASE=dummy bundle exec rake assets:precompile
EXPOSE 80
CMD ./docker/prod/run.sh
ARG LARA_VERSION
ENV LARA_IMAGE_VERSION=$LARA_VERSION
"""

# (case, Dockerfile text, [(severity, text the message contains, lines)])
CASES = [
    ("our own Dockerfile", (ROOT / "Dockerfile").read_text(), []),
    ("LARA's Dockerfile as it is", LARA, []),
    (
        "no metadata block",
        "FROM ruby:3.3\nRUN bundle install\n",
        [
            (
                ERROR,
                "Dockerfile declares no ARG LARA_VERSION in its last stage (fix: add these lines "
                "at its end: ARG LARA_VERSION / ENV LARA_IMAGE_VERSION=$LARA_VERSION",
                (1,),
            )
        ],
    ),
    (
        "the block only in an earlier stage",
        "FROM ruby AS build\nARG LARA_VERSION\nRUN make\nFROM debian\nCOPY --from=build /a /a\n",
        [(ERROR, "only at line 2, outside the stage the image is made from", (4,))],
    ),
    (
        "the block only before FROM",
        "ARG LARA_VERSION\nFROM debian\nRUN true\n",
        [(ERROR, "no ARG LARA_VERSION in its last stage (only at line 1", (2,))],
    ),
    (
        "a commented-out block",
        "FROM debian\n# ARG LARA_VERSION\nRUN true\n",
        [(ERROR, "declares no ARG LARA_VERSION", (1,))],
    ),
    (
        "the block inside a heredoc is no block",
        "FROM debian\nRUN <<EOF\necho\nARG LARA_VERSION\nEOF\n",
        [(ERROR, "declares no ARG LARA_VERSION", (1,))],
    ),
    ("no FROM at all", "ARG LARA_VERSION\n", [(ERROR, "has no FROM instruction", ())]),
    (
        "the block before the app code",
        "FROM ruby\nARG LARA_VERSION\nRUN bundle install\nCOPY . .\n"
        "RUN rake assets:precompile \\\n    && true\n",
        [
            (
                WARNING,
                "at line 2, before RUN at line 3, COPY at line 4, RUN at line 5: every new "
                "commit rebuilds them (fix: move the ARG LARA_* lines, and what uses them, "
                "below line 6)",
                (2, 3, 4, 5),
            )
        ],
    ),
    (
        "any LARA_* arg starts the block",
        "FROM ruby\nARG LARA_COMMIT\nADD app.tar /app\nARG LARA_VERSION\n",
        [(WARNING, "at line 2, before ADD at line 3: every new commit rebuilds it", (2, 3))],
    ),
    (
        "a RUN using only the metadata does not count",
        "FROM ruby\nCOPY . .\nARG LARA_VERSION\nARG LARA_VERSION_YML\n"
        "RUN printf '%s' \"${LARA_VERSION_YML}\" > /lara/config/version.yml\n",
        [],
    ),
    (
        "nor does one that also uses a fixed ENV",
        "FROM ruby\nENV APP_HOME=/lara\nCOPY . .\nARG LARA_VERSION\n"
        'RUN echo "$LARA_VERSION" > $APP_HOME/VERSION\n',
        [],
    ),
    (
        "a RUN that also uses another build arg counts",
        "FROM ruby\nARG LARA_VERSION\nARG BUNDLE_ARGS\nRUN bundle install $BUNDLE_ARGS "
        "&& echo $LARA_VERSION\n",
        [(WARNING, "before RUN at line 4", (2, 4))],
    ),
    ("one ARG line declaring several", "FROM ruby\nRUN make\nARG A=1 LARA_VERSION=x\n", []),
    ("instructions in any case", "from ruby\nrun make\narg LARA_VERSION\n", []),
    (
        "a later stage that copies from a built one",
        "FROM ruby AS assets\nRUN make\nFROM debian\nCOPY --from=assets /a /a\n"
        "ARG LARA_VERSION\nENV LARA_IMAGE_VERSION=$LARA_VERSION\n",
        [],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_problems(text: str, expected: list[tuple[str, str, tuple[int, ...]]]) -> None:
    found = problems(text, "Dockerfile")
    assert [(p.severity, p.lines) for p in found] == [(s, lines) for s, _, lines in expected]
    for problem, (_, message, _) in zip(found, expected, strict=True):
        assert message in str(problem)


# (case, Dockerfile text, [(keyword, first line, last line)])
PARSES = [
    (
        "continuation lines, with comments and blank lines inside",
        "FROM a\nRUN one \\\n# a comment\n\n    two \\\n    three\nCMD x\n",
        [("FROM", 1, 1), ("RUN", 2, 6), ("CMD", 7, 7)],
    ),
    (
        "the escape directive",
        "# escape=`\nFROM a\nRUN one `\n    two\nCOPY c:\\ d\n",
        [("FROM", 2, 2), ("RUN", 3, 4), ("COPY", 5, 5)],
    ),
    (
        "a directive after a comment is a comment",
        "# hello\n# escape=`\nFROM a\nRUN one \\\n two\n",
        [("FROM", 3, 3), ("RUN", 4, 5)],
    ),
    (
        "heredocs, with <<- and quotes",
        "FROM a\nRUN <<EOF\nCOPY x y\nEOF\nRUN <<-'END' cat\n\tFROM b\n\tEND\nUSER u\n",
        [("FROM", 1, 1), ("RUN", 2, 4), ("RUN", 5, 7), ("USER", 8, 8)],
    ),
    (
        "a byte-order mark and CRLF line ends",
        "\ufeffFROM a\r\nRUN x \\\r\n  y\r\n",
        [("FROM", 1, 1), ("RUN", 2, 3)],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [case[1:] for case in PARSES], ids=[case[0] for case in PARSES]
)
def test_instructions(text: str, expected: list[tuple[str, int, int]]) -> None:
    _, found = instructions(text)
    assert [(i.keyword, i.line, i.end_line) for i in found] == expected


def test_continued_arguments_are_joined_and_heredoc_bodies_kept() -> None:
    _, found = instructions("FROM a\nRUN one \\\n  two\nRUN <<EOF\necho $LARA_X\nEOF\n")
    assert found[1].args == "one two"
    assert found[2].args == "<<EOF\necho $LARA_X"


def test_directives_and_stages() -> None:
    text = (
        "# syntax=docker/dockerfile:1\n# escape=\\\nARG BASE=ruby\n"
        "FROM --platform=$BUILDPLATFORM node:20 AS Assets\nRUN npm ci\n"
        "FROM ${BASE} as gems\nRUN bundle install\nFROM scratch\nFROM debian AS final\n"
    )
    parsed = parse(text)
    assert parsed.directives == {"syntax": "docker/dockerfile:1", "escape": "\\"}
    assert [i.keyword for i in parsed.preamble] == ["ARG"]
    assert [(s.base, s.name, s.line) for s in parsed.stages] == [
        ("node:20", "Assets", 4),
        ("${BASE}", "gems", 6),
        ("scratch", None, 8),
        ("debian", "final", 9),
    ]
    assert stages(text) == ["Assets", "gems"]
    assert stages("FROM a\n") == [] and stages("") == []


def settings(tmp_path: Path, dockerfile: str = "Dockerfile") -> schema.Settings:
    section = schema.merged({"app": {"dockerfile": dockerfile}})
    return schema.load(section, tmp_path)


# (case, file content (None: missing), only, the error contains (None: no error))
FILES = [
    ("a good Dockerfile", LARA.encode(), "", None),
    ("not UTF-8", "# caf\xe9\nFROM x\n".encode("latin-1"), "", "is not UTF-8 text (byte 5"),
    ("missing", None, "", "Dockerfile not found: "),
    ("no block", b"FROM x\n", "app", "declares no ARG LARA_VERSION"),
    ("no block, but only the sidecar is built", b"FROM x\n", "nginx", None),
]


@pytest.mark.parametrize(
    ("content", "only", "error"), [case[1:] for case in FILES], ids=[case[0] for case in FILES]
)
def test_check_app_dockerfile(
    tmp_path: Path, content: bytes | None, only: str, error: str | None
) -> None:
    if content is not None:
        (tmp_path / "Dockerfile").write_bytes(content)
    if error is None:
        assert build.check_app_dockerfile(settings(tmp_path), only) == []
        return
    with pytest.raises(BuildToolsError) as raised:
        build.check_app_dockerfile(settings(tmp_path), only)
    assert error in str(raised.value) and "\n" not in str(raised.value)
    assert str(tmp_path / "Dockerfile") in str(raised.value)


def test_check_app_dockerfile_returns_warnings_and_prefers_the_flag(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    (tmp_path / "Other").write_text("FROM x\nARG LARA_VERSION\nCOPY . .\n")
    warnings = build.check_app_dockerfile(settings(tmp_path), dockerfile=tmp_path / "Other")
    assert warnings == [
        f"{tmp_path / 'Other'} declares the build metadata (ARG LARA_*) at line 2, before COPY "
        "at line 3: every new commit rebuilds it (fix: move the ARG LARA_* lines, and what "
        "uses them, below line 3)"
    ]


# --- bad input (tests/fixtures/bad_input.py): the app's Dockerfile ---

# An app Dockerfile without the metadata block: (case, task args, environment, invoke.yaml extra
# lines, the error line must contain)
ONE_LINE_FAILURES = [
    (
        "no metadata block in the app Dockerfile",
        ["build", "--only", "app"],
        {**NO_ENGINE, "INVOKE_BUILDTOOLS_APP_DOCKERFILE": "Dockerfile.noblock"},
        "",
        "Dockerfile.noblock declares no ARG LARA_VERSION in its last stage (fix: add these lines "
        "at its end: ARG LARA_VERSION / ENV LARA_IMAGE_VERSION=$LARA_VERSION",
    ),
    (
        "no metadata block, in a dry run",
        ["build", "--dry-run"],
        {**NO_ENGINE, "INVOKE_BUILDTOOLS_APP_DOCKERFILE": "Dockerfile.noblock"},
        "",
        "Dockerfile.noblock declares no ARG LARA_VERSION in its last stage",
    ),
    (
        "no metadata block, in CI",
        ["ci"],
        {**NO_ENGINE, "INVOKE_BUILDTOOLS_APP_DOCKERFILE": "Dockerfile.noblock"},
        "",
        "Dockerfile.noblock declares no ARG LARA_VERSION in its last stage",
    ),
    (
        "no metadata block, through --dockerfile",
        ["build", "--dockerfile", "Dockerfile.noblock"],
        NO_ENGINE,
        "",
        "Dockerfile.noblock declares no ARG LARA_VERSION in its last stage",
    ),
]


@pytest.mark.parametrize(
    "row", whole_rows(ONE_LINE_FAILURES, real={"no metadata block in the app Dockerfile"})
)
def test_bad_input_is_one_line_and_a_non_zero_exit(app: App, row: tuple) -> None:
    fails_in_one_line(app, *row)


# A metadata block that busts the cache: (case, task args, environment, invoke.yaml extra lines, the
# warning holds)
DOUBTFUL = [
    (
        "metadata block too early",
        ["build", "--dry-run"],
        {**NO_ENGINE, "INVOKE_BUILDTOOLS_APP_DOCKERFILE": "Dockerfile.early"},
        "",
        "Dockerfile.early declares the build metadata (ARG LARA_*) at line 3, before RUN at "
        "line 4: every new commit rebuilds it (fix: move the ARG LARA_* lines, and what uses "
        "them, below line 4)",
    ),
    (
        "sidecar only",
        ["build", "--dry-run", "--only", "nginx"],  # the sidecar's Dockerfile is ours
        {**NO_ENGINE, "INVOKE_BUILDTOOLS_APP_DOCKERFILE": "Dockerfile.noblock"},
        "",
        None,
    ),
]


@pytest.mark.parametrize("row", whole_rows(DOUBTFUL))
def test_doubtful_input_goes_on_with_a_warning(app: App, row: tuple) -> None:
    goes_on_with_a_warning(app, *row)
