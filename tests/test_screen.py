"""Terminal output replayed on a virtual screen (what ``logs`` shows of a TUI)."""

from __future__ import annotations

import pathlib
from typing import NamedTuple

import pytest

from amux_tmux.screen import Screen, render

ESC = "\x1b"


class Shown(NamedTuple):
    test_id: str
    raw: str
    expected: list[str]


SHOWN = [
    Shown("lines", "one\r\ntwo\r\n", ["one", "two"]),
    Shown("bare-newlines-start-the-row-over", "one\ntwo\n", ["one", "two"]),
    Shown("progress-keeps-its-last-state", "  0%\r 50%\r100%\r\ndone\r\n", ["100%", "done"]),
    Shown("colours-go", f"{ESC}[1;31mred{ESC}[0m plain\r\n", ["red plain"]),
    Shown(
        "titles-and-links-go",
        f"{ESC}]0;t\x07a{ESC}]8;;http://x{ESC}\\b{ESC}]8;;{ESC}\\\n",
        ["ab"],
    ),
    Shown(
        # Ink-style: a reply drawn into a row above the cursor, words placed by column.
        "a-row-rewritten-from-below",
        f"> prompt\r\n\r\n{ESC}[2K? for shortcuts\r\n"
        f"{ESC}[2A\r● {ESC}[3GFAKE-REPLY lines=1\r{ESC}[2B",
        ["> prompt", "● FAKE-REPLY lines=1", "? for shortcuts"],
    ),
    Shown("column-moves-are-spaces", f"a{ESC}[3Cb{ESC}[10Gc\r\n", ["a   b    c"]),
    Shown("backwards-and-overwrite", f"hello{ESC}[3Dxy\r\n", ["hexyo"]),
    Shown("erase-to-end-of-line", f"abcdef\r{ESC}[3C{ESC}[K\r\n", ["abc"]),
    Shown("erase-whole-line", f"abcdef{ESC}[2Kz\r\n", ["      z"]),
    Shown("erase-below", f"a\r\nb\r\nc{ESC}[1A\r{ESC}[J\r\n", ["a"]),
    Shown("delete-and-insert-characters", f"abcdef\r{ESC}[2P{ESC}[4C{ESC}[2@\r\n", ["cdef"]),
    Shown("clear-keeps-the-old-screen", f"old\r\n{ESC}[H{ESC}[2Jnew\r\n", ["old", "new"]),
    Shown("clear-of-the-scrollback-drops-it", f"old\r\n{ESC}[H{ESC}[2J{ESC}[3Jnew\r\n", ["new"]),
    Shown(
        "alternate-screen-is-not-history",
        f"before\r\n{ESC}[?1049hvim{ESC}[?1049lafter\r\n",
        ["before", "after"],
    ),
    Shown("alternate-screen-while-up", f"before\r\n{ESC}[?1049hin vim", ["before", "in vim"]),
    Shown("save-and-restore-the-cursor", f"ab{ESC}7\r\nline 2{ESC}8c\r\n", ["abc", "line 2"]),
    Shown("absolute-position-on-the-screen", f"{ESC}[2;5Hx{ESC}[1;1Hy", ["y", "    x"]),
    Shown("wide-characters-take-two-columns", f"漢字{ESC}[5Gx\r\n", ["漢字x"]),
    Shown("tab-stops", "a\tb\r\n", ["a       b"]),
    Shown("trailing-blank-rows-go", "text\r\n\r\n\r\n   \r\n", ["text"]),
    Shown(
        # 30 rows printed: the screen (24 rows) starts at r7
        "cursor-up-stops-at-the-screen-top",
        "".join(f"r{i}\r\n" for i in range(30)) + f"{ESC}[99Ax",
        [f"r{i}" for i in range(7)] + ["x7"] + [f"r{i}" for i in range(8, 30)],
    ),
    Shown("c1-csi", "abc\x9b2Kz\r\n", ["   z"]),
    Shown("controls-are-ignored", "a\x07b\x00c\x7f\r\n", ["abc"]),
    # kitty keyboard protocol (Claude Code sends them): not restore-cursor
    Shown(
        "private-csi-u-is-not-restore",
        f"ab{ESC}7\r\ncd{ESC}[<u{ESC}[>1u{ESC}[>4;2mef\r\n",
        ["ab", "cdef"],
    ),
    Shown("cursor-style-is-not-restore", f"ab{ESC}7\r\ncd{ESC}[2 qef\r\n", ["ab", "cdef"]),
]  # fmt: skip


@pytest.mark.parametrize("case", SHOWN, ids=lambda c: c.test_id)
def test_render(case: Shown) -> None:
    """What a terminal would have shown, history first."""
    assert render(case.raw) == case.expected


@pytest.mark.parametrize("case", SHOWN, ids=lambda c: c.test_id)
def test_render_in_pieces_is_the_same(case: Shown) -> None:
    """Fed a byte at a time (escape sequences split anywhere), the result is the same."""
    screen = Screen()
    for ch in case.raw:
        screen.feed(ch)
    assert screen.rows() == case.expected


def test_a_program_that_prints_gives_each_row_when_it_ends() -> None:
    screen = Screen()
    screen.feed("one\r\ntw")
    assert screen.final_rows() == ["one"]
    screen.feed("o\r\n50%\r")
    assert screen.final_rows() == ["two"]
    screen.feed("100%\r\n")
    assert screen.final_rows() == ["100%"]
    assert screen.rest() == []


def test_a_tui_gives_rows_once_they_scrolled_off_its_screen() -> None:
    """After a redraw above the cursor, rows still on the screen may change again."""
    screen = Screen(height=3)
    screen.feed("status: 1\r\n> \r\n")
    assert screen.final_rows() == ["status: 1", ">"]
    screen.feed(f"{ESC}[2A\rstatus: 2\r\n\r\n")  # a redraw: now a TUI
    assert screen.final_rows() == []
    screen.feed("a\r\nb\r\nc\r\n")
    assert screen.final_rows() == ["a"]
    assert screen.rest() == ["b", "c"]


def test_blank_rows_wait_for_what_follows() -> None:
    screen = Screen()
    screen.feed("a\r\n\r\n\r\n")
    assert screen.final_rows() == ["a"]
    screen.feed("b\r\n")
    assert screen.final_rows() == ["", "", "b"]


def test_a_huge_redrawn_log_renders_in_reasonable_time() -> None:
    """A status line redrawn 100,000 times (an agent's spinner) is still one row."""
    frames = "".join(f"\r{ESC}[2K{ESC}[33m⠋ working {i}{ESC}[0m" for i in range(100_000))
    assert render(frames + "\r\ndone\r\n") == ["⠋ working 99999", "done"]


DATA = pathlib.Path(__file__).parent / "data"


def _real(name: str) -> str:
    return (DATA / name).read_bytes().decode("utf-8", "replace")


def test_a_real_claude_code_session_renders_as_tmux_showed_it() -> None:
    """The log of Claude Code 2.1.197 (four prompts, a permission prompt answered), as
    piped by tmux, against tmux's own capture-pane of the same moment."""
    expected = _real("claude-code-2.1.197.capture.txt").split("\n")
    expected = [row.rstrip() for row in expected]
    while expected and not expected[-1]:
        expected.pop()
    assert render(_real("claude-code-2.1.197.at-capture.log")) == expected


@pytest.mark.parametrize("chunk", [4096, 65536])
def test_following_a_real_claude_code_session_gives_what_logs_gives(chunk: int) -> None:
    """-f (rows as they become final, then the rest at the end) shows what logs shows
    after the session ended: every reply once, the exit message after the input box."""
    data = _real("claude-code-2.1.197.log")
    screen = Screen()
    followed: list[str] = []
    for i in range(0, len(data), chunk):
        screen.feed(data[i : i + chunk])
        followed += screen.final_rows()
    followed += screen.rest()
    shown = render(data)
    assert followed == shown
    assert sum("FAKE-REPLY" in row for row in shown) == 4
    assert shown[-2] == "Resume this session with:"
