"""What one config key is: its dotted name, kind, default, one-line help and check; the kinds.

The table of every key is :mod:`buildtools.config.keys`; this module is the machinery it is
written in. A *kind* turns the text invoke hands over (environment values are strings, and
:func:`as_text` makes file values strings too) into a typed value, and says which types a
config file may give the key (a number where a name belongs is refused, naming the key). A
*check* refuses a typed value the key cannot take, in one line naming the key.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from buildtools.errors import BuildToolsError

SECTION = "buildtools"
ENV_PREFIX = f"INVOKE_{SECTION.upper()}_"
TRUE = ("true", "1", "yes", "on")
FALSE = ("false", "0", "no", "off", "")

# A key's own check: (the key's dotted name, its typed value), raising BuildToolsError.
Check = Callable[[str, Any], object]


def env_name(key: str) -> str:
    """The variable invoke reads for ``key`` (``release.retries`` -> ``…_RELEASE_RETRIES``)."""
    return ENV_PREFIX + key.replace(".", "_").upper()


def refuse(
    key: str, value: Any, expected: str, example: str = "", fix: str = ""
) -> BuildToolsError:
    """The one line for a value ``key`` cannot take: the value as given, what it should be."""
    fix = fix or (f"write it like {example}" if example else f"set it to {expected}")
    return BuildToolsError(
        f"config key {SECTION}.{key} = {value!r} is not {expected}",
        f"{fix} (invoke.yaml or {env_name(key)})",
    )


# C0 and C1 controls, Unicode line and paragraph separators, and bidirectional overrides: each
# would reach a label, an ARG or a log as something other than the one line it looks like.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_CONTROL_NAMES = {
    "\n": "a line break",
    "\r": "a carriage return",
    "\x00": "a NUL byte",
    "\x85": "a line break (NEL)",
    "\u2028": "a line break (U+2028)",
    "\u2029": "a line break (U+2029)",
}


def one_line(key: str, text: str) -> str:
    """``text`` if it holds no control character. A line break or NUL in a build arg, an
    environment entry or a name would reach a Dockerfile's ARG, a container's environment or
    nginx.conf as more than the one value it looks like. The value is not shown (smoke.env may
    hold a password)."""
    if found := CONTROL.search(text):
        what = _CONTROL_NAMES.get(found.group(), f"the control character {found.group()!r}")
        raise BuildToolsError(
            f"config key {SECTION}.{key} holds {what} (character {found.start() + 1} of its "
            "value): a value is one line",
            f"write it on one line (a list's entries separated by commas) (invoke.yaml or "
            f"{env_name(key)})",
        )
    return text


def as_text(value: Any) -> Any:
    """A config value as the text an environment variable would give (``true``, ``5``), so
    invoke keeps an ``INVOKE_BUILDTOOLS_*`` override as the string it is and loading parses
    both the same way. Sections are converted key by key; empty values and lists stay as they
    are (loading names a list as not a single value)."""
    if isinstance(value, Mapping):
        return {key: as_text(item) for key, item in value.items()}
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or isinstance(value, str | list | tuple):
        return copy.deepcopy(value)
    return str(value)


def split_list(value: str | list[str] | None) -> tuple[str, ...]:
    """Comma-separated config strings (env-overridable, unlike YAML lists) to a tuple."""
    if value is None:
        return ()
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    return tuple(str(item).strip() for item in items if str(item).strip())


def split_pairs(
    value: str | None, where: str = "buildtools.tags.extra", example: str = "master=edge"
) -> dict[str, tuple[str, ...]]:
    """``"master=edge,main=edge"`` to ``{"master": ("edge",), "main": ("edge",)}``."""
    pairs: dict[str, list[str]] = {}
    for item in split_list(value):
        key, sep, val = item.partition("=")
        if not sep or not key.strip() or not val.strip():
            raise BuildToolsError(
                f"bad config entry {item!r} in {where}",
                f"write it as key=value, e.g. {example}",
            )
        pairs.setdefault(key.strip(), []).append(val.strip())
    return {key: tuple(vals) for key, vals in pairs.items()}


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean (YAML reads yes, no, on, off, true and false as booleans)"
    if isinstance(value, int | float):
        return "a number"
    return f"a {type(value).__name__}"


class Kind:
    """How a key's text becomes its typed value. Subclasses set what they show and accept."""

    # What the README and errors call it, and the types a config file may give it (besides
    # text and nothing, which every kind takes: environment values are text).
    expected = "text"
    file_types: tuple[type, ...] = ()

    def parse(self, key: str, text: str, root: Path) -> Any:
        return text

    def validate(self, key: str, value: Any, shown: Any) -> None:
        """Bounds of the typed value (``shown`` is the value as given, for the message)."""

    def given(self, key: str, value: Any) -> BuildToolsError | None:
        """The error for a config file's ``value`` of a type this kind never takes, or None."""
        if value is None or isinstance(value, str | list | tuple | Mapping):
            return None  # text is parsed; lists and sections are named when loading
        allowed = isinstance(value, self.file_types)
        if isinstance(value, bool):
            allowed = bool in self.file_types
        if allowed:
            return None
        leaf = key.rpartition(".")[2]
        # Text kinds take no other type: quoting keeps what was meant (title: '2024').
        fix = f"quote it: {leaf}: '{as_text(value)}'" if not self.file_types else ""
        return BuildToolsError(
            f"config key {SECTION}.{key} is {value!r}, {_type_name(value)}, not {self.expected}",
            fix or f"set it to {self.expected}",
        )


class Text(Kind):
    """Any single line of text (a name, a command); ``empty`` stands for no text."""

    def __init__(self, empty: str = "") -> None:
        self.empty = empty

    def parse(self, key: str, text: str, root: Path) -> str:
        return text or self.empty


class Names(Kind):
    """A comma-separated list (comma strings, so environment variables can set them too)."""

    expected = "a comma-separated list"

    def parse(self, key: str, text: str, root: Path) -> tuple[str, ...]:
        return split_list(text)


class Pairs(Kind):
    """``key=value`` entries; with ``last``, one value per key (the last given)."""

    expected = "key=value entries"

    def __init__(self, example: str, last: bool = False) -> None:
        self.example, self.last = example, last

    def parse(self, key: str, text: str, root: Path) -> Any:
        pairs = split_pairs(text, f"{SECTION}.{key}", self.example)
        return {k: values[-1] for k, values in pairs.items()} if self.last else pairs


class Flag(Kind):
    expected = "true or false (also yes/no, 1/0)"
    file_types = (bool, int)

    def parse(self, key: str, text: str, root: Path) -> bool:
        word = text.lower()
        if word in TRUE or word in FALSE:
            return word in TRUE
        raise refuse(key, text, self.expected)

    def validate(self, key: str, value: Any, shown: Any) -> None:
        if not isinstance(value, bool):
            raise refuse(key, shown, self.expected)


_WHOLE = re.compile(r"-?[0-9]{1,18}")


class Count(Kind):
    """A whole number within bounds."""

    file_types = (int,)

    def __init__(self, minimum: int = 0, maximum: int = 10**9, example: str = "") -> None:
        self.minimum, self.maximum, self.example = minimum, maximum, example
        self.expected = f"a whole number of at least {minimum}"

    def parse(self, key: str, text: str, root: Path) -> int:
        if not _WHOLE.fullmatch(text):
            raise refuse(key, text, self.expected, self.example)
        return int(text)

    def validate(self, key: str, value: Any, shown: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < self.minimum:
            raise refuse(key, shown, self.expected, self.example)
        if value > self.maximum:
            raise refuse(key, shown, f"a whole number of at most {self.maximum}", self.example)


class Number(Kind):
    """A finite number of at least ``minimum`` (seconds, say)."""

    file_types = (int, float)

    def __init__(self, minimum: float = 0.0) -> None:
        self.minimum = minimum
        self.expected = f"a number of at least {minimum}"

    def parse(self, key: str, text: str, root: Path) -> float:
        try:
            return float(text)
        except ValueError:
            raise refuse(key, text, self.expected) from None

    def validate(self, key: str, value: Any, shown: Any) -> None:
        if isinstance(value, bool) or not value >= self.minimum or value == float("inf"):
            raise refuse(key, shown, self.expected)


class Choice(Kind):
    """One of a few words; ``no`` (YAML's false) may stand for one of them."""

    file_types = (int,)

    def __init__(self, *choices: str, false_means: str = "", fix: str = "") -> None:
        self.choices, self.false_means, self.fix = choices, false_means, fix
        self.expected = ", ".join(choices[:-1]) + " or " + choices[-1]
        if false_means:
            self.file_types = (int, bool)

    def parse(self, key: str, text: str, root: Path) -> str:
        word = text.lower()
        # YAML reads `promote: no` (or off) as the boolean false: the user meant that word.
        return self.false_means if self.false_means and word and word in FALSE else word

    def validate(self, key: str, value: Any, shown: Any) -> None:
        if value not in self.choices:
            raise refuse(key, shown, self.expected, fix=self.fix)


class FilePath(Kind):
    """A path relative to the project root; empty with ``packaged``: that file of the package."""

    expected = "a path"

    def __init__(self, packaged: Path | None = None) -> None:
        self.packaged = packaged

    def parse(self, key: str, text: str, root: Path) -> Path:
        return self.packaged if self.packaged and not text else root / text


class OptionalPath(FilePath):
    """A path relative to the project root, or None when empty: a file that may be absent
    from the configuration (a signing key)."""

    def parse(self, key: str, text: str, root: Path) -> Path | None:  # type: ignore[override]
        return root / text if text else None


class Folder(FilePath):
    """The project root's folder a path names, made absolute (``repo``)."""

    def parse(self, key: str, text: str, root: Path) -> Path:
        return (root / text).resolve()


class Section(Kind):
    """A section whose keys are the user's own names (``smoke.services``): one key here."""

    expected = "a section"

    def __init__(self, parse: Callable[[str, Any], Any]) -> None:
        self._parse = parse

    def parse(self, key: str, text: Any, root: Path) -> Any:
        return self._parse(key, text)


@dataclass(frozen=True)
class Key:
    """One key of the ``buildtools`` section, declared once (:mod:`buildtools.config.keys`).

    ``field`` is where :class:`~buildtools.config.schema.Settings` holds the typed value
    (dotted, e.g. ``nginx.image.repository``; empty: the key's own name). ``policy`` names the
    further check in :mod:`buildtools.plan.validate` that needs the tag policy (plan/ sits
    above config/, so it is named here and the test suite holds the two together).
    """

    name: str
    kind: Kind
    default: Any
    help: str
    check: Check | None = None
    field: str = ""
    policy: str = ""

    @property
    def env(self) -> str:
        return env_name(self.name)

    @property
    def attribute(self) -> str:
        return self.field or self.name

    def read(self, raw: Any, root: Path) -> Any:
        """The typed, checked value of ``raw`` (text, or what a test or file gave)."""
        if isinstance(self.kind, Section):
            value = self.kind.parse(self.name, raw, root)
        else:
            if isinstance(raw, Mapping | list | tuple):
                raise refuse(self.name, raw, "a single value")
            text = one_line(self.name, "" if raw is None else str(as_text(raw)).strip())
            value = self.kind.parse(self.name, text, root)
        self.validate(value, raw)
        return value

    def validate(self, value: Any, shown: Any = None) -> None:
        """Refuse a typed value this key cannot take (``shown``: as given, for the message)."""
        self.kind.validate(self.name, value, value if shown is None else shown)
        if self.check is not None:
            self.check(self.name, value)

    def typed_default(self, root: Path = Path(".")) -> Any:
        return self.read(self.default, root)


def value_only(check: Callable[[Any], object]) -> Check:
    """A check that names its own key (``check_upstream``) as a key's check."""
    return lambda key, value: check(value)
