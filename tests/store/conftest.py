"""Helpers shared by the store tests: record factories, tree snapshots, child Pythons."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from collections.abc import Iterator

import pytest

from amux_tmux.model import Session, Status, utcnow
from amux_tmux.store import FileStore

REPO = pathlib.Path(__file__).resolve().parents[2]


def make_session(session_id: str, **fields: object) -> Session:
    """Return a minimal valid record; ``fields`` override any attribute."""
    now = utcnow()
    base: dict[str, object] = {
        "id": session_id,
        "status": Status.CREATED,
        "created_at": now,
        "updated_at": now,
    }
    base.update(fields)
    return Session(**base)  # type: ignore[arg-type]


def snapshot(root: pathlib.Path) -> dict[str, tuple[int, int, bytes | None]]:
    """Return every entry under ``root`` with its mode, size and (for files) bytes."""
    result: dict[str, tuple[int, int, bytes | None]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = pathlib.Path(dirpath, name)
            st = path.lstat()
            data = path.read_bytes() if path.is_file() and not path.is_symlink() else None
            result[str(path.relative_to(root))] = (st.st_mode, st.st_size, data)
    return result


def temp_files(directory: pathlib.Path) -> list[str]:
    """Return the names of in-flight temp files in ``directory``."""
    if not directory.exists():
        return []
    return sorted(n for n in os.listdir(directory) if n.startswith(".tmp-"))


def python(code: str, *args: str, **kwargs: object) -> subprocess.Popen[str]:
    """Start a child Python running ``code`` with ``args`` in ``sys.argv[1:]``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-c", code, *args],
        env=env,
        text=True,
        **kwargs,
    )


def stop(proc: subprocess.Popen[str]) -> None:
    """Kill ``proc`` if it still runs and reap it."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


@pytest.fixture
def root(tmp_path: pathlib.Path) -> pathlib.Path:
    """A project root one level below ``tmp_path``, so escapes from it can be seen."""
    path = tmp_path / "project"
    path.mkdir()
    return path


@pytest.fixture
def fstore(root: pathlib.Path) -> FileStore:
    """A FileStore on :func:`root`."""
    return FileStore(root)


@pytest.fixture
def umask() -> Iterator[None]:
    """Restore the process umask after a test that changes it."""
    saved = os.umask(0o022)
    os.umask(saved)
    try:
        yield
    finally:
        os.umask(saved)
