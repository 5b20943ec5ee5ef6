"""A session's kept output: the writer tmux's pipe feeds, reading back, following."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import NamedTuple

import pytest

from amux_tmux import logfile
from tests.helpers import wait_until

TIMEOUT = 15.0


# --- what logs shows -----------------------------------------------------------------------


class Plain(NamedTuple):
    test_id: str
    raw: str
    expected: str


PLAIN = [
    Plain("sgr-colours", "\x1b[1;31mred\x1b[0m plain\n", "red plain\n"),
    Plain("osc-title-bel", "\x1b]0;title\x07text\n", "text\n"),
    Plain("osc-hyperlink-st", "\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\\n", "link\n"),
    Plain("dcs", "\x1bPq#0;2;0;0;0\x1b\\after\n", "after\n"),
    Plain("two-byte-escapes", "\x1b=\x1b>\x1b(Bkeypad\n", "keypad\n"),
    Plain("private-modes", "\x1b[?2004h\x1b[?25lprompt> \x1b[?25h\n", "prompt>\n"),
    Plain("c1-csi", "\x9b2Kcleared\n", "cleared\n"),
    Plain("progress-bar", "  0%\r 50%\r100%\ndone\n", "100%\ndone\n"),
    Plain("redraw-with-erase", "\r\x1b[2Kframe 1\r\x1b[2Kframe 2\r\n", "frame 2\n"),
    Plain("crlf", "one\r\ntwo\r\n", "one\ntwo\n"),
    Plain("trailing-carriage-returns", "kept\r\r\n", "kept\n"),
    Plain("controls-as-a-terminal-does", "a\x07b\x08c\td\x00e\x7f\n", "ac      de\n"),
    Plain("non-ascii", "é€ 漢字\n", "é€ 漢字\n"),
    Plain("no-final-newline", "partial", "partial\n"),
]


@pytest.mark.parametrize("case", PLAIN, ids=lambda c: c.test_id)
def test_plain(tmp_path: pathlib.Path, case: Plain) -> None:
    """Terminal output in a log reads back as the lines a person would read."""
    log = tmp_path / "x.log"
    log.write_text(case.raw)
    assert logfile.read(log) == case.expected


# --- the writer ---------------------------------------------------------------------------


@pytest.fixture
def writer(tmp_path: pathlib.Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start the writer as logpipe does (``python -I -S logfile.py --write PATH MAX``)."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(path: pathlib.Path, max_bytes: int) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", logfile.__file__, "--write", str(path), str(max_bytes)],
            stdin=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for stream in (proc.stdin, proc.stderr):
            if stream is not None and not stream.closed:
                stream.close()


def _feed(
    proc: subprocess.Popen[bytes], path: pathlib.Path, data: bytes, older: bytes | None = None
) -> None:
    """Send one chunk; wait until the log ends with it (and .1 holds ``older``)."""
    assert proc.stdin is not None
    proc.stdin.write(data)
    proc.stdin.flush()
    rotated = path.with_name(path.name + ".1")

    def written() -> bool:
        try:
            done = path.read_bytes().endswith(data)
            return done and (older is None or rotated.read_bytes() == older)
        except FileNotFoundError:
            return False

    wait_until(written, timeout=TIMEOUT, what=f"{path.name} to end with {data[:20]!r}")


def test_rotation_keeps_one_older_file(
    tmp_path: pathlib.Path, writer: Callable[..., subprocess.Popen[bytes]]
) -> None:
    """Past the cap the log moves to .1 (the older .1 is dropped); files are 0600."""
    log = tmp_path / "abc.log"
    proc = writer(log, 100)
    a, b, c = (ch * 60 + b"\n" for ch in (b"a", b"b", b"c"))
    _feed(proc, log, a)
    assert not (tmp_path / "abc.log.1").exists()
    _feed(proc, log, b, older=a)  # 122 > 100: a goes to .1
    assert log.read_bytes() == b
    _feed(proc, log, c, older=b)  # b goes to .1, a is dropped
    assert sorted(p.name for p in tmp_path.iterdir()) == ["abc.log", "abc.log.1"]
    assert (tmp_path / "abc.log.1").read_bytes() == b
    assert log.read_bytes() == c
    for path in tmp_path.iterdir():
        assert path.stat().st_mode & 0o777 == 0o600
    assert proc.stdin is not None
    proc.stdin.close()
    assert proc.wait(timeout=TIMEOUT) == 0


def test_a_chunk_larger_than_the_cap_is_kept_whole(
    tmp_path: pathlib.Path, writer: Callable[..., subprocess.Popen[bytes]]
) -> None:
    log = tmp_path / "big.log"
    proc = writer(log, 10)
    _feed(proc, log, b"x" * 50)
    assert log.read_bytes() == b"x" * 50
    assert not (tmp_path / "big.log.1").exists()


def test_the_writer_appends_to_an_existing_log(
    tmp_path: pathlib.Path, writer: Callable[..., subprocess.Popen[bytes]]
) -> None:
    """A restarted session keeps what its log already holds."""
    log = tmp_path / "again.log"
    log.write_bytes(b"before\n")
    proc = writer(log, 1000)
    _feed(proc, log, b"after\n")
    assert log.read_bytes() == b"before\nafter\n"


def test_the_writer_refuses_a_symlink(
    tmp_path: pathlib.Path, writer: Callable[..., subprocess.Popen[bytes]]
) -> None:
    """A log path planted as a symlink is not followed: the target stays untouched."""
    target = tmp_path / "target"
    target.write_bytes(b"precious\n")
    log = tmp_path / "link.log"
    log.symlink_to(target)
    proc = writer(log, 1000)
    proc.communicate(b"injected\n", timeout=TIMEOUT)
    assert proc.returncode != 0
    assert target.read_bytes() == b"precious\n"


# --- reading --------------------------------------------------------------------------------


@pytest.fixture
def rotated(tmp_path: pathlib.Path) -> pathlib.Path:
    """A log whose first three lines were rotated to .1."""
    log = tmp_path / "r.log"
    (tmp_path / "r.log.1").write_bytes(b"\x1b[1mline 1\x1b[0m\nline 2\nline 3\n")
    log.write_bytes(b"line 4\nprogress 1%\rprogress 100%\n\n\n")
    return log


class ReadCase(NamedTuple):
    test_id: str
    lines: int | None
    raw: bool
    expected: str


READS = [
    ReadCase("all", None, False, "line 1\nline 2\nline 3\nline 4\nprogress 100%\n"),
    ReadCase("last-4-across-rotation", 4, False, "line 2\nline 3\nline 4\nprogress 100%\n"),
    ReadCase("last-1", 1, False, "progress 100%\n"),
    ReadCase("zero", 0, False, ""),
    ReadCase("more-than-there-are", 50, False, "line 1\nline 2\nline 3\nline 4\nprogress 100%\n"),
    ReadCase("raw-last-3", 3, True, "progress 1%\rprogress 100%\n\n\n"),
]


@pytest.mark.parametrize("case", READS, ids=lambda c: c.test_id)
def test_read(rotated: pathlib.Path, case: ReadCase) -> None:
    assert logfile.read(rotated, case.lines, case.raw) == case.expected


def test_read_without_a_log(tmp_path: pathlib.Path) -> None:
    assert logfile.read(tmp_path / "none.log") is None


def test_read_just_after_a_rotation(tmp_path: pathlib.Path) -> None:
    """Only .1 exists (the writer has not reopened yet): it is still the log."""
    (tmp_path / "x.log.1").write_bytes(b"old\n")
    assert logfile.read(tmp_path / "x.log") == "old\n"


def test_read_replaces_bytes_that_are_not_utf8(tmp_path: pathlib.Path) -> None:
    log = tmp_path / "bin.log"
    log.write_bytes(b"ok \xff\xfe end\n")
    assert logfile.read(log) == "ok \ufffd\ufffd end\n"


def test_read_of_a_fifo_does_not_hang(tmp_path: pathlib.Path) -> None:
    """A FIFO planted where the log should be is read as empty, at once."""
    fifo = tmp_path / "f.log"
    os.mkfifo(fifo, 0o600)
    assert logfile.read(fifo) == ""


# --- following ------------------------------------------------------------------------------


class Follower:
    """Runs logfile.follow in a thread; ``end()`` makes ``ended()`` true."""

    def __init__(self, path: pathlib.Path, lines: int | None, raw: bool = False) -> None:
        self.rows: list[str] = []
        self._ended = threading.Event()
        self.error: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, args=(path, lines, raw), daemon=True)
        self.thread.start()

    def _run(self, path: pathlib.Path, lines: int | None, raw: bool) -> None:
        try:
            logfile.follow(
                path,
                self.rows.append,
                lines=lines,
                raw=raw,
                ended=self._ended.is_set,
                interval=0.01,
            )
        except BaseException as err:
            self.error.append(err)

    def wait_for(self, *rows: str) -> None:
        wait_until(lambda: self.rows[-len(rows) :] == list(rows), timeout=TIMEOUT, what=rows)

    def end(self) -> None:
        self._ended.set()
        self.thread.join(timeout=TIMEOUT)
        assert not self.thread.is_alive(), "follow did not stop when ended() was true"
        assert not self.error, self.error


@pytest.fixture
def follow(rotated: pathlib.Path) -> Iterator[Callable[..., Follower]]:
    made: list[Follower] = []

    def start(lines: int | None, raw: bool = False) -> Follower:
        made.append(Follower(rotated, lines, raw))
        return made[-1]

    yield start
    for follower in made:
        follower._ended.set()
        follower.thread.join(timeout=TIMEOUT)


def _append(path: pathlib.Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def test_follow_shows_the_end_then_what_is_added(
    rotated: pathlib.Path, follow: Callable[..., Follower]
) -> None:
    follower = follow(2)
    follower.wait_for("line 4", "progress 100%")
    _append(rotated, b"\x1b[32mnew\x1b[0m\n")
    follower.wait_for("new")
    _append(rotated, b"half")
    _append(rotated, b" and half\n")
    follower.wait_for("half and half")
    follower.end()
    # the log's two blank lines show once something follows them
    assert follower.rows == ["line 4", "progress 100%", "", "", "new", "half and half"]


def test_follow_picks_up_a_rotation_without_losing_lines(
    rotated: pathlib.Path, follow: Callable[..., Follower]
) -> None:
    """Lines written just before the writer rotates are shown, then the new file's."""
    follower = follow(1)
    follower.wait_for("progress 100%")
    _append(rotated, b"last of the old file\n")
    os.replace(rotated, rotated.with_name("r.log.1"))
    rotated.write_bytes(b"first of the new file\n")
    follower.wait_for("last of the old file", "first of the new file")
    _append(rotated, b"second of the new file\n")
    follower.wait_for("second of the new file")
    follower.end()
    assert follower.rows == [
        "progress 100%",
        "",
        "",
        "last of the old file",
        "first of the new file",
        "second of the new file",
    ]


def test_follow_keeps_characters_split_across_writes(
    rotated: pathlib.Path, follow: Callable[..., Follower]
) -> None:
    """A UTF-8 character whose bytes arrive in two writes is still one character."""
    follower = follow(1)
    follower.wait_for("progress 100%")
    snowman = "☃".encode()
    # One write: once "marker" is shown, the first byte of the snowman has been read too.
    _append(rotated, b"marker\nx" + snowman[:1])
    follower.wait_for("marker")
    _append(rotated, snowman[1:] + b"y\n")
    follower.wait_for("x☃y")
    follower.end()
    assert follower.rows == ["progress 100%", "", "", "marker", "x☃y"]


def test_follow_ends_with_the_unfinished_line(
    rotated: pathlib.Path, follow: Callable[..., Follower]
) -> None:
    """When the session has ended, a last line without newline is still shown."""
    follower = follow(1)
    follower.wait_for("progress 100%")
    _append(rotated, b"no newline at the end")
    follower.end()
    assert follower.rows == ["progress 100%", "", "", "no newline at the end"]


def test_follow_from_a_partial_line(tmp_path: pathlib.Path) -> None:
    """A log that ends mid-line: the line is shown once, whole, when it is finished."""
    log = tmp_path / "p.log"
    log.write_bytes(b"done\nhalf")
    follower = Follower(log, 5)
    try:
        follower.wait_for("done")
        _append(log, b" finished\n")
        follower.wait_for("half finished")
    finally:
        follower.end()
    assert follower.rows == ["done", "half finished"]


def test_follow_of_a_log_that_appears_later(
    tmp_path: pathlib.Path,
) -> None:
    """A session that has not printed yet: following waits for its log."""
    log = tmp_path / "late.log"
    follower = Follower(log, 10)
    try:
        log.write_bytes(b"hello\n")
        follower.wait_for("hello")
    finally:
        follower.end()
    assert follower.rows == ["hello"]
