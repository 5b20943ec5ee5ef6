"""TmuxBackend on a real tmux server (private sockets), and on fake tmux binaries."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import sys
import time
from collections.abc import Callable, Sequence
from subprocess import CompletedProcess
from typing import NamedTuple

import pytest

from amux_tmux import exc
from amux_tmux.tmux import (
    ORPHAN_OPTION,
    OWNER_OPTION,
    ROOT_OPTION,
    STORE_OPTION,
    Spawned,
    TmuxBackend,
    client_environ,
    escape_arg,
    escape_format,
    exact_session,
    fixed_program,
    log_pipe_program,
    socket_of_tmux_env,
    socket_path_for,
)
from tests.helpers import AGENT, kill_server, wait_until

TmuxCli = Callable[..., CompletedProcess[str]]
SLEEP = ("sleep", "600")
STORE = "s0re1d"
TIMEOUT = 15.0


@pytest.fixture
def backend(socket_name: str) -> TmuxBackend:
    """A backend on the test's private socket (the fixture kills its server)."""
    return TmuxBackend(socket_name, timeout=TIMEOUT)


def _spawn(
    backend: TmuxBackend,
    sid: str,
    root: str = "/nonexistent-root",
    command: Sequence[str] = SLEEP,
) -> Spawned:
    """Create a session the way start does, running ``command`` instead of the launcher."""
    return backend.new_session(f"amux-{sid}", sid, STORE, root, list(command))


def _names(tmux_cli: TmuxCli) -> list[str]:
    out = tmux_cli("list-sessions", "-F", "#{session_name}")
    return sorted(out.stdout.split("\n")[:-1]) if out.returncode == 0 else []


def _fake_tmux(directory: pathlib.Path, body: str) -> str:
    """Write an executable shell script standing in for tmux; return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "tmux"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


def _option(tmux_cli: TmuxCli, target: str, name: str, *flags: str) -> str:
    out = tmux_cli("show-options", *flags, "-v", "-t", target, name)
    assert out.returncode == 0, out.stderr
    return out.stdout.removesuffix("\n")


def _server_pid(tmux_cli: TmuxCli) -> int:
    return int(tmux_cli("display-message", "-p", "#{pid}").stdout)


# --- creating sessions ---------------------------------------------------------------


def test_new_session_is_tagged_and_keeps_its_dead_pane(
    backend: TmuxBackend, tmux_cli: TmuxCli
) -> None:
    """One call: the session, its tags, remain-on-exit, the pane-died hook, server options."""
    spawned = _spawn(backend, "abc1234", root="/some/root")
    assert backend.calls == 1
    assert spawned.session_name == "amux-abc1234"
    listed = tmux_cli(
        "list-panes", "-a", "-F", "#{session_id} #{pane_id} #{pane_pid} #{socket_path}"
    ).stdout.split()
    assert listed == [
        spawned.session_id,
        spawned.pane_id,
        str(spawned.pane_pid),
        spawned.socket_path,
    ]
    assert spawned.socket_path == backend.socket_path
    target = "=amux-abc1234:"
    assert _option(tmux_cli, target, OWNER_OPTION) == "abc1234"
    assert _option(tmux_cli, target, STORE_OPTION) == STORE
    assert _option(tmux_cli, target, ROOT_OPTION) == "/some/root"
    assert _option(tmux_cli, target, "remain-on-exit", "-w") == "on"
    hooks = tmux_cli("show-hooks", "-w", "-t", target).stdout
    assert "pane-died" in hooks
    assert "amux_tmux.pane_died #{pane_id}" in hooks
    assert _option(tmux_cli, "", "focus-events", "-s") == "on"


def test_new_session_duplicate_name_is_refused(backend: TmuxBackend, tmux_cli: TmuxCli) -> None:
    """A second session with the same name fails; the first is untouched."""
    first = _spawn(backend, "dup001")
    with pytest.raises(exc.TmuxCommandFailed, match="duplicate session"):
        _spawn(backend, "dup001")
    assert _names(tmux_cli) == ["amux-dup001"]
    assert backend.list_live().panes["amux-dup001"].session_id == first.session_id


def test_new_session_creates_the_socket_directory(tmp_path: pathlib.Path) -> None:
    """With -S tmux does not create the socket's directory; new_session does (0700)."""
    sock = tmp_path / "private" / "sock"
    backend = TmuxBackend(str(sock), timeout=TIMEOUT)
    try:
        _spawn(backend, "dir001")
        assert (sock.parent.stat().st_mode & 0o777) == 0o700
        assert list(backend.list_live().panes) == ["amux-dir001"]
    finally:
        kill_server(str(sock))


class Hostile(NamedTuple):
    test_id: str
    text: str


HOSTILE = [
    Hostile("trailing-semicolon", "x;"),
    Hostile("only-semicolon", ";"),
    Hostile("escaped-semicolon", "a\\;"),
    Hostile("double-semicolon", "kill-server;;"),
    Hostile("trailing-backslash", "a\\"),
    Hostile("shell-format", "#(touch {marker})"),
    Hostile("format", "#{session_name}"),
    Hostile("conditional-format", "#{?session_name,yes,no}"),
    Hostile("hash", "#"),
    Hostile("quotes", 'it\'s "quoted"'),
    Hostile("dollar", "$(touch {marker}) $HOME ${HOME}"),
    Hostile("tilde", "~"),
    Hostile("braces", "{ kill-server }"),
    Hostile("non-ascii", "é€漢字"),
    Hostile("leading-dash", "-t"),
    Hostile("spaces", "  a  b  "),
]


@pytest.mark.parametrize("case", HOSTILE, ids=lambda c: c.test_id)
def test_pane_command_and_root_reach_tmux_unparsed(
    backend: TmuxBackend, tmux_cli: TmuxCli, tmp_path: pathlib.Path, case: Hostile
) -> None:
    """Each argv element and the root arrive byte for byte; tmux runs nothing."""
    marker = tmp_path / "ran"
    text = case.text.replace("{marker}", str(marker))
    out = tmp_path / "argv.json"
    tmux_cli("new-session", "-d", "-s", "bystander", "sleep", "600")
    command = [
        sys.executable,
        "-c",
        "import json, sys; open(sys.argv[1], 'w').write(json.dumps(sys.argv[2:]))",
        str(out),
        text,
        "x" + text,
    ]
    spawned = _spawn(backend, "hostile1", root=text, command=command)
    got = wait_until(lambda: out.exists() and out.read_text(), timeout=TIMEOUT, what="argv")
    assert json.loads(got) == [text, "x" + text]
    assert backend.pane_facts(spawned.pane_id, ROOT_OPTION) == [text]
    assert not marker.exists()
    assert _names(tmux_cli) == ["amux-hostile1", "bystander"]


# --- exact targets -------------------------------------------------------------------


def test_targets_are_exact(backend: TmuxBackend, tmux_cli: TmuxCli) -> None:
    """A name that is a prefix of a live session never matches it."""
    long = _spawn(backend, "abc1234")
    short = _spawn(backend, "abc12")
    assert backend.kill_session(exact_session("amux-abc1")) is False
    assert backend.pane_facts("=amux-abc1:", "pane_id") is None
    assert _names(tmux_cli) == ["amux-abc12", "amux-abc1234"]
    assert backend.kill_session(exact_session("amux-abc12")) is True
    assert _names(tmux_cli) == ["amux-abc1234"]
    assert backend.kill_session(short.session_id) is False
    assert backend.kill_session(long.session_id) is True
    assert _names(tmux_cli) == []


class Inexact(NamedTuple):
    test_id: str
    call: Callable[[TmuxBackend], object]


INEXACT = [
    Inexact("kill_session", lambda b: b.kill_session("amux-abc12")),
    Inexact("kill_sessions", lambda b: b.kill_sessions(["$1", "amux-abc12"])),
    Inexact("set_orphan_tags", lambda b: b.set_orphan_tags(["abc"])),
    Inexact("pane_facts", lambda b: b.pane_facts("1", "pane_id")),
    Inexact("capture", lambda b: b.capture("")),
    Inexact("captures", lambda b: b.captures(["%1", "amux"], 5)),
    Inexact("paste", lambda b: b.paste("amux-abc", "x")),
    Inexact("press_enter", lambda b: b.press_enter("amux-abc")),
    Inexact("switch_client", lambda b: b.switch_client("amux-abc")),
    Inexact("attach_argv", lambda b: b.attach_argv("amux-abc")),
    Inexact("pane-id-ending-in-semicolon", lambda b: b.pane_snapshot("%1;", 5)),
    Inexact("name-ending-in-semicolon", lambda b: b.kill_session("=amux-abc;")),
    Inexact("newline", lambda b: b.pane_facts("%1\nkill-server", "pane_id")),
]


@pytest.mark.parametrize("case", INEXACT, ids=lambda c: c.test_id)
def test_inexact_targets_are_refused_before_tmux(backend: TmuxBackend, case: Inexact) -> None:
    """A bare name never reaches tmux (which would resolve it by prefix)."""
    with pytest.raises(ValueError, match="not exact"):
        case.call(backend)
    assert backend.calls == 0


# --- listing -------------------------------------------------------------------------


def test_list_live_is_one_call_with_every_session(backend: TmuxBackend, tmux_cli: TmuxCli) -> None:
    """One list-panes: owned, foreign and split sessions, tags, pids and exits."""
    alive = _spawn(backend, "live01")
    _spawn(backend, "dead01", command=("sh", "-c", "exit 3"))
    tmux_cli("new-session", "-d", "-s", "work", "sleep", "600")
    tmux_cli("split-window", "-t", "=work:", "sleep", "600")
    tmux_cli("set-option", "-t", f"{alive.session_id}:", ORPHAN_OPTION, "1")
    wait_until(
        lambda: backend.list_live().panes["amux-dead01"].pane_dead_status == 3,
        timeout=TIMEOUT,
        what="the exit status",
    )
    before = backend.calls
    live = backend.list_live()
    assert backend.calls - before == 1
    assert live.no_server is False
    assert sorted(live.panes) == ["amux-dead01", "amux-live01", "work"]
    pane = live.panes["amux-live01"]
    assert (pane.session_id, pane.pane_id, pane.pane_pid) == (
        alive.session_id,
        alive.pane_id,
        alive.pane_pid,
    )
    assert (pane.owner_id, pane.store_id, pane.orphan_tag, pane.pane_dead) == (
        "live01",
        STORE,
        True,
        False,
    )
    assert abs(pane.session_created - time.time()) < 120
    dead = live.panes["amux-dead01"]
    assert (dead.pane_dead, dead.pane_dead_status, dead.orphan_tag) == (True, 3, False)
    work = live.panes["work"]
    assert (work.owner_id, work.store_id) == (None, None)
    first = tmux_cli("list-panes", "-t", "=work:", "-F", "#{pane_id}").stdout.split()[0]
    assert work.pane_id == first


def test_foreign_tags_cannot_break_the_listing(backend: TmuxBackend, tmux_cli: TmuxCli) -> None:
    """Anyone may set @amux_* on their session: a newline or the separator in it must
    not hide (or fail) the listing of every other session."""
    mine = _spawn(backend, "mine01")
    tmux_cli("new-session", "-d", "-s", "weird", "sleep", "600")
    for option in (OWNER_OPTION, STORE_OPTION, ORPHAN_OPTION):
        out = tmux_cli("set-option", "-t", "=weird:", option, "a\nb\x1fc\x1fd")
        assert out.returncode == 0, out.stderr
    live = backend.list_live()
    assert sorted(live.panes) == ["amux-mine01", "weird"]
    assert live.panes["amux-mine01"].session_id == mine.session_id
    weird = live.panes["weird"]
    assert weird.owner_id is not None
    assert "\n" not in weird.owner_id
    assert weird.store_id != STORE
    assert weird.orphan_tag is False


def test_list_live_without_a_server(backend: TmuxBackend) -> None:
    """No server (not even its socket directory): an empty listing that says so."""
    assert not os.path.exists(os.path.dirname(backend.socket_path)) or not os.path.exists(
        backend.socket_path
    )
    live = backend.list_live()
    assert (live.panes, live.no_server) == ({}, True)
    assert backend.kill_session("$1") is False


def test_list_live_after_the_server_was_killed(backend: TmuxBackend, tmux_cli: TmuxCli) -> None:
    """A socket file left by a SIGKILLed server: tmux says no server; so do we."""
    _spawn(backend, "gone01")
    pid = _server_pid(tmux_cli)
    os.kill(pid, signal.SIGKILL)

    def no_server() -> bool:
        try:
            return backend.list_live().no_server
        except exc.TmuxQueryFailed:
            return False  # "server exited unexpectedly" while it dies: not empty yet

    wait_until(no_server, timeout=TIMEOUT, what="no server")


class Message(NamedTuple):
    test_id: str
    stderr: str
    no_server: bool


MESSAGES = [
    Message("no-server", "no server running on /tmp/tmux-0/amux", True),
    Message("no-socket", "error connecting to /tmp/x/amux (No such file or directory)", True),
    Message("permission", "error connecting to /tmp/x/amux (Permission denied)", False),
    Message("lost-server", "lost server", False),
    Message("silent", "", False),
]


@pytest.mark.parametrize("case", MESSAGES, ids=lambda c: c.test_id)
def test_only_no_server_is_an_empty_listing(tmp_path: pathlib.Path, case: Message) -> None:
    """Anything but "no server" is an error (exit 5), never an empty listing."""
    fake = _fake_tmux(tmp_path / "bin", f"echo '{case.stderr}' >&2\nexit 1")
    backend = TmuxBackend("s", tmux_bin=fake)
    if case.no_server:
        assert backend.list_live().no_server is True
        return
    with pytest.raises(exc.TmuxQueryFailed) as err:
        backend.list_live()
    assert err.value.exit_code == 5


def test_a_server_on_its_way_out_is_asked_again(tmp_path: pathlib.Path) -> None:
    """Its last session just killed, the server exits as we ask: asked again, it is
    gone (an empty listing, as after any exit), not an error."""
    count = tmp_path / "count"
    fake = _fake_tmux(
        tmp_path / "bin",
        f'echo x >> {count}\n[ "$(wc -l < {count})" -eq 1 ] && '
        "{ echo 'server exited unexpectedly' >&2; exit 1; }\n"
        "echo 'no server running on /tmp/x' >&2\nexit 1",
    )
    assert TmuxBackend("s", tmux_bin=fake).list_live().no_server is True
    assert count.read_text().count("x") == 2


@pytest.mark.parametrize("case", [m for m in MESSAGES if m.stderr], ids=lambda c: c.test_id)
def test_new_session_on_an_unreachable_server_is_tmux_unavailable(
    tmp_path: pathlib.Path, case: Message
) -> None:
    """tmux cannot reach its server: exit 5 (unavailable), not "the command failed"."""
    fake = _fake_tmux(tmp_path / "bin", f"echo '{case.stderr}' >&2\nexit 1")
    with pytest.raises(exc.TmuxUnavailable) as err:
        _spawn(TmuxBackend("s", tmux_bin=fake), "unr001")
    assert err.value.exit_code == 5


def test_new_session_refused_by_the_server_is_a_failed_command(tmp_path: pathlib.Path) -> None:
    fake = _fake_tmux(tmp_path / "bin", "echo 'duplicate session: amux-x' >&2\nexit 1")
    with pytest.raises(exc.TmuxCommandFailed, match="duplicate session"):
        _spawn(TmuxBackend("s", tmux_bin=fake), "unr002")


def test_garbage_listing_is_an_error(tmp_path: pathlib.Path) -> None:
    """Output that is not our format is an error, never silently fewer sessions."""
    fake = _fake_tmux(tmp_path / "bin", "echo 'something unexpected'")
    with pytest.raises(exc.TmuxQueryFailed, match="unexpected output"):
        TmuxBackend("s", tmux_bin=fake).list_live()


# --- pane facts ----------------------------------------------------------------------


class Value(NamedTuple):
    test_id: str
    text: str


ROOTS = [
    Value("newline", "/a\nb"),
    Value("trailing-newline", "/a\n"),
    Value("separator", "/a\x1fb"),
    Value("tab-and-controls", "/a\tb\x01c"),
    Value("non-utf8", os.fsdecode(b"/a\xff\xfeb")),
    Value("semicolons", "/x;\\;"),
]


@pytest.mark.parametrize("case", ROOTS, ids=lambda c: c.test_id)
def test_pane_facts_return_option_values_whole(backend: TmuxBackend, case: Value) -> None:
    """The root travels as an option value; pane_facts gives it back byte for byte."""
    spawned = _spawn(backend, "facts01", root=case.text)
    assert backend.pane_facts(spawned.pane_id, ROOT_OPTION) == [case.text]
    assert backend.pane_facts(
        spawned.pane_id, OWNER_OPTION, STORE_OPTION, "session_name", ROOT_OPTION
    ) == ["facts01", STORE, "amux-facts01", case.text]


def test_pane_facts_of_a_missing_pane(backend: TmuxBackend) -> None:
    _spawn(backend, "facts02")
    assert backend.pane_facts("%99999", "pane_id") is None


# --- batches -------------------------------------------------------------------------


def test_batch_of_300_is_one_process_with_one_outcome_each(
    backend: TmuxBackend, tmux_cli: TmuxCli
) -> None:
    """300 mixed commands: one tmux process, answers in order, errors per command; the
    control session is gone afterwards."""
    one = _spawn(backend, "batch01").session_id
    two = _spawn(backend, "batch02").session_id
    victim = _spawn(backend, "batch03").session_id
    names = {one: "amux-batch01", two: "amux-batch02"}
    commands: list[list[str]] = [["kill-session", "-t", victim]]
    expected: list[tuple[bool, tuple[str, ...] | None]] = [(True, ())]
    for i in range(299):
        sid = one if i % 8 < 4 else two
        kind = i % 4
        if kind == 0:  # set a value ending in ';' on one session
            commands.append(["set-option", "-t", f"{sid}:", f"@k{i}", f"v{i};"])
            expected.append((True, ()))
        elif kind == 1:  # a format, on the same session
            commands.append(
                ["display-message", "-p", "-t", f"{sid}:", f"#{{session_name}} #{{@k{i - 1}}}"]
            )
            expected.append((True, (f"{names[sid]} v{i - 1};",)))
        elif kind == 2:  # an error in the middle
            commands.append(["kill-session", "-t", f"$9{i:04d}"])
            expected.append((False, None))
        else:  # a value set by an earlier command of this batch
            commands.append(["show-options", "-v", "-t", f"{sid}:", f"@k{i - 3}"])
            expected.append((True, (f"v{i - 3};",)))
    before = backend.calls
    outcomes = backend.batch(commands)
    assert backend.calls - before == 1
    assert len(outcomes) == 300
    for i, (outcome, (ok, output)) in enumerate(zip(outcomes, expected, strict=True)):
        assert outcome.ok is ok, (i, commands[i], outcome)
        if ok:
            assert outcome.output == output, (i, commands[i], outcome)
            assert outcome.error == ""
        else:
            assert "can't find session" in outcome.error, (i, outcome)
    assert _names(tmux_cli) == ["amux-batch01", "amux-batch02"]


def test_kill_sessions_and_orphan_tags_in_one_process(
    backend: TmuxBackend, tmux_cli: TmuxCli
) -> None:
    """Per-session outcomes: a missing session fails alone; the others are done."""
    a = _spawn(backend, "kill01").session_id
    b = _spawn(backend, "kill02").session_id
    c = _spawn(backend, "tag001").session_id
    tags = backend.set_orphan_tags([c, "$99999"])
    assert [o.ok for o in tags] == [True, False]
    kills = backend.kill_sessions([a, "$99999", b])
    assert [o.ok for o in kills] == [True, False, True]
    assert backend.calls == 5
    assert _names(tmux_cli) == ["amux-tag001"]
    assert _option(tmux_cli, f"{c}:", ORPHAN_OPTION) == "1"


def test_batch_refuses_words_it_cannot_quote(backend: TmuxBackend) -> None:
    """A quote or newline in a control-mode word is refused before any tmux process."""
    for word in ("it's", "a\nb"):
        with pytest.raises(ValueError, match="not a control-mode word"):
            backend.batch([["display-message", "-p", word]])
    assert backend.batch([]) == []
    assert backend.calls == 0


def test_batch_never_starts_a_server(backend: TmuxBackend) -> None:
    """Without a server a batch fails (tmux unavailable) instead of starting one in which
    ``$0`` would be some other session."""
    with pytest.raises(exc.TmuxQueryFailed):
        backend.batch([["kill-session", "-t", "$0"]])
    assert backend.list_live().no_server is True


def test_batch_leaves_no_process_behind(backend: TmuxBackend, tmux_cli: TmuxCli) -> None:
    """The control session's placeholder process ends with it."""
    _spawn(backend, "batch04")
    before = set(tmux_cli("list-panes", "-a", "-F", "#{pane_pid}").stdout.split())
    backend.batch([["display-message", "-p", "#{pane_pid}"]])
    after = set(tmux_cli("list-panes", "-a", "-F", "#{pane_pid}").stdout.split())
    assert before == after
    assert not any(n.startswith("_amux-batch") for n in _names(tmux_cli))


# --- terminal I/O --------------------------------------------------------------------


@pytest.fixture
def bracketed(backend: TmuxBackend, tmux_cli: TmuxCli) -> str:
    """A pane running the test agent in bracketed-paste mode (the socket fixture ends it)."""
    out = tmux_cli(
        "new-session", "-d", "-s", "paste", "-x", "200", "-y", "50", "-P", "-F", "#{pane_id}",
        sys.executable, str(AGENT), "--bracketed", "--prompt", "ready> ",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    pane = out.stdout.strip()
    wait_until(lambda: "ready> " in backend.capture(pane), timeout=TIMEOUT, what="prompt")
    return pane


class Paste(NamedTuple):
    test_id: str
    text: str


PASTES = [
    Paste("trailing-semicolon", "hello;"),
    Paste("multi-line", "line one\nline two;\n\nlast"),
    Paste("tmux-syntax", "#{session_name} #(touch x) \\; -t %0 {"),
    Paste("non-ascii", "é€ 漢字"),
]


@pytest.mark.parametrize("case", PASTES, ids=lambda c: c.test_id)
def test_paste_arrives_whole(
    backend: TmuxBackend, tmux_cli: TmuxCli, bracketed: str, case: Paste
) -> None:
    """The text reaches the app as one bracketed paste, exactly; no buffer is left."""
    backend.paste(bracketed, case.text)
    expected = f"paste {json.dumps(case.text)}"
    wait_until(lambda: expected in backend.capture(bracketed), timeout=TIMEOUT, what=expected)
    assert tmux_cli("list-buffers").stdout == ""
    backend.press_enter(bracketed)
    wait_until(lambda: "enter" in backend.capture(bracketed, 3), timeout=TIMEOUT, what="enter")


def test_paste_to_a_missing_pane_fails_and_leaves_no_buffer(
    backend: TmuxBackend, tmux_cli: TmuxCli
) -> None:
    _spawn(backend, "paste02")
    with pytest.raises(exc.TmuxCommandFailed):
        backend.paste("%99999", "text")
    assert tmux_cli("list-buffers").stdout == ""


def test_captures_many_panes_in_one_process(backend: TmuxBackend) -> None:
    """Each pane's own last lines; a missing pane is None; one tmux process."""
    panes = {}
    for i in range(12):
        command = ("sh", "-c", f"echo first-{i}; echo last-{i}; exec sleep 600")
        panes[_spawn(backend, f"cap{i:03d}", command=command).pane_id] = i
    for pane, i in panes.items():
        wait_until(lambda p=pane, i=i: f"last-{i}" in backend.capture(p), timeout=TIMEOUT)
    before = backend.calls
    screens = backend.captures([*panes, "%99999"], 1)
    assert backend.calls - before == 1
    assert screens.pop("%99999") is None
    assert screens == {pane: f"last-{i}" for pane, i in panes.items()}


def test_capture_drops_the_dead_pane_banner(backend: TmuxBackend) -> None:
    spawned = _spawn(backend, "cap100", command=("sh", "-c", "echo bye; exit 0"))
    wait_until(lambda: backend.list_live().panes["amux-cap100"].pane_dead, timeout=TIMEOUT)
    wait_until(
        lambda: "Pane is dead" in backend.cmd("capture-pane", "-p", "-t", spawned.pane_id).text,
        timeout=TIMEOUT,
    )
    assert backend.capture(spawned.pane_id) == "bye\n"
    assert backend.capture(spawned.pane_id, 0) == ""


# --- quoting, through real tmux ------------------------------------------------------


QUOTED = [
    *HOSTILE,
    Hostile("backslash-semicolon-end", "x\\\\;"),
    Hostile("plain", "plain"),
    Hostile("empty", ""),
]


@pytest.mark.parametrize("case", QUOTED, ids=lambda c: c.test_id)
def test_escape_arg_and_escape_format_round_trip(
    tmux_cli: TmuxCli, tmp_path: pathlib.Path, case: Hostile
) -> None:
    """A value set through escape_arg (plain) or escape_format (-F, format-expanded)
    reads back unchanged, and tmux runs nothing."""
    marker = tmp_path / "ran"
    text = case.text.replace("{marker}", str(marker))
    assert tmux_cli("new-session", "-d", "-s", "q", "sleep", "600").returncode == 0
    plain = tmux_cli("set-option", "-t", "=q:", "@plain", escape_arg(text))
    expanded = tmux_cli("set-option", "-F", "-t", "=q:", "@fmt", escape_format(text))
    assert plain.returncode == expanded.returncode == 0, plain.stderr + expanded.stderr
    assert _option(tmux_cli, "=q:", "@plain") == text
    assert _option(tmux_cli, "=q:", "@fmt") == text
    shown = tmux_cli("display-message", "-p", "-t", "=q:", "--", escape_format(text))
    assert shown.stdout.removesuffix("\n") == text
    assert not marker.exists()
    assert _names(tmux_cli) == ["q"]


def test_unescaped_values_would_be_parsed(tmux_cli: TmuxCli) -> None:
    """The oracle can fail: without escaping, tmux splits at ';' and expands formats.

    (A ``#(...)`` job is not used here: tmux kills it when the client that asked for it
    leaves, so whether it ran at all depends on timing.)
    """
    tmux_cli("new-session", "-d", "-s", "q", "sleep", "600")
    tmux_cli("set-option", "-t", "=q:", "@v", "x;", "display-message", "-p", "split")
    assert _option(tmux_cli, "=q:", "@v") == "x"
    tmux_cli("set-option", "-F", "-t", "=q:", "@v", "#{session_name}")
    assert _option(tmux_cli, "=q:", "@v") == "q"


def test_fixed_program_holds_only_the_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shell command tmux runs: quoted interpreter (#s doubled) and #{pane_id}."""
    monkeypatch.setattr(sys, "executable", "/p a/#{x}'q;/python")
    assert fixed_program("pane_died", quiet=True) == (
        "exec '/p a/##{x}'\"'\"'q;/python' -I -m amux_tmux.pane_died #{pane_id} >/dev/null 2>&1"
    )
    assert fixed_program("logpipe").endswith(" -I -m amux_tmux.logpipe #{pane_id}")
    assert log_pipe_program("id-1", "/r;#(x)").endswith(
        " -I -m amux_tmux.logpipe id-1 2f723b23287829"
    )
    with pytest.raises(ValueError, match="inert"):
        fixed_program("logpipe", words=["a;b"])


# --- bounds and versions -------------------------------------------------------------


def test_hanging_tmux_times_out(tmp_path: pathlib.Path) -> None:
    """A tmux that hangs is cut off after the timeout (TmuxTimeout, exit 5)."""
    fake = _fake_tmux(tmp_path / "bin", "exec sleep 30")
    backend = TmuxBackend("s", tmux_bin=fake, timeout=0.5)
    for call in (backend.list_live, lambda: backend.batch([["list-sessions"]])):
        t0 = time.monotonic()
        with pytest.raises(exc.TmuxTimeout) as err:
            call()
        assert time.monotonic() - t0 < 5
        assert err.value.exit_code == 5


class Version(NamedTuple):
    test_id: str
    output: str
    ok: bool


VERSIONS = [
    Version("2.9", "tmux 2.9", False),
    Version("3.1c", "tmux 3.1c", False),
    Version("3.2a", "tmux 3.2a", True),
    Version("3.3a", "tmux 3.3a", True),
    Version("next", "tmux next-3.6", True),
]


@pytest.mark.parametrize("case", VERSIONS, ids=lambda c: c.test_id)
def test_version_check(tmp_path: pathlib.Path, case: Version) -> None:
    """tmux older than 3.2a is refused with TmuxVersionTooOld (exit 5)."""
    fake = _fake_tmux(tmp_path / "bin", f'[ "$1" = "-V" ] && echo "{case.output}"\nexit 0')
    backend = TmuxBackend("s", tmux_bin=fake)
    if case.ok:
        backend.check_version()
        return
    with pytest.raises(exc.TmuxVersionTooOld) as err:
        backend.check_version()
    assert err.value.exit_code == 5
    assert case.output.split()[1] in str(err.value)


def test_a_hanging_version_check_times_out(tmp_path: pathlib.Path) -> None:
    """``tmux -V`` is bounded too (libtmux's own check has no time limit)."""
    fake = _fake_tmux(tmp_path / "bin", "exec sleep 30")
    t0 = time.monotonic()
    with pytest.raises(exc.TmuxTimeout):
        TmuxBackend("s", tmux_bin=fake, timeout=0.5).check_version()
    assert time.monotonic() - t0 < 5


class BadVersion(NamedTuple):
    test_id: str
    body: str


BAD_VERSIONS = [
    BadVersion("error", "echo 'tmux: something broke' >&2; exit 1"),
    BadVersion("silent", "exit 0"),
]


@pytest.mark.parametrize("case", BAD_VERSIONS, ids=lambda c: c.test_id)
def test_an_unreadable_version_is_tmux_unavailable(
    tmp_path: pathlib.Path, case: BadVersion
) -> None:
    """A ``tmux -V`` that says nothing usable is exit 5 with a message, not a crash."""
    fake = _fake_tmux(tmp_path / "bin", case.body)
    with pytest.raises(exc.TmuxUnavailable) as err:
        TmuxBackend("s", tmux_bin=fake).check_version()
    assert err.value.exit_code == 5


def test_real_tmux_passes_the_version_check(backend: TmuxBackend) -> None:
    backend.check_version()


def test_missing_binary(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No tmux on PATH, or a tmux_bin that does not exist: TmuxNotFound (exit 5)."""
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(exc.TmuxNotFound):
        TmuxBackend("s").list_live()
    with pytest.raises(exc.TmuxNotFound):
        TmuxBackend("s", tmux_bin=str(tmp_path / "nope")).list_live()


# --- environment ---------------------------------------------------------------------


def test_tmux_processes_get_a_scrubbed_environment(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tmux client (which may start the server) gets only the variables tmux needs."""
    out = tmp_path / "env.txt"
    fake = _fake_tmux(tmp_path / "bin", f"env > {out}\necho 'no server running on x' >&2\nexit 1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-value-0123456789")
    monkeypatch.setenv("HARMLESS", "visible")
    monkeypatch.setenv("LC_CTYPE", "C.UTF-8")
    TmuxBackend("s", tmux_bin=fake).list_live()
    seen = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    assert "OPENAI_API_KEY" not in seen
    assert "HARMLESS" not in seen
    assert seen["LC_CTYPE"] == "C.UTF-8"
    assert set(seen) - {"PWD", "SHLVL", "_"} <= set(client_environ(os.environ))


def test_the_server_starts_without_the_caller_s_environment(
    backend: TmuxBackend, tmux_cli: TmuxCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server a new_session starts has none of the caller's other variables."""
    canary = "canary-" + os.urandom(8).hex()
    monkeypatch.setenv("SOME_VARIABLE", canary)
    _spawn(backend, "env001")
    with open(f"/proc/{_server_pid(tmux_cli)}/environ", "rb") as f:
        assert canary.encode() not in f.read()
    assert canary not in tmux_cli("show-environment", "-g").stdout
    assert canary not in tmux_cli("show-environment", "-t", "=amux-env001").stdout


# --- small helpers -------------------------------------------------------------------


def test_socket_paths(tmp_path: pathlib.Path) -> None:
    """A bare name lives in $TMUX_TMPDIR/tmux-UID/; anything with a slash is a path."""
    env = {"TMUX_TMPDIR": str(tmp_path)}
    expected = os.path.join(os.path.realpath(tmp_path), f"tmux-{os.geteuid()}", "amux")
    assert socket_path_for("amux", env) == expected
    assert socket_path_for("amux", {}) == f"/tmp/tmux-{os.geteuid()}/amux"
    assert socket_path_for("/x/y/sock", env) == "/x/y/sock"
    assert socket_path_for("rel/sock", env) == os.path.abspath("rel/sock")
    assert socket_of_tmux_env("/tmp/tmux-0/a,b,123,0") == "/tmp/tmux-0/a,b"
    assert socket_of_tmux_env("") is None
    assert socket_of_tmux_env(None) is None


def test_pane_snapshot_of_live_and_missing_panes(backend: TmuxBackend) -> None:
    """One pane as a listing sees it plus its last lines; a missing pane is (None, None)."""
    command = ("sh", "-c", "echo one; echo two; echo three; exec sleep 600")
    spawned = _spawn(backend, "snap01", command=command)
    wait_until(lambda: "three" in backend.capture(spawned.pane_id), timeout=TIMEOUT)
    before = backend.calls
    pane, screen = backend.pane_snapshot(spawned.pane_id, 2)
    assert backend.calls - before == 1
    assert pane is not None
    assert (pane.session_id, pane.owner_id, pane.store_id) == (spawned.session_id, "snap01", STORE)
    assert screen == "two\nthree"
    assert backend.pane_snapshot(spawned.pane_id, 0)[1] is None
    assert backend.pane_snapshot("%99999", 2) == (None, None)
    assert backend.pane_snapshot("%99999", 0) == (None, None)
