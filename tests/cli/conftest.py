"""The real CLI as a subprocess, on the test's root and private tmux socket."""

from __future__ import annotations

import pathlib

import pytest

from tests.helpers import Cli, assert_one_line_error, describe

__all__ = ["Cli", "assert_one_line_error", "describe"]


@pytest.fixture
def cli(tmp_path: pathlib.Path, socket_name: str) -> Cli:
    """The CLI on this test's root (``tmp_path``) and private socket."""
    return Cli(tmp_path, socket_name)
