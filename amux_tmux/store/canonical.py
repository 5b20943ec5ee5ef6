"""A fast reader for record YAML as amux writes it and as people write it by hand.

``list`` reads every record, and PyYAML spends ~60-115 µs on one, most of it building
Python objects in Python. Records have one shape: a top-level mapping of scalars, a
sequence (``command``) and a mapping of scalars (``environment``). :func:`parse` reads
that shape in a single pass over the lines, in the styles people use:

- ``key: value`` with any spacing after the colon, plain, ``'single'`` or
  ``"double"`` quoted scalars (the usual backslash escapes), trailing ``# comments``,
  comment and blank lines, an optional leading ``---``, no final newline;
- block sequences at indent 0 or 2 (``- x`` / ``  - x``) and block mappings at
  indent 2;
- one-line flow collections of scalars: ``[sleep, "1000"]``, ``{A: b, C: 'd'}``.

Anything else (multi-line scalars, anchors, tags, deeper nesting, tabs, CRLF, odd
characters) makes :func:`parse` return ``None``, so the full, hardened YAML path sees
it. For every text it accepts, :func:`parse` returns what PyYAML's safe loader returns,
types included (the tests check this differentially): plain scalars are typed as YAML
1.1 types them (null, bool, int, float, timestamp); where the rules get intricate
(octal, sexagesimal, ``1_000``, ``<<``) it declines.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import sys
from typing import Any

# Characters PyYAML reads as printable and not as a line break, minus tab and BOM (which
# YAML treats specially): anything outside this set is left to the full loader.
_ODD_PATTERN = (
    "[^\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"
)
# The same for ASCII text, which records nearly always are: the full class takes ~3 ms
# to compile, which every command would pay at import.
_ODD_ASCII = re.compile("[\x00-\x09\x0b-\x1f\x7f]")
_TOP_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
# Inside a plain scalar these make YAML see more than one plain scalar.
_UNSAFE = re.compile(r": |:\Z| #|\A |  *\Z")
# First characters a plain scalar may not start with (indicators).
_INDICATORS = frozenset("[]{}#&*!|>'\"%@`,?:")
_SIMPLE = re.compile(r"[A-Za-z/_$][A-Za-z0-9/_$%.@+,=~-]*\Z")
_INT = re.compile(r"-?(?:0|[1-9][0-9]*)\Z")
_FLOAT = re.compile(r"-?[0-9]+\.[0-9]+\Z")
_NULLS = frozenset({"null", "Null", "NULL", "~"})
# YAML 1.1 booleans as PyYAML resolves them (`y` and `n` stay strings there).
_BOOLS = {
    **dict.fromkeys(("yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"), True),
    **dict.fromkeys(("no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"), False),
}
# PyYAML's implicit int, float and timestamp patterns (yaml/resolver.py), verbatim: a
# plain scalar starting with a digit, sign or dot is a string exactly when none matches.
_NUMERIC_OR_TIME_PATTERN = r"""^(?:[-+]?0b[0-1_]+
          |[-+]?0[0-7_]+
          |[-+]?(?:0|[1-9][0-9_]*)
          |[-+]?0x[0-9a-fA-F_]+
          |[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+
          |[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
          |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
          |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
          |[-+]?\.(?:inf|Inf|INF)
          |\.(?:nan|NaN|NAN)
          |[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]
          |[0-9][0-9][0-9][0-9] -[0-9][0-9]? -[0-9][0-9]?
           (?:[Tt]|[ \t]+)[0-9][0-9]?
           :[0-9][0-9] :[0-9][0-9] (?:\.[0-9]*)?
           (?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$"""
# PyYAML's timestamp constructor pattern (yaml/constructor.py), verbatim.
_TIMESTAMP_PATTERN = r"""^(?P<year>[0-9][0-9][0-9][0-9])
                -(?P<month>[0-9][0-9]?)
                -(?P<day>[0-9][0-9]?)
                (?:(?:[Tt]|[ \t]+)
                (?P<hour>[0-9][0-9]?)
                :(?P<minute>[0-9][0-9])
                :(?P<second>[0-9][0-9])
                (?:\.(?P<fraction>[0-9]*))?
                (?:[ \t]*(?P<tz>Z|(?P<tz_sign>[-+])(?P<tz_hour>[0-9][0-9]?)
                (?::(?P<tz_minute>[0-9][0-9]))?))?)?$"""
# The resolver's timestamp pattern (yaml/resolver.py): which plain scalars are times.
_RESOLVED_TIME_PATTERN = r"""^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]
          |[0-9][0-9][0-9][0-9] -[0-9][0-9]? -[0-9][0-9]?
           (?:[Tt]|[ \t]+)[0-9][0-9]?
           :[0-9][0-9] :[0-9][0-9] (?:\.[0-9]*)?
           (?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$"""
# First characters of every YAML 1.1 implicit type but str (int, float, timestamp, null,
# bool, merge, value). A plain scalar starting with anything else is a string.
_TYPED_STARTS = frozenset("-+0123456789.yYnNtTfFoO~<=")
_ESCAPES = {
    "0": "\0",
    "a": "\x07",
    "b": "\x08",
    "t": "\t",
    "n": "\n",
    "v": "\x0b",
    "f": "\x0c",
    "r": "\r",
    "e": "\x1b",
    " ": " ",
    '"': '"',
    "/": "/",
    "\\": "\\",
    "N": "\x85",
    "_": "\xa0",
    "L": "\u2028",
    "P": "\u2029",
}
_HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}
_HEX = re.compile(r"[0-9A-Fa-f]+\Z")


def _odd_chars(text: str) -> bool:
    """Whether ``text`` holds a character the fast reader leaves to PyYAML."""
    if text.isascii():
        return _ODD_ASCII.search(text) is not None
    return _odd_pattern().search(text) is not None


@functools.cache
def _odd_pattern() -> re.Pattern[str]:
    return re.compile(_ODD_PATTERN)


@functools.cache
def _numeric_or_time() -> re.Pattern[str]:
    # Compiled on first need: most records never hold a digit-led string.
    return re.compile(_NUMERIC_OR_TIME_PATTERN, re.X)


@functools.cache
def _resolved_time() -> re.Pattern[str]:
    return re.compile(_RESOLVED_TIME_PATTERN, re.X)


@functools.cache
def _timestamp() -> re.Pattern[str]:
    return re.compile(_TIMESTAMP_PATTERN, re.X)


class _Decline(Exception):
    """The text is not in the subset read here; use the full YAML loader."""


#: "key:" with nothing after it on the line: a block collection or null follows.
_NOTHING: Any = object()


def parse(text: str) -> dict[str, Any] | None:
    """Return the mapping a record text encodes, or ``None`` to decline."""
    if _odd_chars(text):
        return None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    try:
        return _Lines(lines).document()
    except (_Decline, IndexError):
        return None


def _blank(line: str) -> bool:
    stripped = line.lstrip(" ")
    return not stripped or stripped[0] == "#"


class _Lines:
    """A cursor over the lines of one document."""

    __slots__ = ("count", "i", "lines")

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.count = len(lines)
        self.i = 1 if lines and lines[0] == "---" else 0

    def next_content(self, comments: int) -> str | None:
        """Skip blank lines and comments; return the next other line (not consumed).

        A comment indented deeper than ``comments`` might continue the scalar before
        it, which is YAML's call to make.
        """
        while self.i < self.count:
            line = self.lines[self.i]
            stripped = line.lstrip(" ")
            if stripped:
                if stripped[0] != "#":
                    return line
                if len(line) - len(stripped) > comments:
                    raise _Decline
            self.i += 1
        return None

    def document(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        while (line := self.next_content(0)) is not None:
            colon = line.find(":")
            key = line[:colon]
            if colon < 1 or (key not in _good_keys and not _good_key(key)):
                raise _Decline
            if key in data or line[colon + 1 : colon + 2] not in ("", " "):
                raise _Decline  # YAML keeps the last of duplicates; "a:b" is one scalar
            self.i += 1
            value = _inline(line[colon + 1 :], flow=True)
            data[key] = self.block() if value is _NOTHING else value
        if not data:
            raise _Decline  # a document of comments is null to YAML
        return data

    def block(self) -> Any:
        """Read the collection under a ``key:`` line, or ``None`` if there is none."""
        line = self.next_content(2)
        if line is None or line[0] not in " -":
            return None
        if line[0] == "-":
            return self.sequence("- ")
        if line.startswith("  - "):
            return self.sequence("  - ")
        if not line.startswith("  ") or line[2] == " ":
            raise _Decline
        return self.mapping()

    def sequence(self, prefix: str) -> list[Any]:
        items: list[Any] = []
        indent = len(prefix) - 2
        while (line := self.next_content(indent)) is not None and line.startswith(prefix[:-1]):
            if not line.startswith(prefix):
                raise _Decline  # "-" alone, "-x" or a deeper "-"
            self.i += 1
            value = _inline(line[len(prefix) - 1 :], flow=False)
            if value is _NOTHING:
                raise _Decline
            items.append(value)
        if line is not None and line[0] in " -":
            raise _Decline  # an item at another indent
        return items

    def mapping(self) -> dict[Any, Any]:
        mapping: dict[Any, Any] = {}
        while (line := self.next_content(2)) is not None and line.startswith("  "):
            if line[2] in " -":
                raise _Decline
            key, rest = _nested_key(line)
            if key in mapping:
                raise _Decline
            self.i += 1
            value = _inline(rest, flow=False)
            mapping[key] = None if value is _NOTHING else value
        if line is not None and line[0] == " ":
            raise _Decline
        return mapping


def _good_key(key: str) -> bool:
    """Whether a top-level key is a plain string to YAML (remembered: records share keys)."""
    if _TOP_KEY.match(key) is None or key in _BOOLS or key in _NULLS:
        return False
    if len(_good_keys) < 256:
        _good_keys.add(key)
    return True


_good_keys: set[str] = set()


def _nested_key(line: str) -> tuple[Any, str]:
    """Split ``  KEY: rest`` into the key's value and what follows the colon."""
    first = line[2]
    if first in "'\"":
        key, end = (_single if first == "'" else _double)(line, 2)
        if line[end : end + 1] != ":" or line[end + 1 : end + 2] not in ("", " "):
            raise _Decline
        return key, line[end + 1 :]
    end = line.find(": ", 2)
    if end < 0:
        if not line.endswith(":"):
            raise _Decline
        end = len(line) - 1
    if end == 2:
        raise _Decline  # an empty key
    return _plain(line[2:end]), line[end + 1 :]


def _inline(rest: str, *, flow: bool) -> Any:
    """Read the value after ``key:`` or ``-`` (``rest`` starts with a space, or is empty)."""
    text = rest.lstrip(" ")
    if not text or text[0] == "#":
        if text and len(text) == len(rest):
            raise _Decline
        return _NOTHING
    first = text[0]
    value: Any
    if first in "'\"":
        value, end = (_single if first == "'" else _double)(text, 0)
    elif first == "[" and flow:
        value, end = _flow_sequence(text)
    elif first == "{" and flow:
        value, end = _flow_mapping(text)
    else:
        cut = text.find(" #")
        return _plain((text if cut < 0 else text[:cut]).rstrip(" "))
    tail = text[end:]
    if tail and (tail[0] != " " or not _blank(tail)):
        raise _Decline
    return value


def _flow_sequence(text: str) -> tuple[list[Any], int]:
    items: list[Any] = []
    i = _skip(text, 1)
    if text[i] == "]":
        return items, i + 1
    while True:
        value, i = _flow_scalar(text, i)
        items.append(value)
        i = _skip(text, i)
        if text[i] == "]":
            return items, i + 1
        if text[i] != ",":
            raise _Decline
        i = _skip(text, i + 1)
        if text[i] == "]":
            raise _Decline  # a trailing comma


def _flow_mapping(text: str) -> tuple[dict[Any, Any], int]:
    mapping: dict[Any, Any] = {}
    i = _skip(text, 1)
    if text[i] == "}":
        return mapping, i + 1
    while True:
        key, i = _flow_scalar(text, i)
        if text[i : i + 2] != ": " or key in mapping:
            raise _Decline
        value, i = _flow_scalar(text, _skip(text, i + 1))
        mapping[key] = value
        i = _skip(text, i)
        if text[i] == "}":
            return mapping, i + 1
        if text[i] != ",":
            raise _Decline
        i = _skip(text, i + 1)
        if text[i] == "}":
            raise _Decline


def _skip(text: str, i: int) -> int:
    while text[i] == " ":
        i += 1
    return i


def _flow_scalar(text: str, i: int) -> tuple[Any, int]:
    """Read one scalar inside a flow collection; return it and the index after it."""
    first = text[i]
    if first == "'":
        return _single(text, i)
    if first == '"':
        return _double(text, i)
    end = i
    while text[end] not in ",]}[{:#'\"":
        end += 1
    # Stopping at ":" (or a quote, or "#") leaves YAML's intricate flow rules to YAML;
    # a mapping key must then see ": " right here.
    if text[end] == ":" and text[end + 1] != " ":
        raise _Decline
    if text[end] in "[{#'\"":
        raise _Decline
    word = text[i:end].rstrip(" ")
    if not word:
        raise _Decline
    return _plain(word), i + len(word)


def _single(text: str, start: int) -> tuple[str, int]:
    """Read a single-quoted scalar starting at ``start``; return it and the index after."""
    parts: list[str] = []
    i = start + 1
    while True:
        end = text.find("'", i)
        if end < 0:
            raise _Decline  # closes on another line (or never)
        parts.append(text[i:end])
        if text[end + 1 : end + 2] == "'":
            parts.append("'")
            i = end + 2
            continue
        return _shared("".join(parts)), end + 1


def _double(text: str, start: int) -> tuple[str, int]:
    """Read a double-quoted scalar starting at ``start``; return it and the index after."""
    parts: list[str] = []
    i = start + 1
    while True:
        quote = text.find('"', i)
        slash = text.find("\\", i, quote)
        if quote < 0:
            raise _Decline  # closes on another line (or never)
        if slash < 0:
            parts.append(text[i:quote])
            return _shared("".join(parts)), quote + 1
        parts.append(text[i:slash])
        code = text[slash + 1]
        if code in _ESCAPES:
            parts.append(_ESCAPES[code])
            i = slash + 2
        elif code in _HEX_ESCAPES:
            width = _HEX_ESCAPES[code]
            digits = text[slash + 2 : slash + 2 + width]
            if len(digits) != width or not _HEX.match(digits):
                raise _Decline
            point = int(digits, 16)
            if 0xD800 <= point <= 0xDFFF or point > 0x10FFFF:
                raise _Decline
            parts.append(chr(point))
            i = slash + 2 + width
        else:
            raise _Decline


def _shared(text: str) -> str:
    # Quoted values repeat across records too ("***", a workspace): one copy each.
    return sys.intern(text) if len(text) <= 64 else text


def _plain(text: str) -> Any:
    # Records repeat most values ("null", "running", "claude"); results are immutable.
    try:
        return _scalars[text]
    except KeyError:
        pass
    value = _plain_uncached(text)
    if len(_scalars) < _SCALAR_CACHE_SIZE:
        _scalars[text] = value
    return value


_SCALAR_CACHE_SIZE = 4096
_scalars: dict[str, Any] = {}


def _plain_uncached(text: str) -> Any:
    # The common case first: a word, path or flag that no YAML type or indicator claims.
    if _SIMPLE.match(text) and text not in _BOOLS and text not in _NULLS:
        return text
    if not text:
        return None
    first = text[0]
    if first in _INDICATORS or (first == "-" and text[:2] in ("- ", "-")):
        raise _Decline
    if _UNSAFE.search(text):
        raise _Decline
    if first not in _TYPED_STARTS:
        return text
    return _typed_plain(text)


def _typed_plain(text: str) -> Any:
    """Type a plain scalar whose first character some YAML 1.1 type also starts with."""
    if text in _NULLS:
        return None
    if text in _BOOLS:
        return _BOOLS[text]
    if text in ("<<", "="):
        raise _Decline
    first = text[0]
    if first in "yYnNtTfFoO~<=":
        return text  # only the exact words above are typed
    if _INT.match(text):
        if len(text) > 20:
            raise _Decline  # past int64: let YAML (and the schema) judge it
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    if _resolved_time().match(text):
        return _time(text)
    if _numeric_or_time().match(text):
        raise _Decline  # octal, hex, sexagesimal, "1_000": leave them to YAML
    return text  # "--flag", "3f2a9c", ".hidden"


def _time(text: str) -> dt.date:
    """Build what PyYAML's ``construct_yaml_timestamp`` builds from ``text``."""
    match = _timestamp().match(text)
    if match is None:
        raise _Decline
    values = match.groupdict()
    try:
        if not values["hour"]:
            return dt.date(int(values["year"]), int(values["month"]), int(values["day"]))
        fraction = int((values["fraction"] or "")[:6].ljust(6, "0"))
        tzinfo: dt.tzinfo | None = None
        if values["tz_sign"]:
            delta = dt.timedelta(
                hours=int(values["tz_hour"]), minutes=int(values["tz_minute"] or 0)
            )
            tzinfo = dt.timezone(-delta if values["tz_sign"] == "-" else delta)
        elif values["tz"]:
            tzinfo = dt.UTC
        return dt.datetime(
            int(values["year"]),
            int(values["month"]),
            int(values["day"]),
            int(values["hour"]),
            int(values["minute"]),
            int(values["second"]),
            fraction,
            tzinfo=tzinfo,
        )
    except ValueError:
        raise _Decline from None  # a day that does not exist: YAML's error to report


# --- writing -------------------------------------------------------------------------


def dump(data: dict[str, Any], mask: str) -> str | None:
    """Return ``data`` as a record text in the subset :func:`parse` reads, or ``None``.

    Writing a record then needs no PyYAML (~10 ms to import, per command that writes).
    Scalars, lists of scalars and mappings of scalars are written; anything else (the
    ``runs`` history, a hand-added date or nested value) declines, and the caller uses
    the full YAML dumper. The caller checks that :func:`parse` gives ``data`` back.
    ``mask`` is always written double-quoted, the form people and greps look for.
    """
    lines: list[str] = []
    try:
        for key, value in data.items():
            if not isinstance(key, str) or not _TOP_KEY.match(key) or _plain_safe(key) != key:
                return None
            if isinstance(value, list):
                if not value:
                    lines.append(f"{key}: []")
                    continue
                lines.append(f"{key}:")
                lines.extend(f"- {_dump_scalar(item, mask)}" for item in value)
            elif isinstance(value, dict):
                if not value:
                    lines.append(f"{key}: {{}}")
                    continue
                lines.append(f"{key}:")
                for name, item in value.items():
                    if not isinstance(name, str):
                        return None
                    lines.append(f"  {_dump_scalar(name, mask)}: {_dump_scalar(item, mask)}")
            else:
                lines.append(f"{key}: {_dump_scalar(value, mask)}")
    except _Decline:
        return None
    return "\n".join(lines) + "\n"


def _dump_scalar(value: Any, mask: str) -> str:
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if type(value) is int:
        return str(value)
    if type(value) is float:
        text = repr(value)
        if _FLOAT.match(text) is None:
            raise _Decline  # 1e-05, inf, nan: YAML's own spelling
        return text
    if type(value) is not str:
        raise _Decline
    if value == mask:
        return f'"{mask}"'
    if value and _plain_safe(value) == value:
        return value
    if _odd_chars(value) or "\n" in value:
        raise _Decline  # escapes: YAML's double quotes
    return "'" + value.replace("'", "''") + "'"


def _plain_safe(text: str) -> Any:
    """What ``text`` reads as when written plain (a sentinel when it cannot be)."""
    if _odd_chars(text) or "\n" in text or text != text.strip():
        return _NOT_PLAIN
    try:
        return _plain(text)
    except _Decline:
        return _NOT_PLAIN


_NOT_PLAIN = object()
