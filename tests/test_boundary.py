"""The tmux boundary end to end: the real CLI, a real tmux on private sockets.

What a user controls reaches the agent byte for byte and tmux parses none of it; a
store owns only its own sessions; nothing a failed or killed start made outlives one
``reconcile --remove``; an unreachable server changes no record; secrets reach only the
agent; the agent gets the caller's environment; ``stop`` signals only what tmux vouches for.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pathlib
import random
import shutil
import signal
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import psutil
import pytest

from amux_tmux import exc
from amux_tmux.manager import Manager, StartSpec
from amux_tmux.model import Status
from amux_tmux.store import FileStore, Query, atomic
from amux_tmux.tmux import socket_path_for
from tests.helpers import (
    Cli,
    agent_command,
    describe,
    gone_within,
    kill_server,
    make_record,
    owned_session,
    procs_holding,
    wait_until,
)

TIMEOUT = 15.0
TmuxCli = Callable[..., subprocess.CompletedProcess[str]]


def _reports(cli: Cli, sid: str, *prefixes: str) -> dict[str, Any]:
    """Wait until the agent's log holds a line for each prefix; return their JSON."""

    def found() -> dict[str, Any] | None:
        seen: dict[str, Any] = {}
        for line in cli.run("logs", sid).stdout.splitlines():
            for prefix in prefixes:
                if line.startswith(prefix + " ") and prefix not in seen:
                    seen[prefix] = json.loads(line[len(prefix) + 1 :])
        return seen if len(seen) == len(prefixes) else None

    return wait_until(found, timeout=TIMEOUT, what=f"the agent to report {prefixes}")


def _sessions(tmux_cli: TmuxCli) -> dict[str, tuple[str, ...]]:
    """Every session on the server: name -> (id, @amux_id, @amux_store, @amux_orphan)."""
    fmt = "\x1f".join(
        ("#{session_name}", "#{session_id}", "#{@amux_id}", "#{@amux_store}", "#{@amux_orphan}")
    )
    out = tmux_cli("list-sessions", "-F", fmt)
    if out.returncode != 0 and out.stderr.startswith("no server running on "):
        return {}
    assert out.returncode == 0, out.stderr
    rows = [line.split("\x1f") for line in out.stdout.splitlines()]
    return {row[0]: tuple(row[1:]) for row in rows}


def _tree(root: pathlib.Path) -> dict[str, bytes]:
    """Every regular file under ``root/.amux`` with its bytes (FIFOs and locks named)."""
    files: dict[str, bytes] = {}
    amux = root / ".amux"
    if not amux.exists():
        return files
    for path in sorted(amux.rglob("*")):
        mode = path.lstat().st_mode
        if stat.S_ISREG(mode):
            files[str(path.relative_to(amux))] = path.read_bytes()
    return files


def _records(root: pathlib.Path) -> dict[str, bytes]:
    return {k: v for k, v in _tree(root).items() if k.startswith("sessions/")}


def _files_holding(root: pathlib.Path, needle: bytes) -> list[str]:
    return [name for name, data in _tree(root).items() if needle in data]


def _tmux_pids() -> list[int]:
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{entry.name}/exe").endswith("/tmux"):
                    pids.append(int(entry.name))
    return pids


def _fill(text: str, marker: pathlib.Path) -> str:
    return text.replace("{marker}", str(marker))


def _bystander(tmux_cli: TmuxCli) -> None:
    """A user's own session, started first: it must outlive everything."""
    out = tmux_cli("new-session", "-d", "-s", "bystander", "sleep", "600")
    assert out.returncode == 0, out.stderr


# --- every field a user controls, made hostile ---------------------------------------------


class Field(NamedTuple):
    test_id: str
    text: str
    #: agent and workspace labels take it (they refuse control characters)
    label_ok: bool = True


FIELDS = [
    Field("trailing-semicolon", "kill-server;"),
    Field("escaped-semicolon", "x\\;"),
    Field("shell-format", "#(touch {marker})"),
    Field("formats", "#{session_name}#{pane_id}##{"),
    Field("quotes", 'it\'s "q" `x`'),
    Field("command-substitution", "$(touch {marker}) ${HOME}"),
    Field("newline", "line1\nline2;", label_ok=False),
    Field("non-ascii", "é€漢字 🙂"),
    Field("leading-dash", "-t"),
    Field("braces-tilde", "~{ kill-server }"),
]


@pytest.mark.parametrize("case", FIELDS, ids=lambda c: c.test_id)
def test_hostile_fields_reach_the_agent_byte_for_byte(
    cli: Cli, tmux_cli: TmuxCli, tmp_path: pathlib.Path, case: Field
) -> None:
    """cwd, each argv element, an -e value, agent and workspace labels: exact; tmux runs
    nothing and the server (with a user's session) survives."""
    marker = tmp_path / "marker"
    text = _fill(case.text, marker)
    _bystander(tmux_cli)
    cwd = cli.root / text  # relative: may start with '-', may nest
    cwd.mkdir(parents=True)
    command = [*agent_command("--argv", "--cwd", "--show-env", "HOSTILE"), text, "x" + text]
    opts = [f"--cwd={os.path.relpath(cwd, cli.root)}", f"--env=HOSTILE={text}"]
    labels = [f"--agent={text}", f"--workspace={text}"]
    if not case.label_ok:
        refused = cli.run("start", *labels, *opts, "--", *command, code=2)
        assert "control character" in refused.stderr
        assert _records(cli.root) == {}
        labels = []
    sid = cli.start(*command, opts=(*labels, *opts))
    seen = _reports(cli, sid, "argv", "cwd", "show HOSTILE")
    assert seen["argv"] == command[2:]
    assert seen["cwd"] == str(cwd)
    assert seen["show HOSTILE"] == text
    record = cli.show(sid)
    assert record["command"][-2:] == [text, "x" + text]
    assert record["cwd"] == str(cwd)
    assert record["environment"] == {"HOSTILE": text}
    if case.label_ok:
        assert (record["agent_id"], record["workspace_id"]) == (text, text)
    assert not marker.exists()
    assert set(_sessions(tmux_cli)) == {"bystander", f"amux-{sid}"}


NAMES = ["x;", "a\\;", "#(touch {marker})", "#{session_name}", "it's", "$(x)", "a\nb", "é", "-t"]


def test_hostile_names_are_refused_before_anything_exists(
    cli: Cli, tmux_cli: TmuxCli, tmp_path: pathlib.Path
) -> None:
    """A name is never sent to tmux; a hostile one is a usage error, and nothing is made."""
    marker = tmp_path / "marker"
    _bystander(tmux_cli)
    for name in NAMES:
        out = cli.run("start", f"--name={_fill(name, marker)}", "--", "true", code=2)
        assert "invalid session name" in out.stderr, describe(out)
    assert _records(cli.root) == {}
    assert list(_sessions(tmux_cli)) == ["bystander"]
    assert not marker.exists()


# --- a hostile project root, socket or interpreter ---------------------------------------


def _exit_recorded_and_logged(root: pathlib.Path, sid: str) -> None:
    """The exit is recorded without tmux being asked (the pane-died hook; or, when tmux
    3.3a runs no hook, which it does for about one exit in ten, plain ``ls``'s check of
    the agent's pid) and the log pipe wrote the agent's output."""
    store = FileStore(root)
    manager = Manager(store, socket=FileStore(root).get(sid).tmux_socket or "")

    def recorded() -> bool:
        manager.listing(Query(include_ended=True))  # what plain `ls` does
        record = store.get(sid)
        return record.status is Status.FAILED and record.exit_code == 3

    wait_until(recorded, timeout=TIMEOUT, what="the pane-died hook to record exit 3")
    log = store.log_path(sid)
    wait_until(
        lambda: log.exists() and b"hello from the agent" in log.read_bytes(),
        timeout=TIMEOUT,
        what="the log",
    )
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


class Name(NamedTuple):
    test_id: str
    text: str


ROOTS = [
    Name("everything", "r;\\;#(touch {marker})#{session_name}'q\"$(touch {marker})é\n-x;"),
    Name("trailing-semicolon", "project;"),
    Name("newline", "a\nb"),
    Name("shell-format", "#(touch {marker})"),
    Name("leading-dash", "-t"),
]


@pytest.mark.parametrize("case", ROOTS, ids=lambda c: c.test_id)
def test_hostile_project_root(
    tmp_path: pathlib.Path, socket_name: str, tmux_cli: TmuxCli, case: Name
) -> None:
    """The root reaches tmux only as @amux_root: the hook and the log pipe still find
    the store, and nothing is run."""
    marker = tmp_path / "marker"
    root = tmp_path / "roots" / _fill(case.text, marker)
    root.mkdir(parents=True)
    _bystander(tmux_cli)
    cli = Cli(root, socket_name)
    sid = cli.start(*agent_command("--print", "hello from the agent", "--exit", "3"))
    _exit_recorded_and_logged(root, sid)
    shown = tmux_cli("show-options", "-v", "-t", f"=amux-{sid}:", "@amux_root").stdout
    assert shown == str(root) + "\n"
    assert not marker.exists()
    assert "bystander" in _sessions(tmux_cli)


def test_hostile_socket_name(cli: Cli, tmux_cli: TmuxCli) -> None:
    """A socket name with tmux and shell syntax in it is only ever a path."""
    name = "s '\"$(touch m1) #(touch m2)~;"
    hostile = Cli(cli.root, name)
    try:
        sid = hostile.start(*agent_command("--print", "hello from the agent", "--exit", "3"))
        _exit_recorded_and_logged(cli.root, sid)
        assert FileStore(cli.root).get(sid).tmux_socket == socket_path_for(name)
        server = int(hostile.tmux("display-message", "-p", "#{pid}").stdout)
        places = {cli.root, pathlib.Path(os.readlink(f"/proc/{server}/cwd"))}
        places.add(pathlib.Path(socket_path_for(name)).parent)
        assert [p / m for p in places for m in ("m1", "m2") if (p / m).exists()] == []
    finally:
        kill_server(socket_path_for(name))


@pytest.fixture
def hostile_python(tmp_path: pathlib.Path) -> str:
    """This venv's interpreter, reached through a directory with a hostile name."""
    cfg = pathlib.Path(sys.prefix) / "pyvenv.cfg"
    if not cfg.exists():
        pytest.skip("needs to run from a virtual environment")
    marker = tmp_path / "marker"
    venv = tmp_path / _fill(
        "py;\\;#(touch {marker})#{session_name}'q\"$(touch {marker}) é\n-x;", marker
    )
    (venv / "bin").mkdir(parents=True)
    shutil.copy(cfg, venv / "pyvenv.cfg")
    (venv / "bin" / "python").symlink_to(os.path.realpath(sys.executable))
    (venv / "lib").symlink_to(pathlib.Path(sys.prefix) / "lib")
    return str(venv / "bin" / "python")


def test_hostile_interpreter_path(
    cli: Cli, tmux_cli: TmuxCli, tmp_path: pathlib.Path, hostile_python: str
) -> None:
    """The CLI run by an interpreter whose path holds ; # $ quotes and a newline: the
    pane command, the hook and the log pipe all still run, and nothing else does."""
    _bystander(tmux_cli)
    argv = [
        hostile_python, "-m", "amux_tmux", "--root", str(cli.root), "--socket", cli.socket,
        "start", "--", *agent_command("--print", "hello from the agent", "--exit", "3"),
    ]  # fmt: skip
    out = subprocess.run(
        argv, capture_output=True, text=True, timeout=30, cwd=cli.root, check=False
    )
    assert out.returncode == 0, describe(out)
    sid = out.stdout.strip()
    _exit_recorded_and_logged(cli.root, sid)
    start_command = tmux_cli(
        "display-message", "-p", "-t", f"=amux-{sid}:", "#{pane_start_command}"
    )
    assert "amux_tmux.launch" in start_command.stdout
    assert not (tmp_path / "marker").exists()
    assert "bystander" in _sessions(tmux_cli)


# --- ownership ----------------------------------------------------------------------------


def test_two_stores_on_one_socket_leave_each_other_alone(
    tmp_path: pathlib.Path, socket_name: str, tmux_cli: TmuxCli
) -> None:
    """Reconcile (mark, then --remove) in A changes nothing of B's, and the other way
    round; a legacy untagged session and a user's own survive everything; reconcile in
    a directory without .amux/ creates and touches nothing."""
    a = Cli(tmp_path / "a", socket_name)
    b = Cli(tmp_path / "b", socket_name)
    for project in (a, b):
        project.root.mkdir()
    a_live = a.start(*agent_command())
    b_live = b.start(*agent_command())
    for project, sid in ((a, a_live), (b, b_live)):  # the logs are written, then left alone
        wait_until(project.logs_contain(sid, "agent ready"), timeout=TIMEOUT)
    a_store, b_store = a.store.store_id, b.store.store_id
    assert a_store and b_store and a_store != b_store
    sock = a.socket_path
    # A: a record whose session is gone, whose name B's ownerless session carries.
    make_record(a.store, "aaa0gone01", sock)
    owned_session(tmux_cli, "aaa0gone01", b_store)
    owned_session(tmux_cli, "aaa0nobody", a_store)  # A's, without a record
    make_record(b.store, "bbb0gone01", sock)
    owned_session(tmux_cli, "bbb0nobody", b_store)
    owned_session(tmux_cli, "leg0acy001", None)  # started before store tags existed
    tmux_cli("new-session", "-d", "-s", "work", "sleep", "600")

    def world() -> tuple[dict[str, tuple[str, ...]], dict[str, bytes], dict[str, bytes]]:
        return _sessions(tmux_cli), _tree(a.root), _tree(b.root)

    def theirs(sessions: dict[str, tuple[str, ...]], store: str) -> dict[str, tuple[str, ...]]:
        return {k: v for k, v in sessions.items() if v[2] != store}

    # A, mark then remove.
    sessions, _, b_tree = world()
    a.run("reconcile", "--grace", "0")
    after, _, b_after = world()
    assert b_after == b_tree
    assert theirs(after, a_store) == theirs(sessions, a_store)
    assert after["amux-aaa0nobody"][3] == "1"  # A did act on its own
    assert a.store.get("aaa0gone01").status is Status.ORPHANED
    a.run("reconcile", "--remove", "--grace", "0")
    after, _, b_after = world()
    assert b_after == b_tree
    assert theirs(after, a_store) == theirs(sessions, a_store)
    assert "amux-aaa0nobody" not in after
    assert not a.store.exists("aaa0gone01")
    assert f"amux-{a_live}" in after

    # B, mark then remove.
    sessions, a_tree, _ = world()
    b.run("reconcile", "--grace", "0")
    after, a_after, _ = world()
    assert a_after == a_tree
    assert theirs(after, b_store) == theirs(sessions, b_store)
    assert after["amux-bbb0nobody"][3] == after["amux-aaa0gone01"][3] == "1"
    b.run("reconcile", "--remove", "--grace", "0")
    after, a_after, _ = world()
    assert a_after == a_tree
    assert theirs(after, b_store) == theirs(sessions, b_store)
    assert set(after) == {"amux-leg0acy001", "work", f"amux-{a_live}", f"amux-{b_live}"}
    assert after["amux-leg0acy001"] == sessions["amux-leg0acy001"]
    assert after["work"] == sessions["work"]

    # A directory without .amux/: nothing created, nothing touched.
    elsewhere = Cli(tmp_path / "c", socket_name)
    elsewhere.root.mkdir()
    for args in (("reconcile",), ("reconcile", "--remove", "--grace", "0"), ("ls", "--all")):
        elsewhere.run(*args)
    assert list(elsewhere.root.iterdir()) == []
    assert world()[0] == after


def test_foreign_tags_break_nothing_end_to_end(cli: Cli, tmux_cli: TmuxCli) -> None:
    """A session of someone else's with newlines in @amux_* tags: ls --live, reconcile and
    stop keep working, and the session is left alone."""
    sid = cli.start(*agent_command())
    _bystander(tmux_cli)
    for option in ("@amux_id", "@amux_store", "@amux_orphan"):
        tmux_cli("set-option", "-t", "=bystander:", option, f"{sid}\n\x1f")
    assert [row["id"] for row in cli.json("ls", "--live")] == [sid]
    cli.run("reconcile", "--remove", "--grace", "0")
    cli.run("stop", sid)
    assert "bystander" in _sessions(tmux_cli)


# --- nothing lingers after a start that did not finish ---------------------------------------


def _group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` still runs (zombies do not count: PID 1
    here does not reap the tmux clients our killed CLIs leave behind)."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != b"Z":
            return True
    return False


@pytest.fixture
def spawned() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _slow_tmux(directory: pathlib.Path) -> str:
    """A tmux that creates the session, then answers long after any timeout."""
    real = shutil.which("tmux")
    assert real
    directory.mkdir()
    path = directory / "tmux"
    path.write_text(
        "#!/bin/sh\n"
        f'case " $* " in *" -s amux-"*) "{real}" "$@"; exec sleep 30;; esac\n'
        f'exec "{real}" "$@"\n'
    )
    path.chmod(0o755)
    return str(path)


def test_nothing_lingers_after_killed_slow_or_failed_starts(
    cli: Cli,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    spawned: list[subprocess.Popen[bytes]],
) -> None:
    """50 kill -9 of the CLI during start, a tmux slower than the timeout, a full disk on
    the ``running`` write: after one ``reconcile --remove --grace 0`` every live session
    of the store has a running record, and no record is still starting."""
    first = cli.start(*agent_command())  # creates the store; must stay running
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    argv = cli.argv("start", "--", *agent_command())
    for _ in range(10):
        batch = []
        for _ in range(5):
            proc = subprocess.Popen(
                argv,
                cwd=cli.root,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            spawned.append(proc)
            batch.append((proc, rng.uniform(0.0, 0.3)))
        for proc, delay in batch:
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=10)
        for proc, _ in batch:
            wait_until(lambda p=proc: not _group_alive(p.pid), timeout=TIMEOUT, what="tmux client")

    store = FileStore(cli.root)
    slow = Manager(
        store, socket=cli.socket, tmux_bin=_slow_tmux(tmp_path / "bin"), tmux_timeout=1.0
    )
    spec = StartSpec(command=agent_command(), caller_environment=dict(os.environ))
    with pytest.raises(exc.TmuxTimeout):
        slow.start(spec)

    real_write = atomic.write_durable

    def full_disk(path: pathlib.Path, data: bytes, *args: Any, **kwargs: Any) -> os.stat_result:
        if b"status: running" in data:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(path, data, *args, **kwargs)

    monkeypatch.setattr(atomic, "write_durable", full_disk)
    with pytest.raises(exc.AmuxError):
        Manager(FileStore(cli.root), socket=cli.socket).start(spec)
    monkeypatch.undo()

    def lingering() -> tuple[list[str], list[str]]:
        records = {s.id: s for s in FileStore(cli.root).list(None).sessions}
        store_id = FileStore(cli.root).store_id
        bad_sessions = [
            name
            for name, (_, owner, tag_store, _) in _sessions(cli.tmux).items()
            if tag_store == store_id
            and (owner not in records or records[owner].status is not Status.RUNNING)
        ]
        unstarted = [
            s.id for s in records.values() if s.status in (Status.CREATED, Status.STARTING)
        ]
        return bad_sessions, unstarted

    bad_sessions, _ = lingering()
    assert len(bad_sessions) >= 2, f"the slow and full-disk starts left sessions (seed {seed})"
    cleanup = cli.run("reconcile", "--remove", "--grace", "0")
    assert lingering() == ([], []), f"seed {seed}: {describe(cleanup)}"
    assert FileStore(cli.root).get(first).status is Status.RUNNING
    assert f"amux-{first}" in _sessions(cli.tmux)


# --- an unreachable server is not an empty one -------------------------------------------------


@contextlib.contextmanager
def _socket_file_removed(cli: Cli) -> Iterator[int]:
    """Remove the socket file of the live server on ``cli``'s socket; yield its pid.

    Afterwards any second server on the path is killed and the first recreates its
    socket (SIGUSR1), or is killed itself if it cannot: no server outlives the test.
    """
    server_pid = int(cli.tmux("display-message", "-p", "#{pid}").stdout)
    os.unlink(cli.socket_path)
    try:
        yield server_pid
    finally:
        if cli.tmux("display-message", "-p", "#{pid}").stdout.strip() not in ("", str(server_pid)):
            kill_server(cli.socket_path)  # a second server some command made
        os.kill(server_pid, signal.SIGUSR1)  # tmux recreates its socket
        try:
            wait_until(lambda: os.path.exists(cli.socket_path), timeout=TIMEOUT, what="socket")
        except BaseException:
            os.kill(server_pid, signal.SIGKILL)
            raise


def test_removed_socket_file_changes_no_record(cli: Cli) -> None:
    """The socket file is gone but the server and its agent run: reconcile (either mode)
    exits 5, says why, and leaves every record as it was."""
    sid = cli.start(*agent_command())
    before = _records(cli.root)
    with _socket_file_removed(cli) as server_pid:
        for args in (("--remove", "--grace", "0"), ("--grace", "0")):
            out = cli.run("reconcile", *args, code=5)
            assert "socket file may have been removed" in out.stderr, describe(out)
            assert f"kill -USR1 {server_pid}" in out.stderr, describe(out)
            assert _records(cli.root) == before
        stopped = cli.run("stop", sid, code=5)
        assert "socket" in stopped.stderr
        assert _records(cli.root) == before
    assert cli.show(sid)["status"] == "running"


# --- secrets ---------------------------------------------------------------------------


def test_secret_canaries_reach_only_the_agent(cli: Cli, tmux_cli: TmuxCli) -> None:
    """Detected and undetected names, a --secret, and a key in the agent's argv: absent
    from tmux (argv, environ, show-environment, pane_start_command), .amux/ and every
    output; the agent gets each value exactly."""
    token = uuid.uuid4().hex
    detected = f"sk-ant-api03-{token}"  # ANTHROPIC_API_KEY, copied with -e NAME
    inherited = f"sk-proj-{token}{token}"  # OPENAI_API_KEY, only in the caller's shell
    by_value = f"hf_{token}{token}"  # an undetected name, a token-shaped value
    forced = f"plain-{token}"  # --secret: masked though it looks like nothing
    in_argv = f"sk-ant-argv-{token}"
    public = f"public-{token}"  # an undetected name with an ordinary value
    env = {
        **os.environ,
        "ANTHROPIC_API_KEY": detected,
        "OPENAI_API_KEY": inherited,
    }
    names = ["ANTHROPIC_API_KEY", "OPENAI_API_KEY", "MODEL_SETTING", "DB_THING", "PLAIN"]
    command = [*agent_command(*(f"--env={n}" for n in names)), "--api-key", in_argv]
    out = cli.run(
        "start", "--json", "-e", "ANTHROPIC_API_KEY", "-e", f"MODEL_SETTING={by_value}",
        "--secret", f"DB_THING={forced}", "-e", f"PLAIN={public}", "--", *command, env=env,
    )  # fmt: skip
    record = json.loads(out.stdout)
    sid = record["id"]
    assert record["environment"] == {
        "ANTHROPIC_API_KEY": "***",
        "MODEL_SETTING": "***",
        "DB_THING": "***",
        "PLAIN": public,
    }
    assert record["command"][-2:] == ["--api-key", "***"]
    lengths = {
        "ANTHROPIC_API_KEY": len(detected),
        "OPENAI_API_KEY": len(inherited),
        "MODEL_SETTING": len(by_value),
        "DB_THING": len(forced),
        "PLAIN": len(public),
    }
    for name, length in lengths.items():
        wait_until(
            cli.logs_contain(sid, f"env {name} present=True len={length}"),
            timeout=TIMEOUT,
            what=f"the agent to report {name}",
        )
    pid = cli.show(sid)["pid"]
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[-3:-1] == [b"--api-key", in_argv.encode()]
    with open(f"/proc/{pid}/environ", "rb") as f:
        agent_env = f.read().split(b"\0")
    for name, value in (("ANTHROPIC_API_KEY", detected), ("DB_THING", forced)):
        assert f"{name}={value}".encode() in agent_env

    for args in (
        ("ls",), ("ls", "--json"), ("ls", "--all", "--live", "--json"), ("show", sid),
        ("show", sid, "--json"), ("logs", sid), ("logs", sid, "-n", "3"), ("logs", sid, "--raw"),
    ):  # fmt: skip
        cli.run(*args)
    pane = cli.show(sid)["pane_id"]
    tmux_views = [
        tmux_cli("show-environment", "-g").stdout,
        tmux_cli("show-environment", "-t", f"=amux-{sid}").stdout,
        tmux_cli("display-message", "-p", "-t", pane, "#{pane_start_command}").stdout,
    ]
    assert "amux_tmux.launch" in tmux_views[2]  # the oracle sees the pane command
    tmux_pids = _tmux_pids()
    assert tmux_pids
    secrets = [detected, inherited, by_value, forced, in_argv]
    for canary in [*secrets, public]:
        needle = canary.encode()
        for view in tmux_views:
            assert canary not in view
        for tmux_pid in tmux_pids:
            for kind in ("cmdline", "environ"):
                with contextlib.suppress(OSError), open(f"/proc/{tmux_pid}/{kind}", "rb") as f:
                    assert needle not in f.read(), (tmux_pid, kind)
        assert procs_holding(needle, "cmdline", skip={pid}) == []
        assert procs_holding(needle, "environ", skip={pid}) == []
    cli.run("stop", sid)
    cli.run("show", sid, "--json")
    for canary in secrets:
        assert _files_holding(cli.root, canary.encode()) == []
        for run in cli.runs:
            assert canary not in run.stdout + run.stderr, run.args


# --- the agent's environment is the caller's ----------------------------------------------------


def test_each_start_gets_its_own_caller_s_environment(cli: Cli) -> None:
    """The server is started by the first start, yet each agent sees the FOO of the shell
    that started it; TMUX* of the caller are replaced by the pane's own."""
    shown = ["FOO", "TMUX", "TMUX_PANE", "AMUX_SESSION_ID", "AMUX_ROOT", "BYTES", "TMUX_TMPDIR"]
    shown += ["TMUXINATOR_CONFIG"]
    command = agent_command(*(f"--show-env={n}" for n in shown))
    not_utf8 = os.fsdecode(b"\xff\xfe")
    first = cli.start(*command, env={**os.environ, "FOO": "first", "BYTES": not_utf8})
    second = cli.start(
        *command,
        env={**os.environ, "FOO": "second; #(x)", "TMUX": "/elsewhere,1,0", "TMUX_PANE": "%99"},
        opts=("-e", "TMUXINATOR_CONFIG=asked for"),
    )
    for sid, foo in ((first, "first"), (second, "second; #(x)")):
        seen = _reports(cli, sid, *(f"show {n}" for n in shown))
        assert seen["show FOO"] == foo
        assert seen["show BYTES"] == (not_utf8 if sid == first else None)
        assert seen["show TMUX_TMPDIR"] is None  # the caller's TMUX* are tmux's business
        assert seen["show TMUXINATOR_CONFIG"] == (None if sid == first else "asked for")
        assert seen["show TMUX"].startswith(cli.socket_path + ",")
        assert seen["show TMUX_PANE"] == cli.show(sid)["pane_id"]
        assert seen["show AMUX_SESSION_ID"] == sid
        assert seen["show AMUX_ROOT"] == str(cli.root)


# --- stop signals what tmux vouches for ---------------------------------------------------------


def test_stop_signals_only_the_pane_s_process(cli: Cli) -> None:
    """A record whose pid was edited to another live process of ours: stop kills the
    session's agent, and the other process survives."""
    sid = cli.start(*agent_command())
    agent_pid = cli.show(sid)["pid"]
    decoy = subprocess.Popen(["sleep", "600"])
    try:
        created = psutil.Process(decoy.pid).create_time()
        cli.store.update(sid, lambda s: s.evolve(pid=decoy.pid, pid_create_time=created))
        cli.run("stop", sid)
        assert decoy.poll() is None, "stop signalled the pid written in the record"
        assert gone_within(agent_pid, TIMEOUT)
        assert f"amux-{sid}" not in _sessions(cli.tmux)
    finally:
        decoy.kill()
        decoy.wait(timeout=10)


# --- what start leaves on disk ------------------------------------------------------------------


def test_start_leaves_no_fifo_and_private_files(cli: Cli) -> None:
    """After start the run directory is empty; directories 0700, files 0600."""
    sid = cli.start(*agent_command("--print", "hello from the agent"))
    wait_until(cli.logs_contain(sid, "hello from the agent"), timeout=TIMEOUT)
    amux = cli.root / ".amux"
    assert list((amux / "run").iterdir()) == []
    for path in [amux, *amux.rglob("*")]:
        mode = path.lstat().st_mode
        if stat.S_ISDIR(mode):
            assert stat.S_IMODE(mode) == 0o700, path
        elif stat.S_ISREG(mode) and path.name != ".gitignore":
            assert stat.S_IMODE(mode) == 0o600, path


def test_an_exit_is_recorded_when_the_running_write_is_slow(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent dies at once while start is still writing ``running`` (a slow disk):
    start fails, saying so, and the exit is recorded (by the pane-died hook, or by start
    itself when the hook gave up waiting for the lock), so ``ls`` without tmux tells the
    truth."""
    real_write = atomic.write_durable

    def slow_disk(path: pathlib.Path, data: bytes, *args: Any, **kwargs: Any) -> os.stat_result:
        if b"status: running" in data:
            time.sleep(3.0)  # the fault injected: a disk that takes 3 s to write
        return real_write(path, data, *args, **kwargs)

    monkeypatch.setattr(atomic, "write_durable", slow_disk)
    manager = Manager(FileStore(cli.root), socket=cli.socket)
    spec = StartSpec(
        command=agent_command("--exit", "3", "--linger", "0"), caller_environment=dict(os.environ)
    )
    with pytest.raises(exc.SessionStartFailed, match="status 3, at once") as err:
        manager.start(spec)
    monkeypatch.undo()
    sid = err.value.session_id
    wait_until(
        lambda: [(r["id"], r["status"]) for r in cli.json("ls", "--all")] == [(sid, "failed")],
        timeout=TIMEOUT,
        what="the hook to record the exit",
    )
    assert [row["status"] for row in cli.json("ls", "--all")] == ["failed"]


def test_reconcile_of_many_actions_uses_few_tmux_processes(cli: Cli, tmux_cli: TmuxCli) -> None:
    """40 sessions without records and 40 records without sessions: each mode acts on
    all of them with at most 6 tmux processes (control-mode batches)."""
    live = cli.start(*agent_command())
    store_id = cli.store.store_id
    for i in range(40):
        owned_session(tmux_cli, f"nob0dy{i:04d}", store_id)
        make_record(cli.store, f"g0ne{i:04d}", cli.socket_path)
    for args, kinds in (
        (("--grace", "0"), {"tag-session", "mark-orphaned"}),
        (("--remove", "--grace", "0"), {"kill-session", "remove-record"}),
    ):
        report = cli.json("reconcile", *args)
        assert report["tmux_calls"] <= 6, report["tmux_calls"]
        done = [a for a in report["actions"] if a["result"] == "done"]
        assert len(done) == 80, report["actions"][:3]
        assert {a["action"] for a in done} == kinds
    assert set(_sessions(tmux_cli)) == {f"amux-{live}"}
    assert [r["id"] for r in cli.json("ls", "--all")] == [live]


def test_a_working_directory_that_is_not_utf8_is_a_usage_error(
    cli: Cli, tmux_cli: TmuxCli
) -> None:
    """The record cannot hold a path that is not UTF-8: start must say so (exit 2, one
    line) before it creates anything, not fail inside the store with an internal error."""
    where = cli.root / os.fsdecode(b"dir-\xff")
    where.mkdir()
    _bystander(tmux_cli)
    out = subprocess.run(
        cli.argv("start", "--", *agent_command()),
        capture_output=True,
        text=True,
        timeout=30,
        cwd=where,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert out.returncode == 2, describe(out)
    assert len(out.stderr.splitlines()) == 1, describe(out)
    assert "UTF-8" in out.stderr, describe(out)
    assert _records(cli.root) == {}
    assert list(_sessions(tmux_cli)) == ["bystander"]


def test_a_copied_project_does_not_own_the_original_s_sessions(
    tmp_path: pathlib.Path, socket_name: str, tmux_cli: TmuxCli
) -> None:
    """``cp -a project copy`` duplicates .amux/store-id: a session the copy starts must
    still not be killed by reconcile in the original (nor the other way round)."""
    original = Cli(tmp_path / "original", socket_name)
    original.root.mkdir()
    first = original.start(*agent_command())
    shutil.copytree(original.root, tmp_path / "copy", symlinks=True)
    copy = Cli(tmp_path / "copy", socket_name)
    theirs = copy.start(*agent_command())
    original.run("reconcile", "--remove", "--grace", "0")
    assert {f"amux-{first}", f"amux-{theirs}"} <= set(_sessions(tmux_cli))
    copy.run("reconcile", "--remove", "--grace", "0")
    assert {f"amux-{first}", f"amux-{theirs}"} <= set(_sessions(tmux_cli))


def test_start_does_not_hide_a_server_whose_socket_file_was_removed(cli: Cli) -> None:
    """The socket file is gone but its server and agent run: a start must not put a
    second server on that path (which hides the first for good); it says why (exit 5)."""
    sid = cli.start(*agent_command())
    with _socket_file_removed(cli) as server_pid:
        out = cli.run("start", "--", *agent_command(), code=None)
        new_server = cli.tmux("display-message", "-p", "#{pid}")
        assert new_server.returncode != 0, f"a second server (pid {new_server.stdout.strip()})"
        assert out.returncode == 5, describe(out)
        assert "socket" in out.stderr, describe(out)
    assert cli.tmux("display-message", "-p", "#{pid}").stdout.strip() == str(server_pid)
    assert cli.show(sid)["status"] == "running"
