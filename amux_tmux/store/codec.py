"""YAML encoding of session records, hardened against hostile files.

The only module that knows YAML (with :mod:`canonical`, its fast path for the records
we write ourselves). Decoding refuses what a record never contains:
more than :data:`MAX_RECORD_BYTES`, invalid UTF-8, anchors and aliases (alias bombs),
deep flow nesting (libyaml has crashed on it), tags that build objects, and anything
but a mapping. The C loader and dumper are used when PyYAML has them.
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
MAX_FLOW_OPENERS = 256
# An anchor (&a) or alias (*a) token starts after a blank or a flow indicator; a quoted
# "***" does not match, so a masked record takes the fast path.
_ANCHOR_HINT = re.compile(r"(?:^|[\s\[{,:])[&*][^\s,\]}]")


class DecodeError(ValueError):
    """The bytes are not a well-formed record document."""


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
    """Serialise a record mapping to YAML bytes (block style, field order kept)."""
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
    DecodeError
        With a short reason; never anything else for bad input.
    """
    if len(raw) > MAX_RECORD_BYTES:
        raise DecodeError(f"file is {len(raw)} bytes, over the {MAX_RECORD_BYTES} byte limit")
    if not raw.strip():
        raise DecodeError("file is empty")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DecodeError(f"not UTF-8 at byte {err.start}") from None
    fast = canonical.parse(text)
    if fast is not None:
        return fast
    return _decode_yaml(text)


def _decode_yaml(text: str) -> dict[str, Any]:
    """The full, hardened YAML path for anything :mod:`canonical` declines."""
    import yaml

    loader = _yaml()[0]
    if text.count("[") + text.count("{") > MAX_FLOW_OPENERS:
        raise DecodeError("too many nested flow collections")
    if _ANCHOR_HINT.search(text) and _has_anchor(text, loader):
        raise DecodeError("anchors and aliases are not allowed")
    try:
        data = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as err:
        raise DecodeError(f"invalid YAML: {_one_line(err)}") from None
    except (RecursionError, MemoryError, ValueError, TypeError, OverflowError) as err:
        raise DecodeError(f"cannot load: {type(err).__name__}") from None
    if not isinstance(data, dict):
        raise DecodeError(f"document is a {type(data).__name__}, not a mapping")
    return data


def _has_anchor(text: str, loader: type[yaml.SafeLoader]) -> bool:
    import yaml

    try:
        for event in yaml.parse(text, Loader=loader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                return True
    except yaml.YAMLError as err:
        raise DecodeError(f"invalid YAML: {_one_line(err)}") from None
    return False


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:200]
