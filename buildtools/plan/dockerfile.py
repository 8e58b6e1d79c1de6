"""The app's own Dockerfile, read before anything is built: a pure parser and its checks.

The tool works with any app Dockerfile that declares the metadata build args (``ARG
LARA_VERSION`` …) in its last stage, after its expensive steps. A Dockerfile without them
builds an image that cannot say what it is; one that declares them too early rebuilds its
expensive steps for every commit. Both are found here, from the text alone, so that
``invoke build --dry-run`` says so as well, before any engine call.

The parser follows Dockerfile syntax closely enough for these checks: parser directives
(``# escape=`` changes the line-continuation character), comments, continuation lines (with
comment and blank lines inside them skipped, as Docker does), heredocs (``RUN <<EOF``), and
stages (``FROM image [AS name]``). Instruction names are not checked: the engine reports an
unknown one with its own line number.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

ERROR, WARNING = "error", "warning"

# What an app Dockerfile must declare in its last stage, and the lines that make it work.
REQUIRED_ARG = "LARA_VERSION"
METADATA_PREFIX = "LARA_"
MINIMAL_BLOCK = "ARG LARA_VERSION / ENV LARA_IMAGE_VERSION=$LARA_VERSION"

_DIRECTIVE = re.compile(r"^#\s*([A-Za-z][A-Za-z0-9]*)\s*=\s*(.*?)\s*$")
_HEREDOC = re.compile(r"<<(-?)\s*([\"']?)([A-Za-z_][A-Za-z0-9_]*)\2")
_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)|([A-Za-z_][A-Za-z0-9_]*))")
# Steps whose work a changed build arg above them repeats.
_EXPENSIVE = ("RUN", "COPY", "ADD")


@dataclass(frozen=True)
class Instruction:
    """One instruction: its keyword (upper case), its arguments as one line, and the physical
    lines it spans (1-based), so messages point where the user looks."""

    keyword: str
    args: str
    line: int
    end_line: int


@dataclass(frozen=True)
class Stage:
    """A ``FROM`` and the instructions up to the next one; ``name`` is its ``AS`` name."""

    base: str
    name: str | None
    line: int
    instructions: tuple[Instruction, ...] = ()


@dataclass(frozen=True)
class Dockerfile:
    """Parser directives (lower-case names), the ``ARG``s before the first ``FROM`` (usable only
    in ``FROM`` lines) and the stages in order; the image is the last one."""

    directives: dict[str, str] = field(default_factory=dict)
    preamble: tuple[Instruction, ...] = ()
    stages: tuple[Stage, ...] = ()


@dataclass(frozen=True)
class Problem:
    """One finding: ``severity`` is ERROR (refuse to build) or WARNING (build, but say it)."""

    severity: str
    problem: str
    fix: str
    lines: tuple[int, ...] = ()

    def __str__(self) -> str:
        return f"{self.problem} (fix: {self.fix})"


def _directives(lines: list[str]) -> tuple[dict[str, str], int]:
    """Parser directives at the very top, and the index of the first line after them. Docker
    stops looking at the first line that is not one (a comment, a blank line, an instruction)."""
    found: dict[str, str] = {}
    for index, line in enumerate(lines):
        match = _DIRECTIVE.match(line.strip())
        if not match or match[1].lower() in found:
            return found, index
        found[match[1].lower()] = match[2]
    return found, len(lines)


def _continues(line: str, escape: str) -> tuple[str, bool]:
    """``line`` without its continuation character, and whether the instruction goes on."""
    stripped = line.rstrip()
    if stripped.endswith(escape):
        return stripped[: -len(escape)], True
    return line, False


def instructions(text: str) -> tuple[dict[str, str], list[Instruction]]:
    """The parser directives and every instruction of ``text``, in order."""
    lines = text.removeprefix("\ufeff").split("\n")
    lines = [line.removesuffix("\r") for line in lines]
    directives, index = _directives(lines)
    escape = "`" if directives.get("escape") == "`" else "\\"
    found: list[Instruction] = []
    while index < len(lines):
        start = index
        stripped = lines[index].strip()
        index += 1
        if not stripped or stripped.startswith("#"):
            continue
        parts: list[str] = []
        part, more = _continues(lines[start].strip(), escape)
        parts.append(part)
        while more and index < len(lines):
            line = lines[index]
            index += 1
            if not line.strip() or line.strip().startswith("#"):
                continue  # comments and blank lines inside a continued instruction
            part, more = _continues(line, escape)
            parts.append(part)
        logical = " ".join(p.strip() for p in parts if p.strip())
        keyword, _, args = logical.partition(" ")
        keyword = keyword.upper()
        if keyword in _EXPENSIVE:
            for heredoc in _HEREDOC.finditer(args):
                body: list[str] = []
                while index < len(lines):
                    line = lines[index]
                    index += 1
                    end = line.lstrip("\t") if heredoc[1] else line
                    if end == heredoc[3]:
                        break
                    body.append(line)
                args = "\n".join([args, *body])
        found.append(Instruction(keyword, args.strip(), start + 1, index))
    return directives, found


def _from_line(instruction: Instruction) -> tuple[str, str | None]:
    """``FROM [--platform=…] image [AS name]`` to (image, name)."""
    words = [word for word in instruction.args.split() if not word.startswith("--")]
    base = words[0] if words else ""
    name = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
    return base, name


def parse(text: str) -> Dockerfile:
    """The structure of a Dockerfile's text (see the module docstring for what is understood)."""
    directives, found = instructions(text)
    preamble: list[Instruction] = []
    stages: list[tuple[Instruction, list[Instruction]]] = []
    for instruction in found:
        if instruction.keyword == "FROM":
            stages.append((instruction, []))
        elif stages:
            stages[-1][1].append(instruction)
        else:
            preamble.append(instruction)
    return Dockerfile(
        directives=directives,
        preamble=tuple(preamble),
        stages=tuple(Stage(*_from_line(start), start.line, tuple(body)) for start, body in stages),
    )


def stages(text: str) -> list[str]:
    """Names of the named stages before the last one, in order: the stages a multi-stage
    build could cache on their own (Docker matches them case-insensitively)."""
    return [stage.name for stage in parse(text).stages[:-1] if stage.name]


def arg_names(instruction: Instruction) -> list[str]:
    """The names an ``ARG`` declares (``ARG A=1 B`` declares two)."""
    try:
        words = shlex.split(instruction.args)
    except ValueError:  # an unclosed quote: the engine says where
        words = instruction.args.split()
    return [word.partition("=")[0] for word in words if word.partition("=")[0]]


def variables(args: str) -> set[str]:
    """Names of the variables (``$NAME``, ``${NAME}``, ``${NAME:-x}``) that ``args`` uses."""
    return {braced or bare for braced, bare in _VARIABLE.findall(args)}


def _is_metadata_step(instruction: Instruction, build_args: set[str]) -> bool:
    """A RUN that exists to use the metadata (ours writes version.yml from LARA_VERSION_YML):
    it uses a LARA_* variable and no other build arg. Other variables (ENV such as APP_HOME)
    are the same for every build, so they do not make it a build step."""
    if instruction.keyword != "RUN":
        return False
    used = variables(instruction.args)
    metadata = {name for name in used if name.startswith(METADATA_PREFIX)}
    return bool(metadata) and not (used - metadata) & build_args


def _where(instructions: list[Instruction]) -> str:
    return ", ".join(f"{i.keyword} at line {i.line}" for i in instructions)


def problems(text: str, name: str = "Dockerfile") -> list[Problem]:
    """What is wrong with the last stage of the Dockerfile ``name`` for a versioned build:
    errors first, then warnings; an empty list when it is fine."""
    parsed = parse(text)
    if not parsed.stages:
        return [
            Problem(ERROR, f"{name} has no FROM instruction", "start its build with FROM <image>")
        ]
    last = parsed.stages[-1]
    declared_at: dict[str, Instruction] = {}
    for instruction in last.instructions:
        if instruction.keyword == "ARG":
            for arg in arg_names(instruction):
                declared_at.setdefault(arg, instruction)
    if REQUIRED_ARG not in declared_at:
        elsewhere = [
            f"line {i.line}"
            for i in [*parsed.preamble, *(i for s in parsed.stages[:-1] for i in s.instructions)]
            if i.keyword == "ARG" and REQUIRED_ARG in arg_names(i)
        ]
        where = (
            f" (only at {', '.join(elsewhere)}, outside the stage the image is made from)"
            if elsewhere
            else ""
        )
        return [
            Problem(
                ERROR,
                f"{name} declares no ARG {REQUIRED_ARG} in its last stage{where}",
                f"add these lines at its end: {MINIMAL_BLOCK} — see the README's section "
                '"Using it from an existing app repository"',
                (last.line,),
            )
        ]
    block = min(
        (i for arg, i in declared_at.items() if arg.startswith(METADATA_PREFIX)),
        key=lambda i: i.line,
    )
    build_args = set(declared_at) | {
        arg for i in parsed.preamble if i.keyword == "ARG" for arg in arg_names(i)
    }
    later = [
        i
        for i in last.instructions
        if i.line > block.line and i.keyword in _EXPENSIVE and not _is_metadata_step(i, build_args)
    ]
    if not later:
        return []
    return [
        Problem(
            WARNING,
            f"{name} declares the build metadata (ARG LARA_*) at line {block.line}, before "
            f"{_where(later)}: every new commit rebuilds {'it' if len(later) == 1 else 'them'}",
            f"move the ARG LARA_* lines, and what uses them, below line {later[-1].end_line}",
            (block.line, *(i.line for i in later)),
        )
    ]
