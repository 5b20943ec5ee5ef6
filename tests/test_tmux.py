"""TmuxBackend against a real tmux server on a private socket, and against fake binaries."""

from __future__ import annotations

import os
import pathlib
import shutil
import time
from collections.abc import Callable
from subprocess import CompletedProcess

import pytest

from amux_tmux import exc
from amux_tmux.tmux import (
    ORPHAN_OPTION,
    OWNER_OPTION,
    TmuxBackend,
    exact_session,
    socket_of_tmux_env,
    socket_path_for,
)
from tests.conftest import kill_server, wait_until

TmuxCli = Callable[..., CompletedProcess[str]]
SLEEP = ["sleep", "600"]


@pytest.fixture
def backend(socket_name: str) -> TmuxBackend:
    """A backend on the test's private socket."""
    return TmuxBackend(socket_name, timeout=10.0)


def _names(tmux_cli: TmuxCli) -> list[str]:
    out = tmux_cli("list-sessions", "-F", "#{session_name}")
    return sorted(out.stdout.split()) if out.returncode == 0 else []


def _fake_tmux(directory: pathlib.Path, body: str, name: str = "tmux") -> pathlib.Path:
    """Write an executable shell script standing in for tmux."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def _eventually(predicate: Callable[[], bool], timeout: float = 3.0) -> bool:
    """Return whether ``predicate`` became true within ``timeout`` (no failure if not)."""
    try:
        wait_until(predicate, timeout=timeout)
    except pytest.fail.Exception:
        return False
    return True


# --- real tmux -------------------------------------------------------------------------


def test_new_session_exact_names_and_tags(
    backend: TmuxBackend, tmux_cli: TmuxCli, tmp_path: pathlib.Path
) -> None:
    """new_session creates exactly the named session, tagged and remain-on-exit."""
    long = backend.new_session("amux-abc1234", "abc1234", SLEEP, str(tmp_path), {"MODE": "x"})
    short = backend.new_session("amux-abc12", "abc12", SLEEP, str(tmp_path), {})
    assert _names(tmux_cli) == ["amux-abc12", "amux-abc1234"]
    assert (long.session_name, short.session_name) == ("amux-abc1234", "amux-abc12")
    assert long.session_id.startswith("$")
    assert long.session_id != short.session_id
    assert long.pane_id.startswith("%")
    assert long.pane_pid > 0
    assert long.socket_path == backend.socket_path
    for name, owner in (("amux-abc1234", "abc1234"), ("amux-abc12", "abc12")):
        tag = tmux_cli("show-options", "-v", "-t", f"={name}:", OWNER_OPTION).stdout.strip()
        assert tag == owner
        roe = tmux_cli("show-options", "-w", "-v", "-t", f"={name}:", "remain-on-exit")
        assert roe.stdout.strip() == "on"
    env = tmux_cli("show-environment", "-t", "=amux-abc1234", "MODE").stdout.strip()
    assert env == "MODE=x"


def test_new_session_duplicate_name_fails(backend: TmuxBackend, tmp_path: pathlib.Path) -> None:
    """A second session with the same exact name is refused, not renamed."""
    backend.new_session("amux-dup001", "dup001", SLEEP, str(tmp_path), {})
    with pytest.raises(exc.TmuxCommandFailed):
        backend.new_session("amux-dup001", "dup001", SLEEP, str(tmp_path), {})


def test_new_session_rejects_short_argv(backend: TmuxBackend, tmp_path: pathlib.Path) -> None:
    """The pane command must be an argv of 2+ words (a lone word would go through a shell)."""
    with pytest.raises(exc.UsageError):
        backend.new_session("amux-one001", "one001", ["sleep"], str(tmp_path), {})
    assert backend.calls == 0


def test_list_live_is_one_call(
    backend: TmuxBackend, tmux_cli: TmuxCli, tmp_path: pathlib.Path
) -> None:
    """One list-panes call reports every session with owner, orphan tag, pid and exit."""
    alive = backend.new_session("amux-live01", "live01", SLEEP, str(tmp_path), {})
    backend.new_session("amux-dead01", "dead01", ["sh", "-c", "exit 3"], str(tmp_path), {})
    tmux_cli("new-session", "-d", "-s", "amux-foo", "sleep", "600")
    tmux_cli("new-session", "-d", "-s", "work", "sleep", "600")
    tmux_cli("split-window", "-t", "=work:", "sleep", "600")
    backend.tag_orphan(alive.session_id)
    wait_until(lambda: backend.list_live()["amux-dead01"].pane_dead, what="dead pane")
    # tmux 3.3a sometimes never reports how a pane died; wait a little for the status.
    reported = _eventually(lambda: backend.list_live()["amux-dead01"].pane_dead_status == 3)

    before = backend.calls
    live = backend.list_live()
    assert backend.calls - before == 1
    assert sorted(live) == ["amux-dead01", "amux-foo", "amux-live01", "work"]

    pane = live["amux-live01"]
    assert (pane.session_id, pane.pane_id, pane.pane_pid) == (
        alive.session_id,
        alive.pane_id,
        alive.pane_pid,
    )
    assert (pane.owner_id, pane.orphan_tag, pane.pane_dead) == ("live01", True, False)
    assert pane.pane_dead_status is None
    assert abs(pane.session_created - time.time()) < 60

    dead = live["amux-dead01"]
    assert (dead.owner_id, dead.orphan_tag, dead.pane_dead) == ("dead01", False, True)
    assert dead.pane_dead_signal is None
    if reported:
        assert dead.pane_dead_status == 3
        assert dead.pane_dead_time is not None
        assert abs(dead.pane_dead_time - time.time()) < 60
    else:
        assert (dead.pane_dead_status, dead.pane_dead_time) == (None, None)
    assert (pane.pane_dead_signal, pane.pane_dead_time) == (None, None)
    assert (live["amux-foo"].owner_id, live["amux-foo"].orphan_tag) == (None, False)
    # A split session is reported once, by its first pane.
    first = tmux_cli("list-panes", "-t", "=work:", "-F", "#{pane_id}").stdout.split()[0]
    assert live["work"].pane_id == first


def test_signal_death_is_reported(backend: TmuxBackend, tmp_path: pathlib.Path) -> None:
    """An agent killed by a signal: dead pane, no exit status, the signal number."""
    backend.new_session("amux-sig001", "sig001", ["sh", "-c", "kill -9 $$"], str(tmp_path), {})

    def dead() -> object:
        pane = backend.list_live()["amux-sig001"]
        return pane if pane.pane_dead and pane.pane_dead_signal is not None else None

    try:
        pane = wait_until(dead, timeout=3, what="signal death")
    except pytest.fail.Exception:
        # tmux 3.3a sometimes never reports how a pane died (no status, signal or time).
        pane = backend.list_live()["amux-sig001"]
        assert pane.pane_dead_status is None
        pytest.skip(f"tmux did not report how the pane died: {pane}")
    assert (pane.pane_dead_status, pane.pane_dead_signal) == (None, 9)


def test_kill_session_is_exact(
    backend: TmuxBackend, tmux_cli: TmuxCli, tmp_path: pathlib.Path
) -> None:
    """Killing amux-abc12 leaves amux-abc1234 (tmux would match a bare name by prefix)."""
    long = backend.new_session("amux-abc1234", "abc1234", SLEEP, str(tmp_path), {})
    backend.new_session("amux-abc12", "abc12", SLEEP, str(tmp_path), {})
    assert backend.kill_session(exact_session("amux-abc12")) is True
    assert _names(tmux_cli) == ["amux-abc1234"]
    # A name that is only a prefix of a live session is gone, not a match.
    assert backend.kill_session(exact_session("amux-abc12")) is False
    assert backend.kill_session(exact_session("amux-abc")) is False
    assert _names(tmux_cli) == ["amux-abc1234"]
    assert backend.kill_session(long.session_id) is True
    assert backend.kill_session(long.session_id) is False  # no server any more
    assert _names(tmux_cli) == []


@pytest.mark.parametrize("target", ["amux-abc12", "", "abc", "1"])
def test_inexact_targets_are_refused(backend: TmuxBackend, target: str) -> None:
    """Bare names never reach tmux: they are refused before any call."""
    with pytest.raises(ValueError, match="not exact"):
        backend.kill_session(target)
    with pytest.raises(ValueError, match="not exact"):
        backend.tag_orphan(target)
    assert backend.calls == 0


def test_tag_orphan_by_id_and_name(
    backend: TmuxBackend, tmux_cli: TmuxCli, tmp_path: pathlib.Path
) -> None:
    """tag_orphan sets @amux_orphan=1 by $id or by =name, on that session only."""
    one = backend.new_session("amux-tag001", "tag001", SLEEP, str(tmp_path), {})
    backend.new_session("amux-tag0012", "tag0012", SLEEP, str(tmp_path), {})
    backend.tag_orphan(one.session_id)
    backend.tag_orphan(exact_session("amux-tag001"))
    live = backend.list_live()
    assert live["amux-tag001"].orphan_tag is True
    assert live["amux-tag0012"].orphan_tag is False
    shown = tmux_cli("show-options", "-v", "-t", "=amux-tag001:", ORPHAN_OPTION).stdout.strip()
    assert shown == "1"
    with pytest.raises(exc.TmuxCommandFailed):
        backend.tag_orphan("$9999")


def test_no_server_is_an_empty_listing(backend: TmuxBackend) -> None:
    """No server on the socket is a real empty listing, not an error."""
    assert not os.path.exists(backend.socket_path)
    assert backend.list_live() == {}
    assert backend.kill_session("$1") is False
    assert backend.calls == 2


def test_stale_socket_file_is_an_empty_listing(
    socket_name: str, tmux_cli: TmuxCli, tmp_path: pathlib.Path
) -> None:
    """A socket whose server died ('connection refused' or similar) reads as empty or fails
    loudly -- it never returns a partial listing."""
    backend = TmuxBackend(socket_name, timeout=10.0)
    backend.new_session("amux-gone01", "gone01", SLEEP, str(tmp_path), {})
    tmux_cli("kill-server")
    wait_until(lambda: tmux_cli("has-session").returncode != 0, what="server gone")
    assert backend.list_live() == {}


def test_new_session_creates_socket_dir(tmp_path: pathlib.Path) -> None:
    """With -S tmux does not create the socket's directory; new_session does (0700)."""
    sock = tmp_path / "s" / "sock"
    backend = TmuxBackend(str(sock), timeout=10.0)
    try:
        backend.new_session("amux-dir001", "dir001", SLEEP, str(tmp_path), {})
        assert (sock.parent.stat().st_mode & 0o777) == 0o700
        assert list(backend.list_live()) == ["amux-dir001"]
    finally:
        kill_server(str(sock))


def test_real_tmux_version_is_accepted(backend: TmuxBackend) -> None:
    """The installed tmux passes the version check."""
    backend.check_version()


# --- socket paths ----------------------------------------------------------------------


def test_socket_path_for_names_and_paths(tmp_path: pathlib.Path) -> None:
    """A bare name lives in $TMUX_TMPDIR/tmux-UID/; anything with a slash is a path."""
    env = {"TMUX_TMPDIR": str(tmp_path)}
    expected = os.path.join(os.path.realpath(tmp_path), f"tmux-{os.geteuid()}", "amux")
    assert socket_path_for("amux", env) == expected
    assert socket_path_for("amux", {}) == f"/tmp/tmux-{os.geteuid()}/amux"
    assert socket_path_for("/x/y/sock", env) == "/x/y/sock"
    assert socket_path_for("rel/sock", env) == os.path.abspath("rel/sock")
    assert socket_of_tmux_env("/tmp/tmux-0/amux,123,0") == "/tmp/tmux-0/amux"
    assert socket_of_tmux_env("") is None
    assert socket_of_tmux_env(None) is None


# --- fake binaries ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "stderr",
    [
        "error connecting to /tmp/tmux-0/amux (Permission denied)",
        "lost server",
        "",
    ],
    ids=["permission-denied", "lost-server", "silent"],
)
def test_query_error_is_not_an_empty_listing(tmp_path: pathlib.Path, stderr: str) -> None:
    """Anything but 'no server running' raises TmuxQueryFailed (a TmuxUnavailable)."""
    fake = _fake_tmux(tmp_path / "bin", f"echo '{stderr}' >&2\nexit 1")
    backend = TmuxBackend("s", tmux_bin=str(fake))
    with pytest.raises(exc.TmuxQueryFailed) as err:
        backend.list_live()
    assert isinstance(err.value, exc.TmuxUnavailable)
    assert err.value.exit_code == 5
    assert backend.calls == 1


@pytest.mark.parametrize(
    "stderr",
    [
        "no server running on /tmp/tmux-0/amux",
        "error connecting to /tmp/tmux-0/amux (No such file or directory)",
    ],
    ids=["no-server", "no-socket"],
)
def test_no_server_messages_are_empty(tmp_path: pathlib.Path, stderr: str) -> None:
    """The two ways tmux says 'no server' are a real empty listing."""
    fake = _fake_tmux(tmp_path / "bin", f"echo '{stderr}' >&2\nexit 1")
    assert TmuxBackend("s", tmux_bin=str(fake)).list_live() == {}


def test_garbage_listing_fails(tmp_path: pathlib.Path) -> None:
    """Output that is not our format is an error, never silently fewer sessions."""
    fake = _fake_tmux(tmp_path / "bin", "echo 'something unexpected'\nexit 0")
    with pytest.raises(exc.TmuxQueryFailed, match="unexpected output"):
        TmuxBackend("s", tmux_bin=str(fake)).list_live()


def test_binary_is_resolved_on_path(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without tmux_bin the binary comes from PATH, resolved on first use."""
    fake = _fake_tmux(tmp_path / "bin", "echo 'fake says no' >&2\nexit 1")
    monkeypatch.setenv("PATH", str(fake.parent))
    backend = TmuxBackend("s")
    assert backend.tmux_bin == str(fake)
    with pytest.raises(exc.TmuxQueryFailed, match="fake says no"):
        backend.list_live()


def test_missing_binary(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No tmux on PATH, or a tmux_bin that does not exist: TmuxNotFound (exit 5)."""
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(exc.TmuxNotFound) as err:
        TmuxBackend("s").list_live()
    assert err.value.exit_code == 5
    with pytest.raises(exc.TmuxNotFound):
        TmuxBackend("s", tmux_bin=str(tmp_path / "nope")).list_live()


def test_hanging_tmux_times_out(tmp_path: pathlib.Path) -> None:
    """A tmux that hangs is cut off after the timeout with TmuxTimeout."""
    fake = _fake_tmux(tmp_path / "bin", "exec sleep 30")
    backend = TmuxBackend("s", tmux_bin=str(fake), timeout=0.3)
    t0 = time.monotonic()
    with pytest.raises(exc.TmuxTimeout) as err:
        backend.list_live()
    assert time.monotonic() - t0 < 5
    assert isinstance(err.value, exc.TmuxUnavailable)
    with pytest.raises(exc.TmuxTimeout):
        backend.kill_session("$1")


@pytest.mark.parametrize(
    ("version", "ok"),
    [
        ("tmux 2.9", False),
        ("tmux 3.1c", False),
        ("tmux 3.2", True),
        ("tmux 3.3a", True),
        ("tmux 10.0", True),
        ("tmux next-3.5", True),
        ("tmux master", True),
    ],
    ids=["2.9", "3.1c", "3.2", "3.3a", "10.0", "next", "master"],
)
def test_version_check(tmp_path: pathlib.Path, version: str, ok: bool) -> None:
    """tmux older than 3.2 is refused with TmuxVersionTooOld (exit 5)."""
    fake = _fake_tmux(tmp_path / "bin", f'[ "$1" = "-V" ] && echo "{version}"\nexit 0')
    backend = TmuxBackend("s", tmux_bin=str(fake))
    if ok:
        backend.check_version()
        backend.check_version()  # cached per binary
        return
    with pytest.raises(exc.TmuxVersionTooOld) as err:
        backend.check_version()
    assert err.value.exit_code == 5
    assert version in str(err.value)


def test_version_check_of_hanging_tmux(tmp_path: pathlib.Path) -> None:
    """A hanging ``tmux -V`` is a TmuxUnavailable, not a hang."""
    fake = _fake_tmux(tmp_path / "bin", "exec sleep 30")
    with pytest.raises(exc.TmuxUnavailable):
        TmuxBackend("s", tmux_bin=str(fake), timeout=0.3).check_version()


def test_tmux_gets_no_secrets(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tmux client (which may start the server) never sees secret variables."""
    out = tmp_path / "env.txt"
    fake = _fake_tmux(tmp_path / "bin", f"env > {out}\nexit 0")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-value")
    monkeypatch.setenv("HARMLESS_VALUE", "visible")
    assert TmuxBackend("s", tmux_bin=str(fake)).list_live() == {}
    seen = out.read_text()
    assert "HARMLESS_VALUE=visible" in seen
    assert "sk-test-secret-value" not in seen


def test_real_binary_on_path() -> None:
    """Sanity: the suite needs a real tmux >= 3.2 on PATH."""
    assert shutil.which("tmux") is not None
