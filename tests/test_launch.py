"""The pane's launcher and its hand-off: a launch spec over one FIFO, exec's outcome over
another (launch.Handoff on the start side, ``python -m amux_tmux.launch`` on the pane's)."""

from __future__ import annotations

import errno
import json
import os
import pathlib
import stat
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from typing import NamedTuple

import pytest

from amux_tmux import launch
from tests.helpers import wait_until

#: Prints one JSON line: its pid, argv, cwd, environment and open file descriptors.
PROBE = (
    "import json, os, sys; print(json.dumps({'pid': os.getpid(), 'argv': sys.argv[1:], "
    "'cwd': os.getcwd(), 'env': dict(os.environ), "
    "'fds': sorted(os.readlink(f'/proc/self/fd/{fd}') for fd in os.listdir('/proc/self/fd') "
    "if os.path.exists(f'/proc/self/fd/{fd}'))}), flush=True); "
    "sys.exit(int(os.environ.get('EXIT_WITH', '0')))"
)
PANE_ENV = {"TMUX": "/tmp/sock,123,4", "TMUX_PANE": "%7", "TERM": "tmux-256color"}


@pytest.fixture
def run_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "run"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
def launchers() -> Iterator[list[subprocess.Popen[str]]]:
    """Launcher processes a test starts; killed afterwards, pass or fail."""
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def _launcher(
    procs: list[subprocess.Popen[str]],
    spec_path: pathlib.Path | str,
    env: Mapping[str, str] | None = None,
    *,
    wait_seconds: int | None = None,
) -> subprocess.Popen[str]:
    """Run the launcher as tmux does (:func:`launch.pane_command`: no ``site``)."""
    argv = launch.pane_command(str(spec_path))
    if wait_seconds is not None:
        code = (
            "import sys; from amux_tmux import launch; "
            f"launch.FIFO_WAIT_SECONDS = {wait_seconds}; sys.exit(launch.main(sys.argv[1:]))"
        )
        argv = [sys.executable, "-I", "-c", code, str(spec_path)]
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={"PATH": os.environ["PATH"], **(env if env is not None else PANE_ENV)},
    )
    procs.append(proc)
    return proc


def _probe(*args: str) -> list[str]:
    return [sys.executable, "-c", PROBE, *args]


# --- the environment the agent sees ----------------------------------------------------


class EnvCase(NamedTuple):
    test_id: str
    spec: dict[str, str]
    pane: dict[str, str]
    expected: dict[str, str]


ENV_CASES = [
    EnvCase(
        "pane-wins-for-tmux-variables",
        {"A": "1", "TMUX": "/old,1,0", "TMUX_PANE": "%1", "TERM": "xterm"},
        {"TMUX": "/new,2,0", "TMUX_PANE": "%9", "TERM": "screen", "OTHER": "pane-only"},
        {"A": "1", "TMUX": "/new,2,0", "TMUX_PANE": "%9", "TERM": "screen"},
    ),
    EnvCase(
        # start left out the caller's TMUX*; what remains was asked for with -e
        "other-tmux-names-in-the-spec-kept",
        {"TMUX_TMPDIR": "/t", "TMUXINATOR_CONFIG": "x", "B": "2"},
        {"TMUX": "/s,1,0"},
        {"TMUX_TMPDIR": "/t", "TMUXINATOR_CONFIG": "x", "B": "2", "TMUX": "/s,1,0"},
    ),
    EnvCase(
        "no-stale-server-when-the-pane-names-none",
        {"TMUX": "/old,1,0", "TMUX_PANE": "%1", "C": "3"},
        {},
        {"C": "3"},
    ),
    EnvCase(
        "term-program-from-the-pane",
        {"TERM_PROGRAM": "iTerm.app"},
        {"TERM_PROGRAM": "tmux", "TERM_PROGRAM_VERSION": "3.3a"},
        {"TERM_PROGRAM": "tmux", "TERM_PROGRAM_VERSION": "3.3a"},
    ),
    EnvCase(
        "caller-term-kept-when-the-pane-has-none",
        {"TERM": "xterm-256color", "EMPTY": ""},
        {},
        {"TERM": "xterm-256color", "EMPTY": ""},
    ),
]


@pytest.mark.parametrize("case", ENV_CASES, ids=lambda c: c.test_id)
def test_agent_environment(case: EnvCase) -> None:
    """The spec's environment, with what tmux set for the pane in place of the spec's."""
    assert launch.agent_environment(case.spec, case.pane) == case.expected


# --- the protocol, end to end ------------------------------------------------------------


def test_exec_success_hands_over_argv_cwd_and_environment(
    run_dir: pathlib.Path, tmp_path: pathlib.Path, launchers: list[subprocess.Popen[str]]
) -> None:
    """send() returns once the agent runs; the agent is the launcher's own process, with
    exactly the spec's argv, cwd and environment (plus the pane's TMUX/TMUX_PANE/TERM)."""
    cwd = tmp_path / "dir ;#(x) $(y) é\nz"
    cwd.mkdir()
    args = ["x;", "a\\;", "#{session_name}", "$(touch y)", "-t", "é\n€", ""]
    spec_env = {
        "LANG": "C.UTF-8",  # else the probe's Python coerces its locale, adding LC_CTYPE
        "KEEP": "kept",
        "SECRET": "sk-ant-" + "s" * 40,
        "TMUX": "/stale,1,0",
        "TMUX_OLD": "x",
        "NEWLINE": "a\nb",
    }
    with launch.Handoff(run_dir, "abc-1") as handoff:
        for path in (handoff.spec_path, handoff.status_path):
            mode = path.stat().st_mode
            assert stat.S_ISFIFO(mode)
            assert stat.S_IMODE(mode) == 0o600
        proc = _launcher(launchers, handoff.spec_path, {**PANE_ENV, "LAUNCHER_ONLY": "1"})
        handoff.send(_probe(*args), sys.executable, str(cwd), spec_env, timeout=15)
        assert not handoff.spec_path.exists()  # the launcher removed it on reading
    assert not handoff.status_path.exists()
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    seen = json.loads(out)
    assert seen["pid"] == proc.pid  # exec'd: the agent IS the pane's process
    assert seen["argv"] == args
    assert seen["cwd"] == str(cwd)
    expected = {k: v for k, v in spec_env.items() if k not in ("TMUX", "TMUX_PANE")}
    expected.update(PANE_ENV)
    expected["PWD"] = str(cwd)  # as a shell sets it for a program it starts there
    assert seen["env"] == expected
    # Neither FIFO stays open in the agent.
    assert not [fd for fd in seen["fds"] if str(run_dir) in fd], seen["fds"]


def test_the_agent_s_exit_status_is_the_pane_s(
    run_dir: pathlib.Path, tmp_path: pathlib.Path, launchers: list[subprocess.Popen[str]]
) -> None:
    with launch.Handoff(run_dir, "exit") as handoff:
        proc = _launcher(launchers, handoff.spec_path)
        handoff.send(_probe(), sys.executable, str(tmp_path), {"EXIT_WITH": "7"}, timeout=15)
    proc.communicate(timeout=15)
    assert proc.returncode == 7


class Failure(NamedTuple):
    test_id: str
    exe: str
    cwd: str
    code: int
    message: str


@pytest.fixture
def not_executable(tmp_path: pathlib.Path) -> str:
    script = tmp_path / "agent.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    return str(script)


FAILURES = [
    Failure("command-not-found", "/nonexistent/agent", "{tmp}", 127, "command not found"),
    Failure("cwd-missing", sys.executable, "{tmp}/gone", 126, "cannot enter"),
    Failure("not-executable", "{script}", "{tmp}", 126, "cannot run"),
]


@pytest.mark.parametrize("case", FAILURES, ids=lambda c: c.test_id)
def test_exec_failure_comes_back_with_its_code(
    run_dir: pathlib.Path,
    tmp_path: pathlib.Path,
    not_executable: str,
    launchers: list[subprocess.Popen[str]],
    case: Failure,
) -> None:
    """The launcher reports why the agent could not start; the pane exits with the code
    a shell would use; no secret from the spec appears in the report."""
    secret = "sk-ant-" + "q" * 40
    exe = case.exe.replace("{script}", not_executable)
    cwd = case.cwd.replace("{tmp}", str(tmp_path))
    with launch.Handoff(run_dir, "fail") as handoff:
        proc = _launcher(launchers, handoff.spec_path)
        t0 = time.monotonic()
        with pytest.raises(launch.LaunchFailed) as err:
            handoff.send([exe, "--flag"], exe, cwd, {"KEY": secret}, timeout=15)
        assert time.monotonic() - t0 < 10
    assert err.value.code == case.code
    assert case.message in str(err.value)
    _, stderr = proc.communicate(timeout=15)
    assert proc.returncode == case.code
    assert case.message in stderr
    assert secret not in stderr + str(err.value)
    assert list(run_dir.iterdir()) == []


def test_no_launcher_times_out_and_leaves_nothing(run_dir: pathlib.Path) -> None:
    """Nobody opens the spec FIFO: send gives up at its timeout, not later."""
    handoff = launch.Handoff(run_dir, "lonely")
    try:
        t0 = time.monotonic()
        with pytest.raises(launch.LaunchFailed, match="did not start in time") as err:
            handoff.send(["true"], "/bin/true", "/", {}, timeout=0.5)
        assert 0.5 <= time.monotonic() - t0 < 5
        assert err.value.code == 1
    finally:
        handoff.close()
    handoff.close()  # idempotent
    assert list(run_dir.iterdir()) == []


def test_a_launcher_that_stops_reading_does_not_hang_start(run_dir: pathlib.Path) -> None:
    """A spec past the pipe's buffer, a reader that never reads: send gives up in time."""
    with launch.Handoff(run_dir, "stalled") as handoff:
        reader = os.open(handoff.spec_path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            t0 = time.monotonic()
            with pytest.raises(launch.LaunchFailed, match="stopped reading"):
                handoff.send(["x"], "/bin/true", "/", {"BIG": "x" * 300_000}, timeout=0.5)
            assert time.monotonic() - t0 < 5
        finally:
            os.close(reader)


def test_the_launcher_gives_up_without_a_writer(
    tmp_path: pathlib.Path, launchers: list[subprocess.Popen[str]]
) -> None:
    """A start that died before writing the spec: the launcher exits 125, not hangs."""
    fifo = tmp_path / "spec.fifo"
    os.mkfifo(fifo, 0o600)
    proc = _launcher(launchers, fifo, wait_seconds=1)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == launch.EXIT_BAD_SPEC == 125
    assert "could not read the launch spec" in err


def test_the_launcher_gives_up_on_a_writer_that_never_finishes(
    tmp_path: pathlib.Path, launchers: list[subprocess.Popen[str]]
) -> None:
    """A writer that opened the FIFO, wrote half a spec and hangs: 125 at the bound;
    the half spec is not run."""
    marker = tmp_path / "ran"
    fifo = tmp_path / "spec.fifo"
    os.mkfifo(fifo, 0o600)
    proc = _launcher(launchers, fifo, wait_seconds=1)
    fd = wait_until(lambda: _open_writer(fifo), timeout=15, what="the launcher")
    try:
        os.write(fd, _spec().replace(b"{marker}", str(marker).encode())[:-1])
        _, err = proc.communicate(timeout=15)
    finally:
        os.close(fd)
    assert proc.returncode == 125
    assert "in time" in err
    assert not marker.exists()


def _open_writer(path: pathlib.Path) -> int | None:
    try:
        return os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as err:
        if err.errno != errno.ENXIO:
            raise
        return None


def _write_raw(path: pathlib.Path, payload: bytes) -> None:
    """Write to the FIFO once a reader has opened it."""
    fd = wait_until(lambda: _open_writer(path), timeout=15, what="the launcher to open the FIFO")
    try:
        os.set_blocking(fd, True)
        os.write(fd, payload)
    finally:
        os.close(fd)


class BadSpec(NamedTuple):
    test_id: str
    payload: bytes


def _spec(**changes: object) -> bytes:
    spec: dict[str, object] = {
        "argv": ["touch", "{marker}"],
        "exe": "/usr/bin/touch",
        "cwd": "/",
        "env": {},
        "status": None,
    }
    spec.update(changes)
    return launch.encode_spec(**spec)  # type: ignore[arg-type]


GOOD = _spec()
BAD_SPECS = [
    BadSpec("not-a-spec", b"{not a spec}"),
    BadSpec("empty", b""),
    BadSpec("cut-short", GOOD[:-1]),
    BadSpec("cut-inside-argv", GOOD[: GOOD.index(b"\x00touch\x00") + 7]),
    BadSpec("older-version", GOOD.replace(b"amux-launch-2", b"amux-launch-1")),
    BadSpec(
        "json-of-version-1", b'{"v": 1, "argv": ["touch", "{marker}"], "exe": "/usr/bin/touch"}'
    ),
    BadSpec("argv-empty", GOOD.replace(b"\x002\x00", b"\x000\x00")),
    BadSpec("argv-count-past-the-end", GOOD.replace(b"\x002\x00", b"\x009\x00")),
    BadSpec("argv-count-not-a-number", GOOD.replace(b"\x002\x00", b"\x00-2\x00")),
    BadSpec("argv-count-not-ascii", GOOD.replace(b"\x002\x00", "\x00\u0662\x00".encode())),
    BadSpec("env-without-equals", GOOD + b"NOEQUALS\0"),
    BadSpec("env-empty-name", GOOD + b"=value\0"),
    BadSpec("exe-empty", GOOD.replace(b"/usr/bin/touch", b"")),
    BadSpec("cwd-empty", GOOD.replace(b"\x00/\x00", b"\x00\x00", 1)),
]


def test_a_spec_carries_any_word_execve_can() -> None:
    """Every byte but NUL, undecodable bytes included, comes back as it went."""
    odd = "\udcff;\n#{x} $(y) é=€"
    env = {"K": odd, "EMPTY": "", "EQ": "a=b=c"}
    spec = launch.decode_spec(launch.encode_spec(["a", odd, ""], "/bin/a", "/d " + odd, env, None))
    assert (spec.argv, spec.exe, spec.cwd, spec.env, spec.status) == (
        ["a", odd, ""], "/bin/a", "/d " + odd, env, None,
    )  # fmt: skip


class Unsendable(NamedTuple):
    test_id: str
    argv: list[str]
    env: dict[str, str]


UNSENDABLE = [
    Unsendable("nul-in-argv", ["a", "b\0c"], {}),
    Unsendable("nul-in-value", ["a"], {"K": "v\0"}),
    Unsendable("equals-in-name", ["a"], {"K=J": "v"}),
    Unsendable("empty-name", ["a"], {"": "v"}),
]


@pytest.mark.parametrize("case", UNSENDABLE, ids=lambda c: c.test_id)
def test_what_execve_could_not_take_is_refused(case: Unsendable) -> None:
    with pytest.raises(ValueError):
        launch.encode_spec(case.argv, "/bin/a", "/", case.env, None)


@pytest.mark.parametrize("case", BAD_SPECS, ids=lambda c: c.test_id)
def test_a_bad_spec_runs_nothing(
    tmp_path: pathlib.Path, launchers: list[subprocess.Popen[str]], case: BadSpec
) -> None:
    """Exit 125 with one message; the command is never run; the FIFO is gone."""
    marker = tmp_path / "ran"
    fifo = tmp_path / "spec.fifo"
    os.mkfifo(fifo, 0o600)
    proc = _launcher(launchers, fifo)
    _write_raw(fifo, case.payload.replace(b"{marker}", str(marker).encode()))
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 125, err
    assert "could not read the launch spec" in err
    assert "Traceback" not in err
    assert not marker.exists()
    assert not fifo.exists()


def test_a_good_raw_spec_runs_its_command(
    tmp_path: pathlib.Path, launchers: list[subprocess.Popen[str]]
) -> None:
    """The oracle of the test above: the same spec, well formed, does run."""
    marker = tmp_path / "ran"
    fifo = tmp_path / "spec.fifo"
    os.mkfifo(fifo, 0o600)
    proc = _launcher(launchers, fifo)
    _write_raw(fifo, _spec().replace(b"{marker}", str(marker).encode()))
    proc.communicate(timeout=15)
    assert proc.returncode == 0
    assert marker.exists()


def test_usage() -> None:
    proc = subprocess.run(
        [sys.executable, "-I", "-m", "amux_tmux.launch"],
        capture_output=True,
        text=True,
        timeout=15,
        check=False,
    )
    assert proc.returncode == 2
    assert "usage" in proc.stderr


def test_a_large_spec_goes_through(
    run_dir: pathlib.Path, tmp_path: pathlib.Path, launchers: list[subprocess.Popen[str]]
) -> None:
    """A spec far past a pipe's buffer (a big environment) arrives whole."""
    env = {"LANG": "C.UTF-8", **{f"V{i}": "x" * 1000 for i in range(1000)}}
    with launch.Handoff(run_dir, "large") as handoff:
        proc = _launcher(launchers, handoff.spec_path)
        handoff.send(_probe(), sys.executable, str(tmp_path), env, timeout=15)
    out, _ = proc.communicate(timeout=15)
    assert json.loads(out)["env"] == {**env, **PANE_ENV, "PWD": str(tmp_path)}
