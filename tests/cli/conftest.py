"""The real CLI as a subprocess, on the test's root and private tmux socket."""

from __future__ import annotations

import pathlib
from collections.abc import Callable

import pytest

from amux_tmux.cli import main
from tests.helpers import Cli, assert_one_line_error, describe

__all__ = ["Amux", "Cli", "assert_one_line_error", "describe"]

#: The CLI in this process: ``amux(*args) -> (exit code, stdout, stderr)``.
Amux = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(tmp_path: pathlib.Path, socket_name: str) -> Cli:
    """The CLI on this test's root (``tmp_path``) and private socket."""
    return Cli(tmp_path, socket_name)


@pytest.fixture
def amux(cli: Cli, capsys: pytest.CaptureFixture[str]) -> Amux:
    """The CLI in this process (``main([...])``), on the test's root and socket."""

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["--root", str(cli.root), "--socket", cli.socket, *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run
