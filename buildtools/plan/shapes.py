"""What a registry's JSON must look like before anything reads it.

A registry is a server we do not control: its manifests, image configs, tag lists and token
answers are checked here for the types of every field the tools read, so a hostile or broken
answer is one line naming what is wrong, never an ``AttributeError`` deep in a rewrite. JSON
nested deeper than any real document is refused before Python's recursion limit is near.
Pure: the bytes come from :mod:`buildtools.registry.client`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

# Real manifests and configs nest five or six levels; the JSON decoder recurses per level
# and fails with RecursionError near a thousand.
MAX_DEPTH = 32
_DIGEST = re.compile(r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


class BadDocument(ValueError):
    """A registry's answer that is not the JSON document it should be; ``str`` says why."""


def is_digest(text: object) -> bool:
    """Whether ``text`` is a digest we can check (``sha256:`` or ``sha512:`` and hex)."""
    return isinstance(text, str) and bool(_DIGEST.match(text))


def is_reference(text: str) -> bool:
    """Whether ``text`` may name a manifest in a URL path: a tag or a digest."""
    return bool(_TAG.match(text)) or is_digest(text)


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    """The digest of ``data`` with the algorithm named (sha256 or sha512)."""
    return f"{algorithm}:" + hashlib.new(algorithm, data).hexdigest()


def load(body: bytes, what: str) -> Any:
    """``body`` parsed as JSON, or :class:`BadDocument` (not JSON, or nested too deep)."""
    try:
        parsed = json.loads(body)
    except RecursionError:
        raise BadDocument(f"its {what} is nested too deeply") from None
    except ValueError:
        raise BadDocument(f"its {what} is not JSON") from None
    stack = [(parsed, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise BadDocument(f"its {what} is nested more than {MAX_DEPTH} levels deep")
        children = value.values() if isinstance(value, dict) else value
        if isinstance(value, (dict, list)):
            stack.extend((child, depth + 1) for child in children)
    return parsed


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else "null"
    )


def _expect(value: object, ok: Callable[[object], bool], want: str, where: str) -> str | None:
    return None if ok(value) else f"{where} is {_kind(value)}, not {want}"


def _string_map(value: object, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        return f"{where} is {_kind(value)}, not an object"
    for key, item in value.items():
        if not isinstance(item, str):
            return f"{where}.{key} is {_kind(item)}, not a string"
    return None


def _descriptor(value: object, where: str) -> str | None:
    if not isinstance(value, dict):
        return f"{where} is {_kind(value)}, not an object"
    checks = (
        _expect(
            value.get("mediaType"), lambda v: isinstance(v, str), "a string", where + ".mediaType"
        ),
        _expect(value.get("digest"), is_digest, "a sha256 or sha512 digest", where + ".digest"),
        _expect(
            value.get("size"),
            lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
            "a size in bytes",
            where + ".size",
        ),
        _string_map(value.get("annotations"), where + ".annotations"),
        _expect(
            value.get("platform"),
            lambda v: v is None or isinstance(v, dict),
            "an object",
            where + ".platform",
        ),
    )
    return next((problem for problem in checks if problem), None)


def _descriptors(value: object, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, list):
        return f"{where} is {_kind(value)}, not a list"
    found = (_descriptor(item, f"{where}[{n}]") for n, item in enumerate(value))
    return next((problem for problem in found if problem), None)


def manifest_problem(parsed: Any) -> str | None:
    """What is wrong with a parsed image manifest or index (None: every field we read has
    its type: ``mediaType``, ``config``, ``layers``, ``manifests``, ``annotations``)."""
    if not isinstance(parsed, dict):
        return f"it is {_kind(parsed)}, not an object"
    checks = (
        _expect(
            parsed.get("mediaType"),
            lambda v: v is None or isinstance(v, str),
            "a string",
            "mediaType",
        ),
        None if parsed.get("config") is None else _descriptor(parsed["config"], "config"),
        _descriptors(parsed.get("layers"), "layers"),
        _descriptors(parsed.get("manifests"), "manifests"),
        _string_map(parsed.get("annotations"), "annotations"),
    )
    return next((problem for problem in checks if problem), None)


def _strings(value: object, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, list):
        return f"{where} is {_kind(value)}, not a list"
    bad = next((n for n, item in enumerate(value) if not isinstance(item, str)), None)
    return None if bad is None else f"{where}[{bad}] is {_kind(value[bad])}, not a string"


def config_problem(parsed: Any) -> str | None:
    """What is wrong with a parsed image config (None: ``config.Labels``, ``config.Env``,
    ``rootfs.diff_ids``, ``history`` and ``created`` have their types where present)."""
    if not isinstance(parsed, dict):
        return f"it is {_kind(parsed)}, not an object"
    inner = parsed.get("config")
    rootfs = parsed.get("rootfs")
    history = parsed.get("history")
    checks = [
        _expect(inner, lambda v: v is None or isinstance(v, dict), "an object", "config"),
        _expect(rootfs, lambda v: v is None or isinstance(v, dict), "an object", "rootfs"),
        _expect(history, lambda v: v is None or isinstance(v, list), "a list", "history"),
        _expect(
            parsed.get("created"), lambda v: v is None or isinstance(v, str), "a string", "created"
        ),
    ]
    if isinstance(inner, dict):
        checks += [
            _string_map(inner.get("Labels"), "config.Labels"),
            _strings(inner.get("Env"), "config.Env"),
        ]
    if isinstance(rootfs, dict):
        checks.append(_strings(rootfs.get("diff_ids"), "rootfs.diff_ids"))
    if isinstance(history, list):
        bad = next((n for n, item in enumerate(history) if not isinstance(item, dict)), None)
        checks.append(None if bad is None else f"history[{bad}] is {_kind(history[bad])}")
    return next((problem for problem in checks if problem), None)


def tag_list(parsed: Any) -> list[str]:
    """The ``tags`` of a tag list page (null: none), or :class:`BadDocument`."""
    if not isinstance(parsed, dict):
        raise BadDocument(f"its tag list is {_kind(parsed)}, not an object")
    problem = _strings(parsed.get("tags"), "tags")
    if problem:
        raise BadDocument(f"its tag list's {problem}")
    return list(parsed.get("tags") or [])


def token_of(parsed: Any) -> str:
    """The bearer token of a token server's answer (``token``, else ``access_token``)."""
    if isinstance(parsed, dict):
        for key in ("token", "access_token"):
            if isinstance(parsed.get(key), str) and parsed[key]:
                return str(parsed[key])
    raise BadDocument("its token answer has no token")
