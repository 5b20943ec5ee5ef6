"""YAML encoding of session records, hardened against hostile files.

The only module that knows YAML (with :mod:`canonical`, its fast path for the records
we write and the usual hand-written style). Decoding refuses what a record never
contains: more than :data:`MAX_RECORD_BYTES`, invalid UTF-8, anchors and aliases (alias
bombs), nesting deeper than :data:`MAX_DEPTH` (libyaml composes recursively and has
crashed on it), tags that build objects, several documents. Those are
:class:`HostileRecord`; a file that is YAML but no record (empty, a list, a date that
does not exist) is a plain :class:`DecodeError`. The C loader and dumper are used when
PyYAML has them.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any

from amux_tmux.secrets import MASK
from amux_tmux.store import canonical

if TYPE_CHECKING:
    import yaml

MAX_RECORD_BYTES = 256 * 1024
#: A new record must leave room to grow (run history, error text) under the cap.
MAX_NEW_RECORD_BYTES = MAX_RECORD_BYTES // 2
#: Deepest nesting of collections read; a record needs 3.
MAX_DEPTH = 64
# An anchor (&a) or alias (*a) token starts after a blank or a flow indicator; a quoted
# "***" does not match, so a masked record takes the fast path.
_ANCHOR_HINT = re.compile(r"(?:^|[\s\[{,:])[&*][^\s,\]}]")


class DecodeError(ValueError):
    """The bytes are YAML but not a record document (empty, a list, an impossible date)."""


class HostileRecord(DecodeError):
    """The bytes are not YAML, or YAML shaped to hurt a reader: quarantine them."""


@functools.cache
def _yaml() -> tuple[type[yaml.SafeLoader], type[yaml.SafeDumper]]:
    """Import PyYAML on first need: reading canonical records never does (~25 ms)."""
    try:
        from yaml import CSafeDumper as base_dumper
        from yaml import CSafeLoader as loader
    except ImportError:  # pragma: no cover - PyYAML built without libyaml
        from yaml import SafeDumper as base_dumper  # type: ignore[assignment]
        from yaml import SafeLoader as loader  # type: ignore[assignment]

    class Dumper(base_dumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    def represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
        # A mask is written exactly as `"***"`, the form people and greps look for.
        if data == MASK:
            return dumper.represent_scalar("tag:yaml.org,2002:str", data, style='"')
        return dumper.represent_str(data)

    Dumper.add_representer(str, represent_str)  # type: ignore[arg-type]
    return loader, Dumper  # type: ignore[return-value]


def encode(data: dict[str, Any]) -> bytes:
    """Serialise a record mapping to YAML bytes (block style, field order kept).

    The records we write are in the subset :mod:`canonical` writes and reads back, so
    PyYAML is imported only for the unusual (a ``runs`` history, hand-added values).
    """
    fast = canonical.dump(data, MASK)
    if fast is not None and canonical.parse(fast) == data:
        return fast.encode("utf-8")
    import yaml

    text = yaml.dump(
        data,
        Dumper=_yaml()[1],
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=1 << 16,
    )
    return text.encode("utf-8")


def decode(raw: bytes) -> dict[str, Any]:
    """Parse untrusted record bytes into a plain mapping.

    Raises
    ------
    HostileRecord
        Not YAML, or built to hurt a reader (size, nesting, aliases, object tags).
    DecodeError
        YAML, but not a mapping or not loadable as plain data; never anything else.
    """
    if len(raw) > MAX_RECORD_BYTES:
        raise HostileRecord(f"file is {len(raw)} bytes, over the {MAX_RECORD_BYTES} byte limit")
    if not raw.strip():
        raise DecodeError("file is empty")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise HostileRecord(f"not UTF-8 at byte {err.start}") from None
    fast = canonical.parse(text)
    if fast is not None:
        return fast
    return _decode_yaml(text)


def _decode_yaml(text: str) -> dict[str, Any]:
    """The full, hardened YAML path for anything :mod:`canonical` declines."""
    import yaml

    loader = _yaml()[0]
    if _ANCHOR_HINT.search(text) or _depth_bound(text) > MAX_DEPTH:
        _check_structure(text, loader)
    try:
        data = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as err:
        raise HostileRecord(f"invalid YAML: {_one_line(err)}") from None
    except (RecursionError, MemoryError) as err:
        raise HostileRecord(f"cannot load: {type(err).__name__}") from None
    except (ValueError, TypeError, OverflowError) as err:
        # A constructor refused a value: `2026-02-30`, an integer of 5,000 digits.
        raise DecodeError(f"cannot load a value: {_one_line(err)}") from None
    if not isinstance(data, dict):
        raise DecodeError(f"document is {_a(data)}, not a mapping")
    return data


def _depth_bound(text: str) -> int:
    """Return an upper bound on how deep ``text`` nests, without parsing it.

    Every collection owns at least one indicator of its own: ``[`` or ``{`` for a flow
    collection, a ``-`` for a block sequence, a ``:`` or ``?`` for a block mapping.
    """
    return sum(text.count(c) for c in "[{-:?")


def _check_structure(text: str, loader: type[yaml.SafeLoader]) -> None:
    """Walk the parser's events (no recursion) for depth, anchors and aliases.

    Brackets inside quoted scalars are text to the parser, so they never count.
    """
    import yaml

    depth = 0
    try:
        for event in yaml.parse(text, Loader=loader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise HostileRecord(f"nested deeper than {MAX_DEPTH} levels")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise HostileRecord("anchors and aliases are not allowed")
    except yaml.YAMLError as err:
        raise HostileRecord(f"invalid YAML: {_one_line(err)}") from None


def _a(value: object) -> str:
    return "empty" if value is None else f"a {type(value).__name__}"


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:200]
