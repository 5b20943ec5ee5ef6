"""The canonical fast path agrees with PyYAML's safe loader on everything it accepts."""

from __future__ import annotations

import datetime as dt

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
    text = codec.encode(session.to_dict()).decode()
    fast = canonical.parse(text)
    if fast is not None:
        assert fast == _yaml_load(text)


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
def test_any_text_it_accepts_means_what_yaml_says(pairs: list[tuple[str, str]]) -> None:
    """Hand-made texts: whenever the fast path answers, YAML agrees (or YAML errors and
    the fast path declined)."""
    text = "".join(f"{key}:{value}\n" for key, value in pairs)
    fast = canonical.parse(text)
    try:
        expected = _yaml_load(text)
    except yaml.YAMLError:
        assert fast is None
        return
    if fast is not None:
        assert fast == expected
        assert all(type(fast[k]) is type(expected[k]) for k in fast)  # type: ignore[index]


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
    assert canonical.parse(text) == _yaml_load(text)
    assert Session.from_dict(codec.decode(text.encode())) == session


@pytest.mark.parametrize(
    "text",
    [
        "status: no\n",  # a bool to YAML
        "id: abc\nid: def\n",  # duplicate key
        "a: &x 1\nb: *x\n",  # anchors
        "--- \nid: abc\n",  # document marker
        "id: abc # comment\n",
        "id: abc",  # no final newline
        "command:\n- a\n  - b\n",
        "env:\n  K: 1\n   bad: x\n",
        "id: 2026-11-24\n",  # a date to YAML
        "pid: 0x10\n",
        "x: !!python/object/apply:os.system ['true']\n",
    ],
)
def test_declines_what_is_not_canonical(text: str) -> None:
    assert canonical.parse(text) is None


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
        f"assert [s.id for s in FileStore({str(tmp_path)!r}).list()] == ['abc123']\n"
        "print('yaml' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
