"""``pip install .`` (not editable) into a throwaway venv: quiet, complete, runnable."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig

import pytest

from tests.cli.conftest import describe

PROJECT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[pathlib.Path, str]:
    """A venv with the project installed from a copy of its tree (pip builds in the tree it
    is given: the shared checkout stays clean); returns the venv and pip's output."""
    base = tmp_path_factory.mktemp("install")
    source = base / "src"
    shutil.copytree(
        PROJECT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "__pycache__", "*.egg-info", "build", "dist", "tests", ".*cache"
        ),
    )
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
         "-v", "--no-deps", "--no-cache-dir", str(source)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if result.returncode != 0 and "No matching distribution found for setuptools" in (
        result.stdout + result.stderr
    ):
        pytest.skip("no index reachable for the build backend (setuptools)")
    assert result.returncode == 0, describe(result)
    return venv, result.stdout + result.stderr


def test_pip_install_prints_no_deprecation_warning(installed: tuple[pathlib.Path, str]) -> None:
    """The build (shown with -v) warns of nothing deprecated: the license is an SPDX
    string, not a table or classifiers."""
    _, output = installed
    lines = [line for line in output.splitlines() if "deprecat" in line.lower()]
    assert lines == [], "\n".join(lines)
    assert "Successfully installed amux_tmux" in output or "Successfully installed amux-tmux" in (
        output
    )


def test_installed_package_is_complete_and_runs(
    installed: tuple[pathlib.Path, str], tmp_path: pathlib.Path
) -> None:
    """The wheel ships the built-in profiles and py.typed, and its console script runs
    (its dependencies taken from the test venv, the package from the new venv)."""
    venv, _ = installed
    python = venv / "bin" / "python"
    where = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    package = pathlib.Path(where) / "amux_tmux"
    assert (package / "py.typed").is_file()
    assert (package / "profiles.yaml").is_file()
    assert (package / "cli" / "__init__.py").is_file()
    deps = sysconfig.get_paths()["purelib"]  # PYTHONPATH: no .pth (editable) processing
    env = {**os.environ, "PYTHONPATH": deps}
    ran = subprocess.run(
        [str(venv / "bin" / "amux-tmux"), "--root", str(tmp_path), "ls", "--json"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60, check=False,
    )  # fmt: skip
    assert (ran.returncode, ran.stdout, ran.stderr) == (0, "[]\n", ""), describe(ran)
    origin = subprocess.run(
        [str(python), "-c", "import amux_tmux.config as c; print(c.__file__)"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60, check=False,
    )  # fmt: skip
    assert origin.stdout.startswith(str(package)), describe(origin)
