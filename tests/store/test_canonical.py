"""The fast reader agrees with PyYAML's safe loader, types included, on all it accepts."""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from amux_tmux.model import Session, Status, format_time
from amux_tmux.store import canonical, codec

_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)
_TRICKY = st.sampled_from(
    [
        "",
        " ",
        "null",
        "~",
        "yes",
        "No",
        "on",
        "y",
        "0",
        "-0",
        "007",
        "0x1f",
        "1_000",
        "1:20",
        "1.5",
        "-1.5",
        ".5",
        ".inf",
        "-.inf",
        ".nan",
        "1e3",
        "2026-11-24",
        "--flag",
        "-",
        "- x",
        "a: b",
        "a:",
        "a #b",
        "a#b",
        "#x",
        "&a",
        "*a",
        "!tag",
        "|",
        ">",
        "'q'",
        '"q"',
        "[]",
        "{}",
        "[x]",
        "?x",
        ":x",
        "<<",
        "=",
        "~/x",
        ".hidden",
        "it's",
        "x\ty",
        "a\nb",
        "\u2028",
        "\x85",
        "\ufeff",
        "é",
        "%d",
        "@x",
        "`x",
        "a,b",
        "***",
    ]
)
_VALUES = st.one_of(_TRICKY, _TEXT)


def _session(**fields: object) -> Session:
    now = format_time(dt.datetime(2026, 11, 24, 10, 30, tzinfo=dt.UTC))
    base: dict[str, object] = {"id": "abc123", "status": Status.RUNNING}
    base.update(created_at=now, updated_at=now)
    base.update(fields)
    return Session(**base)  # type: ignore[arg-type]


def _yaml_load(text: str) -> object:
    return yaml.load(text, Loader=yaml.CSafeLoader)


def same(a: object, b: object) -> bool:
    """Equal and of the same types all the way down (``True == 1`` does not count)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return (
            list(a) == list(b)
            and all(same(k, k2) for k, k2 in zip(a, b, strict=True))
            and all(same(a[k], b[k]) for k in a)
        )
    if isinstance(a, list):
        assert isinstance(b, list)
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dt.datetime):
        assert isinstance(b, dt.datetime)
        return a == b and a.utcoffset() == b.utcoffset()
    if isinstance(a, float) and a != a:
        return b != b
    return a == b


def agrees(text: str) -> dict[str, object] | None:
    """Parse ``text`` both ways; fail unless the fast path declined or agreed exactly."""
    fast = canonical.parse(text)
    try:
        expected = _yaml_load(text)
    except yaml.YAMLError:
        assert fast is None, f"YAML refuses {text!r}, the fast path read {fast!r}"
        return None
    except ValueError:
        # A constructor refused a value (an impossible date): the fast path must decline.
        assert fast is None
        return None
    if fast is not None:
        assert same(fast, expected), f"{text!r}: fast {fast!r} != yaml {expected!r}"
    return fast


@settings(max_examples=400, deadline=None)
@given(
    name=st.one_of(st.none(), _VALUES),
    cwd=_VALUES,
    command=st.lists(_VALUES, max_size=4),
    environment=st.dictionaries(_VALUES, _VALUES, max_size=4),
    pid=st.one_of(st.none(), st.integers(0, 2**31)),
    ctime=st.one_of(st.none(), st.floats(0, 2e9, allow_nan=False)),
)
def test_encoded_records_read_back_identically(
    name: str | None,
    cwd: str,
    command: list[str],
    environment: dict[str, str],
    pid: int | None,
    ctime: float | None,
) -> None:
    session = _session(
        name=name,
        cwd=cwd,
        command=tuple(command),
        environment=environment,
        pid=pid,
        pid_create_time=ctime,
    )
    agrees(codec.encode(session.to_dict()).decode())


# --- hand-written texts, built from the pieces people use ---------------------------------

_ESCAPE_PIECES = st.sampled_from(
    [
        "\\n",
        "\\t",
        '\\"',
        "\\\\",
        "\\/",
        "\\0",
        "\\e",
        "\\N",
        "\\_",
        "\\L",
        "\\ ",
        "\\x41",
        "\\x4",
        "\\u00e9",
        "\\ud800",
        "\\U0001F600",
        "\\U00110000",
        "\\q",
        "\\",
    ]
)
_RAW = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12
).filter(lambda t: '"' not in t and "\\" not in t)
_DOUBLE = st.lists(st.one_of(_RAW, _ESCAPE_PIECES), max_size=4).map(lambda p: f'"{"".join(p)}"')
_SINGLE = _VALUES.map(lambda v: "'" + v.replace("'", "''") + "'")
# Mostly what people type (words, paths, flags, numbers, times), sometimes anything.
_NICE = st.one_of(
    st.from_regex(r"[A-Za-z0-9_./$%@+=~-]{1,8}( [A-Za-z0-9.:#'-]{1,6})?", fullmatch=True),
    st.sampled_from(["2026-11-24T10:30:00Z", "2026-11-24", "1732420800.12", "-3", "yes", "~"]),
)
_SCALAR = st.one_of(
    _NICE,
    _NICE,
    _NICE.map(lambda v: f"'{v}'"),
    _NICE.map(lambda v: f'"{v}"'),
    _VALUES,
    _SINGLE,
    _DOUBLE,
    st.sampled_from(["'", '"', "'a''", '"a\\"']),
)
_SEP = st.sampled_from([", ", ",", " , ", ",  "])
_PAD = st.sampled_from(["", " ", "  "])
_FLOW_SEQ = st.tuples(st.lists(_SCALAR, max_size=4), _SEP, _PAD).map(
    lambda t: f"[{t[2]}{t[1].join(t[0])}{t[2]}]"
)
_FLOW_MAP = st.tuples(
    st.lists(st.tuples(_SCALAR, st.sampled_from([": ", ":", ":  "]), _SCALAR), max_size=3),
    _SEP,
    _PAD,
).map(lambda t: "{" + t[2] + t[1].join(k + c + v for k, c, v in t[0]) + t[2] + "}")
_INLINE = st.one_of(_SCALAR, _FLOW_SEQ, _FLOW_MAP)
_COMMENT = st.one_of(
    st.just(""),
    _TEXT.map(lambda t: f"  # {t}"),
    st.sampled_from([" #", "#x", " # a: b", "\t# tab"]),
)
_KEY = st.sampled_from(
    ["id", "name", "notes", "my-note", "Notes", "_x", "null", "yes", "y", "command", "env"]
)
_BLOCK_SEQ = st.tuples(
    st.sampled_from(["- ", "  - ", "-  ", "   - ", "-"]), st.lists(_SCALAR)
).map(lambda t: "".join(f"\n{t[0]}{v}" for v in t[1]))
_BLOCK_MAP = st.tuples(
    st.sampled_from(["  ", "    ", " "]),
    st.lists(st.tuples(_SCALAR, st.sampled_from([": ", ":", ":   "]), _SCALAR), max_size=3),
).map(lambda t: "".join(f"\n{t[0]}{k}{c}{v}" for k, c, v in t[1]))
_ENTRY = st.tuples(
    _KEY,
    st.one_of(
        st.tuples(st.sampled_from([" ", "   ", ""]), _INLINE, _COMMENT).map("".join),
        st.tuples(_COMMENT, st.one_of(_BLOCK_SEQ, _BLOCK_MAP, st.just(""))).map("".join),
    ),
).map(lambda kv: f"{kv[0]}:{kv[1]}")
_FILLER = st.sampled_from(["", "   ", "# a comment", "  # indented", "#", "  x", "", "# c"])
_DOCUMENT = st.tuples(
    st.sampled_from(["", "", "", "---\n", "--- \n", "%YAML 1.1\n---\n"]),
    st.lists(st.one_of(_ENTRY, _ENTRY, _FILLER), max_size=7),
    st.sampled_from(["\n", "\n", "", "\n\n", "\r\n"]),
).map(lambda t: t[0] + "\n".join(t[1]) + t[2])


@settings(max_examples=3000, deadline=None)
@given(_DOCUMENT)
def test_any_text_it_accepts_means_what_yaml_says(text: str) -> None:
    """Hand-made texts: whenever the fast path answers, YAML agrees exactly."""
    agrees(text)


@settings(max_examples=1500, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["id", "name", "null", "yes", "command", "environment", "cwd"]),
            st.one_of(
                _VALUES.map(lambda v: f" {v}"),
                st.just(""),
                st.lists(_VALUES, max_size=3).map(lambda xs: "".join(f"\n- {x}" for x in xs)),
                st.lists(st.tuples(_VALUES, _VALUES), max_size=3).map(
                    lambda kv: "".join(f"\n  {k}: {v}" for k, v in kv)
                ),
            ),
        ),
        max_size=5,
    )
)
def test_raw_values_in_record_shapes_mean_what_yaml_says(pairs: list[tuple[str, str]]) -> None:
    agrees("".join(f"{key}:{value}\n" for key, value in pairs))


HAND_WRITTEN = """\
---
# review session, edited by hand
id: 7f3a9c2e1b          # [a-z0-9][a-z0-9-]{2,63}; generated
name:   review            # optional
agent_id: 'claude'
workspace_id: "ws-xyz789"
status: Running
activity: waiting

tmux_socket: /tmp/tmux-1000/amux   # absolute
tmux_session: amux-7f3a9c2e1b
tmux_session_id: "$3"
pane_id: '%3'
pid: 12345
pid_create_time: 1732420800.12
command: [claude, --api-key, "***", 'fix the tests', 1000]
cwd: /home/me/project
environment: {ANTHROPIC_API_KEY: "***", NODE_ENV: production, DEBUG: 1, VERBOSE: yes}
exit_code: null
created_at: 2026-11-24T10:30:00Z    # UTC
updated_at: 2026-11-24 10:35:00.5+01:00
started_at: 2026-11-24
revision: 4
schema: 1
notes: anything a person added
tags:
  - one
  - "two # not a comment"
# a comment between keys
more:
- x
- 'y'
env_block:
  A: "1\\t2"
  'B C': d   # trailing
  E:
"""


def test_the_hand_written_style_takes_the_fast_path() -> None:
    fast = agrees(HAND_WRITTEN)
    assert fast is not None
    assert fast["command"] == ["claude", "--api-key", "***", "fix the tests", 1000]
    assert fast["environment"]["VERBOSE"] is True
    assert fast["created_at"] == dt.datetime(2026, 11, 24, 10, 30, tzinfo=dt.UTC)
    assert fast["started_at"] == dt.date(2026, 11, 24)
    assert fast["env_block"] == {"A": "1\t2", "B C": "d", "E": None}
    record = Session.from_dict(fast)
    assert record.status is Status.RUNNING
    assert record.command == ("claude", "--api-key", "***", "fix the tests", "1000")
    assert record.environment["DEBUG"] == "1"
    assert record.extra["tags"] == ["one", "two # not a comment"]


def test_typical_record_takes_the_fast_path() -> None:
    session = _session(
        name="review",
        agent_id="claude",
        tmux_socket="/tmp/tmux-0/amux",
        tmux_session="amux-abc123",
        tmux_session_id="$3",
        pane_id="%3",
        pid=4242,
        pid_create_time=1795524283.51,
        command=("claude", "--dangerously-skip-permissions", "-p", "fix the tests"),
        cwd="/home/me/project",
        environment={"ANTHROPIC_API_KEY": "***", "NODE_ENV": "production"},
        exit_code=0,
    )
    text = codec.encode(session.to_dict()).decode()
    assert agrees(text) is not None
    assert Session.from_dict(codec.decode(text.encode())) == session


class Declined(NamedTuple):
    test_id: str
    text: str


DECLINED = [
    Declined("duplicate-key", "id: abc\nid: def\n"),
    Declined("anchor", "a: &x 1\nb: *x\n"),
    Declined("marker-with-space", "--- \nid: abc\n"),
    Declined("end-marker", "id: abc\n...\n"),
    Declined("deeper-item", "command:\n- a\n  - b\n"),
    Declined("uneven-map", "env:\n  K: 1\n   bad: x\n"),
    Declined("indent-four", "env:\n    K: 1\n"),
    Declined("hex", "pid: 0x10\n"),
    Declined("octal", "pid: 010\n"),
    Declined("underscore", "pid: 1_000\n"),
    Declined("tag", "x: !!python/object/apply:os.system ['true']\n"),
    Declined("bool-key", "yes: 1\n"),
    Declined("multi-line-plain", "notes: one\n  two\n"),
    Declined("multi-line-quoted", "notes: 'one\n  two'\n"),
    Declined("block-scalar", "notes: |\n  text\n"),
    Declined("nested-flow", "command: [a, [b]]\n"),
    Declined("trailing-comma", "command: [a, b,]\n"),
    Declined("tab", "id:\tabc\n"),
    Declined("crlf", "id: abc\r\n"),
    Declined("bom", "\ufeffid: abc\n"),
    Declined("nel", "notes: a\x85b\n"),
    Declined("line-separator-in-comment", "id: abc # x\u2028y: z\n"),
    Declined("comments-only", "# nothing\n"),
    Declined("impossible-date", "created_at: 2026-02-30\n"),
    Declined("flow-colon-url", "command: [curl, http://x]\n"),
    Declined("seq-of-maps", "runs:\n- status: stopped\n"),
    Declined("indented-top", "  id: abc\n"),
]


@pytest.mark.parametrize("case", DECLINED, ids=lambda c: c.test_id)
def test_declines_what_it_does_not_read(case: Declined) -> None:
    assert canonical.parse(case.text) is None


def test_listing_canonical_records_does_not_import_yaml(tmp_path: object) -> None:
    import subprocess
    import sys

    code = (
        "import sys, datetime as dt\n"
        "from amux_tmux.store import FileStore\n"
        "from amux_tmux.model import Session, Status, utcnow\n"
        f"store = FileStore({str(tmp_path)!r})\n"
        "now = utcnow()\n"
        "store.create(Session(id='abc123', status=Status.RUNNING, created_at=now,"
        " updated_at=now, command=('claude',), environment={'K': 'v'}))\n"
        "for m in [m for m in sys.modules if m == 'yaml' or m.startswith('yaml.')]:\n"
        "    del sys.modules[m]\n"
        f"assert [s.id for s in FileStore({str(tmp_path)!r}).list().sessions] == ['abc123']\n"
        "print('yaml' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
