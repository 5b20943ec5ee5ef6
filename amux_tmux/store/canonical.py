"""A fast reader for the exact YAML subset that :func:`amux_tmux.store.codec.encode` writes.

``list`` reads every record, and PyYAML spends ~115 µs on one, most of it constructing
Python objects in Python: 1,000 records would take longer than a whole ``list`` may. The
records we write have one shape: top-level ``key: scalar`` lines, a block sequence
(``command``) and one nested mapping (``environment``), scalars plain, single-quoted or
quoted without escapes. :func:`parse` reads that shape in a single pass and returns
``None`` for anything else, so a hand-edited, foreign or hostile file still goes through
the full, hardened YAML path.

For every text it accepts, :func:`parse` returns what PyYAML's safe loader returns (the
tests check this differentially). Where YAML 1.1 would type a plain scalar as anything but
a plain string, ``null``, a decimal integer or a simple float, it declines.
"""

from __future__ import annotations

import functools
import re
from typing import Any

# Line shapes of an encoded record. Keys are the schema's field names.
_TOP_KEY = re.compile(r"[a-z][a-z_]*")
_NESTED = re.compile(r"  ([^ ].*?): (.*)\Z|  ([^ ].*?):\Z")
_ITEM = re.compile(r"- (.*)\Z")
# Characters after which YAML would see something other than one plain scalar on one line.
_UNSAFE = re.compile(
    r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]|: |:\Z| #|\A[ \t]|[ \t]\Z"
)
# First characters a plain scalar may not start with (indicators).
_INDICATORS = frozenset("[]{}#&*!|>'\"%@`,?:")
_SIMPLE = re.compile(r"[A-Za-z/_$][A-Za-z0-9/_$%.@+,=~-]*\Z")
_INT = re.compile(r"-?(?:0|[1-9][0-9]*)\Z")
_FLOAT = re.compile(r"-?[0-9]+\.[0-9]+\Z")
_NULLS = frozenset({"null", "Null", "NULL", "~"})
_BOOLS = frozenset(
    {"yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE", "false", "False", "FALSE"}
    | {"on", "On", "ON", "off", "Off", "OFF", "y", "Y", "n", "N"}
)
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
# First characters of every YAML 1.1 implicit type but str (int, float, timestamp, null,
# bool, merge, value). A plain scalar starting with anything else is a string.
_TYPED_STARTS = frozenset("-+0123456789.yYnNtTfFoO~<=")


@functools.cache
def _numeric_or_time() -> re.Pattern[str]:
    # Compiled on first need: most records never hold a digit-led string.
    return re.compile(_NUMERIC_OR_TIME_PATTERN, re.X)


class _Decline(Exception):
    """The text is not in the canonical subset; use the full YAML loader."""


def parse(text: str) -> dict[str, Any] | None:
    """Return the mapping a canonical record text encodes, or ``None`` to decline."""
    if not text.endswith("\n"):
        return None
    try:
        return _parse_lines(text[:-1].split("\n"))
    except _Decline:
        return None


def _parse_lines(lines: list[str]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    i, count = 0, len(lines)
    while i < count:
        line = lines[i]
        key, sep, rest = line.partition(": ")
        value: str | None = rest
        if not sep:
            key, value = line[:-1], None
            if not line.endswith(":"):
                raise _Decline
        if key not in _good_keys and not _good_key(key):
            raise _Decline
        if key in data:
            raise _Decline  # YAML keeps the last duplicate; leave that to YAML
        i += 1
        if value is not None:
            data[key] = _collection(value) if value in ("[]", "{}") else _scalar(value)
            continue
        # "key:" alone opens a block sequence at indent 0 or a mapping at indent 2.
        if i < count and lines[i].startswith("- "):
            items = []
            while i < count and lines[i].startswith("-"):
                item = _ITEM.match(lines[i])
                if item is None:
                    raise _Decline
                items.append(_scalar(item.group(1)))
                i += 1
            data[key] = items
        elif i < count and lines[i].startswith("  "):
            mapping: dict[Any, Any] = {}
            while i < count and lines[i].startswith("  "):
                pair = _NESTED.match(lines[i])
                if pair is None:
                    raise _Decline
                name = _scalar(pair.group(1) if pair.group(1) is not None else pair.group(3))
                if not isinstance(name, str) or name in mapping:
                    raise _Decline
                mapping[name] = _scalar(pair.group(2) if pair.group(1) is not None else "")
                i += 1
            data[key] = mapping
        else:
            data[key] = None
    return data


def _good_key(key: str) -> bool:
    if _TOP_KEY.fullmatch(key) is None or key in _BOOLS or key in _NULLS:
        return False
    if len(_good_keys) < 64:
        _good_keys.add(key)
    return True


_good_keys: set[str] = set()


def _collection(text: str) -> list[Any] | dict[str, Any]:
    return [] if text == "[]" else {}


def _scalar(text: str) -> Any:
    # Records repeat most values ("null", "running", "claude"); results are immutable.
    try:
        return _scalars[text]
    except KeyError:
        pass
    value = _scalar_uncached(text)
    if len(_scalars) < _SCALAR_CACHE_SIZE:
        _scalars[text] = value
    return value


_SCALAR_CACHE_SIZE = 4096
_scalars: dict[str, Any] = {}


def _scalar_uncached(text: str) -> Any:
    # The common case first: a word, path or flag that no YAML type or indicator claims.
    if _SIMPLE.match(text) and text not in _BOOLS and text not in _NULLS:
        return text
    if not text:
        return None
    first = text[0]
    if first == "'":
        return _single_quoted(text)
    if first == '"':
        body = text[1:-1]
        if len(text) < 2 or text[-1] != '"' or '"' in body or "\\" in body:
            raise _Decline
        _check_chars(body)
        return body
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
    if text in _BOOLS or text in ("<<", "="):
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
    if _numeric_or_time().match(text):
        raise _Decline  # octal, hex, sexagesimal, "1_000", dates: leave them to YAML
    return text  # "--flag", "3f2a9c", ".hidden"


def _single_quoted(text: str) -> str:
    if len(text) < 2 or text[-1] != "'":
        raise _Decline
    body = text[1:-1]
    if "'" in body.replace("''", ""):
        raise _Decline
    _check_chars(body)
    return body.replace("''", "'")


def _check_chars(body: str) -> None:
    # Quoted scalars may hold ": " or " #", but not line breaks, tabs or controls,
    # which YAML folds or rejects.
    for char in body:
        if char < " " or "\x7f" <= char <= "\x9f" or char in "\u2028\u2029\ufeff\ufffe\uffff":
            raise _Decline
