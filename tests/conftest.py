"""Shared fixtures: every test runs with its own TMUX_TMPDIR and a guard on tmux."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from amux_tmux.store import FileStore


@pytest.fixture(autouse=True, scope="session")
def _private_tmux_tmpdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pathlib.Path]:
    """Point every tmux at a private directory so the user's servers are unreachable.

    A test that forgets ``-L``/``-S`` would talk to ``<this dir>/tmux-UID/default``;
    :func:`_no_default_server` fails it if that socket ever appears.
    """
    tmpdir = pathlib.Path(
        os.environ.get("AMUX_TEST_TMUX_TMPDIR") or tmp_path_factory.mktemp("tmux-tmpdir")
    )
    saved = {k: os.environ.get(k) for k in ("TMUX_TMPDIR", "TMUX", "TMUX_PANE")}
    os.environ["TMUX_TMPDIR"] = str(tmpdir)
    os.environ.pop("TMUX", None)
    os.environ.pop("TMUX_PANE", None)
    yield tmpdir
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    _kill_all_servers(tmpdir)


def _kill_all_servers(tmpdir: pathlib.Path) -> None:
    """Kill every tmux server a test left behind under ``tmpdir``."""
    tmux = shutil.which("tmux")
    for sock_dir in tmpdir.glob("tmux-*"):
        for sock in sock_dir.iterdir():
            if tmux:
                subprocess.run(
                    [tmux, "-S", str(sock), "kill-server"],
                    capture_output=True,
                    timeout=10,
                    check=False,
                )
            sock.unlink(missing_ok=True)


@pytest.fixture(autouse=True)
def _no_default_server(_private_tmux_tmpdir: pathlib.Path) -> Iterator[None]:
    """Fail any test that reached tmux's default socket instead of a private one."""
    default = _private_tmux_tmpdir / f"tmux-{os.geteuid()}" / "default"
    yield
    if default.exists():
        _kill_all_servers(_private_tmux_tmpdir)
        pytest.fail("a test reached the default tmux server; always pass -L or -S")


@pytest.fixture
def store(tmp_path: pathlib.Path) -> FileStore:
    """A FileStore in a fresh temporary root."""
    return FileStore(tmp_path)
