"""Terminal output replayed on a virtual screen: the text a person saw, from the bytes.

A log holds what the agent wrote to its terminal. Programs that print lines are easy to
read back; agents' TUIs are not: they move the cursor up and rewrite rows, place words
with column moves, erase lines, clear the screen, switch to the alternate screen. So the
log is replayed here, as tmux would show it: rows that scrolled off the top stay as
history (``scroll-on-clear`` keeps a cleared screen there too, ``ESC [3J`` drops it), the
alternate screen is not history. No colours, no wrapping (a long line stays one row).

The height is tmux's default for a detached session (24 rows): relative cursor moves do
not depend on it, absolute ones (rare outside the alternate screen) do.
"""

from __future__ import annotations

import re
import unicodedata

DEFAULT_HEIGHT = 24

_TOKEN = re.compile(
    r"([^\x00-\x1f\x7f-\x9f]+)"  # 1: text
    r"|(?:\x1b\[|\x9b)([0-?]*)([ -/]*)([@-~])"  # 2, 3, 4: CSI parameters, final
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC (titles, hyperlinks): nothing shown
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"  # DCS, SOS, PM, APC
    r"|\x1b([ -/]*[0-~])"  # 5: two-byte escapes
    r"|([\x00-\x1f\x7f-\x9f])"  # 6: a control character (a lone ESC too)
)
#: An escape sequence cut off at the end of what was read so far.
_UNFINISHED = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]*|[PX^_][^\x1b]*|[ -/]*)?\Z|\x9b[0-?]*[ -/]*\Z"
)
_ALT_SCREEN = frozenset({"?1049", "?1047", "?47"})
_WIDE = "\x00"  # the second column of a wide character


class Screen:
    """A terminal that keeps every row: history above, the screen below.

    >>> s = Screen()
    >>> s.feed("one\\r\\ntwo\\r\\n\\x1b[2A\\x1b[3Gly\\r\\n")
    >>> s.rows()
    ['only', 'two']
    """

    def __init__(self, height: int = DEFAULT_HEIGHT) -> None:
        self.height = height
        self._rows: list[str] = []
        self._top = 0  # the screen's first row; the rows above it are history
        self._y = 0
        self._x = 0
        self._saved = (0, 0)
        #: The program moved the cursor up into rows it wrote: rows are final only once
        #: they have scrolled off the screen.
        self.redraws = False
        self._emitted = 0
        self._main: tuple[list[str], int, int, int] | None = None  # while on the alt screen
        self._pending = ""

    # --- input ---------------------------------------------------------------------

    def feed(self, text: str) -> None:
        """Replay ``text``; an escape sequence cut off at its end waits for the rest."""
        text = self._pending + text
        self._pending = ""
        cut = text.rfind("\x1b", max(0, len(text) - 4096))
        if cut < 0:
            cut = text.rfind("\x9b", max(0, len(text) - 64))
        if cut >= 0 and _UNFINISHED.match(text, cut):
            text, self._pending = text[:cut], text[cut:]
        for m in _TOKEN.finditer(text):
            run = m.group(1)
            if run is not None:
                self._put(run)
            elif m.group(4) is not None:
                if not m.group(3):  # with intermediates (cursor style...): nothing shown
                    self._csi(m.group(2), m.group(4))
            elif m.group(6) is not None:
                self._control(m.group(6))
            elif m.group(5) is not None:
                self._escape(m.group(5))

    def _put(self, run: str) -> None:
        if not run.isascii():
            run = "".join(
                ch + _WIDE if unicodedata.east_asian_width(ch) in ("W", "F") else ch for ch in run
            )
        rows = self._rows
        while len(rows) <= self._y:
            rows.append("")
        row, x = rows[self._y], self._x
        if x > len(row):
            row += " " * (x - len(row))
        rows[self._y] = row[:x] + run + row[x + len(run) :]
        self._x = x + len(run)

    def _control(self, ch: str) -> None:
        if ch == "\n":  # as if after a carriage return: logs without one stay readable
            self._x = 0
            self._y += 1
            if self._y >= self._top + self.height:
                self._top = self._y - self.height + 1
        elif ch == "\r":
            self._x = 0
        elif ch == "\b":
            self._x = max(0, self._x - 1)
        elif ch == "\t":
            self._x = (self._x // 8 + 1) * 8

    def _escape(self, seq: str) -> None:
        if seq == "7":
            self._saved = (self._y - self._top, self._x)
        elif seq == "8":
            self._restore()
        elif seq == "M":  # reverse index
            self._up(1)
        elif seq == "c":  # reset
            self._clear_screen()
            self._y, self._x = self._top, 0

    def _csi(self, params: str, final: str) -> None:
        if final == "m":
            return  # colours: most of what a TUI sends
        if params[:1] in ("<", "=", ">", "?"):
            # Private modes; of them only the alternate screen changes what is shown.
            # (ESC [<u and ESC [>1u are the kitty keyboard protocol, not restore-cursor.)
            if final in "hl" and set(params.split(";")) & _ALT_SCREEN:
                self._alternate(final == "h")
            return
        args = [int(p) if p.isdigit() else 0 for p in params.split(";")] if params else []
        n = max(1, args[0]) if args else 1
        bottom = self._top + self.height - 1
        if final == "A":
            self._up(n)
        elif final in "Be":
            self._y = min(bottom, self._y + n)
        elif final in "Ca":
            self._x += n
        elif final == "D":
            self._x = max(0, self._x - n)
        elif final in "G`":
            self._x = n - 1
        elif final == "E":
            self._y, self._x = min(bottom, self._y + n), 0
        elif final == "F":
            self._up(n)
            self._x = 0
        elif final in "Hf":
            col = max(1, args[1]) if len(args) > 1 else 1
            self._move_to(self._top + min(n, self.height) - 1, col - 1)
        elif final == "d":
            self._move_to(self._top + min(n, self.height) - 1, self._x)
        elif final == "J":
            self._erase_display(args[0] if args else 0)
        elif final == "K":
            self._erase_line(args[0] if args else 0)
        elif final in "X@P":
            self._edit_line(final, n)
        elif final in "LM":
            self._edit_rows(final, n)
        elif final == "S":
            self._top += n
            self._y = max(self._y, self._top)
        elif final == "s":
            self._saved = (self._y - self._top, self._x)
        elif final == "u":
            self._restore()

    def _up(self, n: int) -> None:
        self._move_to(max(self._top, self._y - n), self._x)

    def _move_to(self, y: int, x: int) -> None:
        if y < self._y:
            self.redraws = True
        self._y, self._x = y, x

    def _restore(self) -> None:
        row, x = self._saved
        self._move_to(self._top + min(row, self.height - 1), x)

    def _erase_display(self, how: int) -> None:
        rows = self._rows
        if how == 0:
            if self._y < len(rows):
                rows[self._y] = rows[self._y][: self._x]
                del rows[self._y + 1 :]
        elif how == 1:
            for i in range(self._top, min(self._y, len(rows))):
                rows[i] = ""
            if self._y < len(rows):
                rows[self._y] = " " * (self._x + 1) + rows[self._y][self._x + 1 :]
        elif how == 2:
            self._clear_screen()
        elif how == 3:  # the scrollback goes (what `clear` does), the screen stays
            drop = min(self._top, len(rows))
            del rows[:drop]
            self._top -= drop
            self._y -= drop
            self._emitted = max(0, self._emitted - drop)

    def _clear_screen(self) -> None:
        # tmux's scroll-on-clear: what was on the screen becomes history.
        rows = self._rows
        while len(rows) > self._top and not rows[-1].strip():
            rows.pop()
        line = self._y - self._top
        self._top = len(rows)
        self._y = self._top + line

    def _erase_line(self, how: int) -> None:
        if self._y >= len(self._rows):
            return
        row, x = self._rows[self._y], self._x
        if how == 0:
            row = row[:x]
        elif how == 1:
            row = " " * (x + 1) + row[x + 1 :]
        else:
            row = ""
        self._rows[self._y] = row

    def _edit_line(self, final: str, n: int) -> None:
        if self._y >= len(self._rows):
            return
        row, x = self._rows[self._y], self._x
        if final == "X":
            row = row[:x] + " " * min(n, max(0, len(row) - x)) + row[x + n :]
        elif final == "@":
            row = row[:x] + " " * n + row[x:] if x < len(row) else row
        else:
            row = row[:x] + row[x + n :]
        self._rows[self._y] = row

    def _edit_rows(self, final: str, n: int) -> None:
        rows, y = self._rows, self._y
        if y >= len(rows):
            return
        if final == "L":
            rows[y:y] = [""] * n
            del rows[self._top + self.height :]
        else:
            del rows[y : min(y + n, self._top + self.height)]

    def _alternate(self, on: bool) -> None:
        if on and self._main is None:
            self._main = (self._rows, self._top, self._y, self._x)
            self._rows, self._top, self._y, self._x = [], 0, 0, 0
        elif not on and self._main is not None:
            self._rows, self._top, self._y, self._x = self._main
            self._main = None

    # --- output --------------------------------------------------------------------

    def rows(self) -> list[str]:
        """Every row, history first, then the screen (the alternate one, if it is up);
        trailing blanks dropped."""
        rows = self._main[0] + self._rows if self._main is not None else self._rows
        return _trimmed(rows)

    def final_rows(self) -> list[str]:
        """Rows no longer expected to change, not given before (for ``logs -f``).

        A program that only prints is done with a row once it moved below it; one that
        redraws (a TUI) only once the row scrolled off its screen. Blank rows are given
        only once a row with text follows them.
        """
        if self._main is not None:
            return []
        limit = min(self._top if self.redraws else self._y, len(self._rows))
        while limit > self._emitted and not self._rows[limit - 1].strip():
            limit -= 1  # blank rows wait for what follows them: if nothing, they never show
        if limit <= self._emitted:
            return []
        out = [_shown(row) for row in self._rows[self._emitted : limit]]
        self._emitted = limit
        return out

    def rest(self) -> list[str]:
        """The rows not given by :meth:`final_rows` yet (when the output has ended)."""
        rows = _trimmed(self._rows)[self._emitted :]
        self._emitted = len(self._rows)
        return rows


def _shown(row: str) -> str:
    return row.replace(_WIDE, "").rstrip()


def _trimmed(rows: list[str]) -> list[str]:
    out = [_shown(row) for row in rows]
    while out and not out[-1]:
        out.pop()
    return out


def render(text: str, height: int = DEFAULT_HEIGHT) -> list[str]:
    """Return the rows a terminal would have shown for ``text`` (history, then screen).

    >>> render("50%\\r100%\\r\\ndone\\r\\n")
    ['100%', 'done']
    >>> render("\\x1b[?1049hvim\\x1b[?1049lback\\r\\n")
    ['back']
    """
    screen = Screen(height)
    screen.feed(text)
    return screen.rows()
