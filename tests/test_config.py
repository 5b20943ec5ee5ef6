"""Agent profiles: layers, the shipped profiles, every refusal, and prompt detection."""

# The screens hold the agents' real menu glyphs (U+276F, U+203A), not look-alikes of ">".
# ruff: noqa: RUF001

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import pytest

from amux_tmux import config, exc
from amux_tmux.config import Config, Profile, load_config, screen_tail, user_config_path

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
SHIPPED_AGENTS = ("aider", "claude", "codex", "gemini")


@pytest.fixture(autouse=True)
def _no_real_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing here may see the real user's config, even by accident."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def no_builtins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "BUILTIN_PROFILES", tmp_path / "no-such-profiles.yaml")


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def project(root: Path, text: str | bytes) -> Path:
    return write(root / ".amux" / "config.yaml", text)


# --- layers ------------------------------------------------------------------------------


class LayerCase(NamedTuple):
    test_id: str
    user: str | None  # None: no user file at all
    project: str | None  # None: no .amux/config.yaml
    expected: dict[str, tuple[tuple[str, ...], str]]  # agent -> (command, layer it came from)


USER_CLAUDE = "agents:\n  claude:\n    command: [claude-user]\n  mine:\n    command: [mine]\n"
LAYER_CASES = [
    LayerCase(
        "builtins_only",
        None,
        None,
        {name: ((name,), "builtin") for name in SHIPPED_AGENTS},
    ),
    LayerCase(
        "user_replaces_builtin_and_adds",
        USER_CLAUDE,
        None,
        {
            "aider": (("aider",), "builtin"),
            "claude": (("claude-user",), "user"),
            "codex": (("codex",), "builtin"),
            "gemini": (("gemini",), "builtin"),
            "mine": (("mine",), "user"),
        },
    ),
    LayerCase(
        "project_beats_user_and_builtin",
        USER_CLAUDE,
        "agents:\n  claude:\n    command: claude-project --fast\n  codex:\n    command: [cx]\n",
        {
            "aider": (("aider",), "builtin"),
            "claude": (("claude-project", "--fast"), "project"),
            "codex": (("cx",), "project"),
            "gemini": (("gemini",), "builtin"),
            "mine": (("mine",), "user"),
        },
    ),
    LayerCase(
        "empty_and_comment_only_files_add_nothing",
        "# nothing yet\n",
        "",
        {name: ((name,), "builtin") for name in SHIPPED_AGENTS},
    ),
    LayerCase(
        "null_agents_adds_nothing",
        "agents:\n",
        "agents: ~\n",
        {name: ((name,), "builtin") for name in SHIPPED_AGENTS},
    ),
]


@pytest.mark.parametrize("case", LAYER_CASES, ids=lambda c: c.test_id)
def test_layers_later_wins_per_agent(case: LayerCase, tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    user = tmp_path / "user.yaml"
    if case.user is not None:
        write(user, case.user)
    if case.project is not None:
        project(root, case.project)

    cfg = load_config(root, user)

    sources = {
        "builtin": os.path.abspath(config.BUILTIN_PROFILES),
        "user": str(user),
        "project": str(root / ".amux" / "config.yaml"),
    }
    got = {name: (p.command, p.source) for name, p in cfg.agents.items()}
    want = {name: (cmd, sources[layer]) for name, (cmd, layer) in case.expected.items()}
    assert got == want
    assert list(cfg.agents) == sorted(cfg.agents)
    read = [sources["builtin"]]
    read += [sources["user"]] if case.user is not None else []
    read += [sources["project"]] if case.project is not None else []
    assert cfg.files == tuple(read)


class MissingCase(NamedTuple):
    test_id: str
    make: str  # what exists under the root


MISSING_CASES = [
    MissingCase("no_amux_dir", ""),
    MissingCase("amux_dir_without_config", "dir"),
    MissingCase("amux_is_a_file", "file"),
    MissingCase("dangling_symlink", "dangling"),
]


@pytest.mark.parametrize("case", MISSING_CASES, ids=lambda c: c.test_id)
def test_missing_files_are_skipped_and_nothing_is_created(
    case: MissingCase, tmp_path: Path
) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    if case.make == "dir":
        (root / ".amux").mkdir()
    elif case.make == "file":
        (root / ".amux").write_text("not a dir")
    elif case.make == "dangling":
        (root / ".amux").mkdir()
        (root / ".amux" / "config.yaml").symlink_to(tmp_path / "gone.yaml")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))

    cfg = load_config(root, tmp_path / "no-user.yaml")

    assert set(cfg.agents) == set(SHIPPED_AGENTS)
    assert cfg.files == (os.path.abspath(config.BUILTIN_PROFILES),)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_nothing_is_cached_between_calls(tmp_path: Path) -> None:
    project(tmp_path, "agents:\n  a:\n    command: [one]\n")
    assert load_config(tmp_path).profile("a").command == ("one",)
    project(tmp_path, "agents:\n  a:\n    command: [two]\n")
    assert load_config(tmp_path).profile("a").command == ("two",)


def test_user_config_symlink_is_followed(tmp_path: Path) -> None:
    real = write(tmp_path / "dotfiles" / "amux.yaml", "agents:\n  a:\n    command: [x]\n")
    link = tmp_path / "user.yaml"
    link.symlink_to(real)
    assert load_config(tmp_path, link).profile("a").command == ("x",)


# --- values ------------------------------------------------------------------------------


class ValueCase(NamedTuple):
    test_id: str
    body: str  # the profile's keys, indented by four spaces
    expected: dict[str, object]  # Profile attribute -> value


VALUE_CASES = [
    ValueCase(
        "string_command_is_split_like_a_shell",
        "command: claude --model 'opus 4' --x=\"a b\"",
        {"command": ("claude", "--model", "opus 4", "--x=a b")},
    ),
    ValueCase(
        "numbers_in_argv_keep_their_spelling",
        "command: [aider, --map-tokens, 1024, --temp, 0.50, --oct, 0o17]",
        {"command": ("aider", "--map-tokens", "1024", "--temp", "0.50", "--oct", "0o17")},
    ),
    ValueCase(
        "quoted_yaml11_words_are_text",
        "command: [tool, 'no', \"on\", 'yes']",
        {"command": ("tool", "no", "on", "yes")},
    ),
    ValueCase(
        "defaults",
        "command: [x]",
        {"env": (), "secrets": (), "resume": None, "waiting": (), "working_seconds": 3.0},
    ),
    ValueCase("explicit_null_resume", "command: [x]\n    resume: null", {"resume": None}),
    ValueCase(
        "resume_as_string",
        "command: [x]\n    resume: x --continue",
        {"resume": ("x", "--continue")},
    ),
    ValueCase(
        "single_names_and_repeats_collapse",
        "command: [x]\n    env: FOO\n    secrets: [K_1, K_1, _K2]",
        {"env": ("FOO",), "secrets": ("K_1", "_K2")},
    ),
    ValueCase(
        "integer_seconds", "command: [x]\n    working_seconds: 10", {"working_seconds": 10.0}
    ),
    ValueCase("zero_seconds", "command: [x]\n    working_seconds: 0", {"working_seconds": 0.0}),
    ValueCase("float_seconds", "command: [x]\n    working_seconds: 1.5", {"working_seconds": 1.5}),
    ValueCase("explicit_str_tag", "command: [x, !!str no]", {"command": ("x", "no")}),
    ValueCase(
        "safe_patterns_load",
        "command: [x]\n    waiting: ['(?:\\d++\\.)+x', '(?>a+)+$', '(?:foo|bar)x', ' *x* *y',"
        " '\\s*\\n\\s*z']",
        {
            "waiting": tuple(
                re.compile(p, re.MULTILINE)
                for p in (r"(?:\d++\.)+x", "(?>a+)+$", "(?:foo|bar)x", " *x* *y", r"\s*\n\s*z")
            )
        },
    ),
    ValueCase(
        "number_pattern_is_text",
        "command: [x]\n    waiting: [404]",
        {"waiting": (re.compile("404", re.MULTILINE),)},
    ),
]


@pytest.mark.parametrize("case", VALUE_CASES, ids=lambda c: c.test_id)
def test_profile_values(case: ValueCase, tmp_path: Path, no_builtins: None) -> None:
    project(tmp_path, f"agents:\n  a:\n    {case.body}\n")
    profile = load_config(tmp_path).profile("a")
    for attr, value in case.expected.items():
        assert getattr(profile, attr) == value, attr


def test_profile_is_frozen_and_config_read_only(tmp_path: Path) -> None:
    cfg = load_config(tmp_path)
    with pytest.raises(AttributeError):
        cfg.profile("claude").command = ("x",)  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.agents["x"] = cfg.profile("claude")  # type: ignore[index]


# --- errors ------------------------------------------------------------------------------


class ErrorCase(NamedTuple):
    test_id: str
    text: str | bytes
    message: str  # after ".amux/config.yaml:"


EXPONENTIAL = (
    "repeating something that can itself match in more than one way, like (a+)+, (a|a)* or "
    "(a?){9}, can take exponential time; make the inner part possessive (a++) or atomic (?>...)"
)
POLYNOMIAL = (
    "two open-ended repeats in a row, like .*.* or \\s*\\s*, can take polynomial time; "
    "separate them with fixed text"
)
A = "agents:\n  claude:\n"  # lines 1-2 of most cases; the profile's keys start on line 3
AGENT_KEYS = "(known: command, env, secrets, resume, waiting, working_seconds)"
ERROR_CASES = [
    ErrorCase(
        "not_yaml",
        "agents:\n  claude: [\n",
        "3: not valid YAML: while parsing a flow node: did not find expected node content",
    ),
    ErrorCase(
        "bad_indentation",
        "agents:\n  claude:\n    command: [x]\n   env: [A]\n",
        "4: not valid YAML: while parsing a block mapping: did not find expected key",
    ),
    ErrorCase(
        "tab_indentation",
        "agents:\n\tclaude: {}\n",
        "2: not valid YAML: while scanning for the next token: found character that "
        "cannot start any token",
    ),
    ErrorCase(
        "two_documents",
        "agents: {}\n---\nagents: {}\n",
        "2: not valid YAML: expected a single document in the stream: but found another document",
    ),
    ErrorCase(
        "top_is_a_list",
        "- claude\n- codex\n",
        "1: expected a mapping with an 'agents:' key at the top level, got a list",
    ),
    ErrorCase(
        "top_is_text",
        "claude\n",
        "1: expected a mapping with an 'agents:' key at the top level, got text",
    ),
    ErrorCase(
        "unknown_top_key_suggested",
        "agent:\n  claude: {command: [x]}\n",
        "1: agent: unknown key; did you mean 'agents'? (known: agents)",
    ),
    ErrorCase("unknown_top_key", "\n\nprofiles: {}\n", "3: profiles: unknown key (known: agents)"),
    ErrorCase(
        "agents_is_a_list",
        "agents: [claude]\n",
        "1: agents: expected a mapping of agent names to profiles, got a list",
    ),
    ErrorCase(
        "profile_is_text",
        "agents:\n  claude: claude\n",
        "2: agents.claude: expected a mapping of profile keys, got text",
    ),
    ErrorCase(
        "profile_is_null",
        "agents:\n  claude:\n",
        "2: agents.claude: expected a mapping of profile keys, got nothing (null)",
    ),
    ErrorCase(
        "unknown_agent_key_suggested",
        A + "    command: [x]\n    comand: [y]\n",
        f"4: agents.claude.comand: unknown key; did you mean 'command'? {AGENT_KEYS}",
    ),
    ErrorCase(
        "unknown_agent_key_secret",
        A + "    command: [x]\n    secret: [K]\n",
        f"4: agents.claude.secret: unknown key; did you mean 'secrets'? {AGENT_KEYS}",
    ),
    ErrorCase(
        "unknown_agent_key",
        A + "    command: [x]\n    colour: red\n",
        f"4: agents.claude.colour: unknown key {AGENT_KEYS}",
    ),
    ErrorCase(
        "missing_command", A + "    env: [A]\n", "2: agents.claude: missing required key 'command'"
    ),
    ErrorCase(
        "empty_command_list", A + "    command: []\n", "3: agents.claude.command: empty command"
    ),
    ErrorCase(
        "empty_command_string",
        A + "    command: '  '\n",
        "3: agents.claude.command: empty command",
    ),
    ErrorCase(
        "empty_program",
        A + "    command: ['', x]\n",
        "3: agents.claude.command: the program name is empty",
    ),
    ErrorCase(
        "null_command",
        A + "    command:\n",
        "3: agents.claude.command: missing value (expected text)",
    ),
    ErrorCase(
        "command_is_a_mapping",
        A + "    command: {run: x}\n",
        "3: agents.claude.command: expected a list of words or one string, got a mapping",
    ),
    ErrorCase(
        "command_word_is_a_list",
        A + "    command:\n      - x\n      - [y]\n",
        "5: agents.claude.command[1]: expected text, got a list",
    ),
    ErrorCase(
        "yaml11_on_in_command",
        A + "    command: [aider, --yes, on]\n",
        "3: agents.claude.command[2]: on is read as a boolean; quote it ('on') to mean the text",
    ),
    ErrorCase(
        "yaml11_no_as_command",
        A + "    command: no\n",
        "3: agents.claude.command: no is read as a boolean; quote it ('no') to mean the text",
    ),
    ErrorCase(
        "null_word",
        A + "    command:\n      - x\n      -\n",
        "5: agents.claude.command[1]: missing value (expected text)",
    ),
    ErrorCase(
        "unbalanced_quote",
        A + '    command: "claude \'oops"\n',
        "3: agents.claude.command: cannot be split into words: No closing quotation",
    ),
    ErrorCase(
        "nul_in_word",
        A + '    command: ["cl\\0aude"]\n',
        "3: agents.claude.command: word 0 contains a NUL character",
    ),
    ErrorCase(
        "resume_empty",
        A + "    command: [x]\n    resume: []\n",
        "4: agents.claude.resume: empty command",
    ),
    ErrorCase(
        "env_name_with_dash",
        A + "    command: [x]\n    env: [OK, ANTHROPIC-KEY]\n",
        "4: agents.claude.env[1]: 'ANTHROPIC-KEY' is not a valid environment variable "
        "name (letters, digits and '_', not starting with a digit)",
    ),
    ErrorCase(
        "env_name_leading_digit",
        A + "    command: [x]\n    secrets:\n      - 1KEY\n",
        "5: agents.claude.secrets[0]: '1KEY' is not a valid environment variable name "
        "(letters, digits and '_', not starting with a digit)",
    ),
    ErrorCase(
        "env_name_is_a_mapping",
        A + "    command: [x]\n    env: {A: 1}\n",
        "4: agents.claude.env: expected a list, got a mapping",
    ),
    ErrorCase(
        "env_reserved",
        A + "    command: [x]\n    env: [AMUX_ROOT]\n",
        "4: agents.claude.env[0]: AMUX_ROOT is set by amux itself",
    ),
    ErrorCase(
        "secret_also_in_env",
        A + "    command: [x]\n    env: [K]\n    secrets:\n      - K\n",
        "6: agents.claude.secrets: K is also listed in env; a secret belongs under secrets only",
    ),
    ErrorCase(
        "regex_unbalanced",
        A + "    command: [x]\n    waiting:\n      - ok\n      - 'a)b'\n",
        "6: agents.claude.waiting[1]: not a valid regular expression (unbalanced parenthesis)",
    ),
    ErrorCase(
        "regex_unterminated",
        A + "    command: [x]\n    waiting: 'a(b'\n",
        "4: agents.claude.waiting: not a valid regular expression (missing ), "
        "unterminated subpattern)",
    ),
    ErrorCase(
        "regex_matches_empty",
        A + "    command: [x]\n    waiting: ['x*']\n",
        "4: agents.claude.waiting[0]: pattern matches empty text, so every screen would "
        "look like waiting",
    ),
    ErrorCase(
        "regex_anchor_only",
        A + "    command: [x]\n    waiting: ['^']\n",
        "4: agents.claude.waiting[0]: pattern matches empty text, so every screen would "
        "look like waiting",
    ),
    ErrorCase(
        "regex_nested_repeat",
        A + "    command: [x]\n    waiting: ['(a+)+$']\n",
        "4: agents.claude.waiting[0]: " + EXPONENTIAL,
    ),
    ErrorCase(
        "regex_nested_in_branch",
        A + "    command: [x]\n    waiting: ['z|(?:x\\s*y)*q']\n",
        "4: agents.claude.waiting[0]: " + EXPONENTIAL,
    ),
    ErrorCase(
        "regex_repeated_alternation",
        A + "    command: [x]\n    waiting: ['(a|a)+$']\n",
        "4: agents.claude.waiting[0]: " + EXPONENTIAL,
    ),
    ErrorCase(
        "regex_repeated_optional",
        A + "    command: [x]\n    waiting: ['(?:a?){30}a{30}']\n",
        "4: agents.claude.waiting[0]: " + EXPONENTIAL,
    ),
    ErrorCase(
        "regex_adjacent_wildcards",
        A + "    command: [x]\n    waiting: ['.*.*x']\n",
        "4: agents.claude.waiting[0]: " + POLYNOMIAL,
    ),
    ErrorCase(
        "regex_adjacent_blanks",
        A + "    command: [x]\n    waiting: ['\\s*\\s*x']\n",
        "4: agents.claude.waiting[0]: " + POLYNOMIAL,
    ),
    ErrorCase(
        "regex_adjacent_with_optional_between",
        A + "    command: [x]\n    waiting: ['a*b?[ab]*c']\n",
        "4: agents.claude.waiting[0]: " + POLYNOMIAL,
    ),
    ErrorCase(
        "regex_adjacent_groups",
        A + "    command: [x]\n    waiting: ['(.*)(.*)x']\n",
        "4: agents.claude.waiting[0]: " + POLYNOMIAL,
    ),
    ErrorCase(
        "regex_backreference",
        A + "    command: [x]\n    waiting: ['(a*)\\1*b']\n",
        "4: agents.claude.waiting[0]: backreferences (\\1, (?P=name)) can take exponential time",
    ),
    ErrorCase(
        "regex_too_long",
        A + "    command: [x]\n    waiting: ['" + "a" * 1001 + "']\n",
        "4: agents.claude.waiting[0]: pattern is longer than 1000 characters",
    ),
    ErrorCase(
        "too_many_patterns",
        A + "    command: [x]\n    waiting: [" + ", ".join(["a"] * 65) + "]\n",
        "4: agents.claude.waiting: more than 64 patterns",
    ),
    ErrorCase(
        "seconds_text",
        A + "    command: [x]\n    working_seconds: 3s\n",
        "4: agents.claude.working_seconds: expected a number of seconds, got text '3s'",
    ),
    ErrorCase(
        "seconds_bool",
        A + "    command: [x]\n    working_seconds: yes\n",
        "4: agents.claude.working_seconds: expected a number of seconds, got a boolean (yes)",
    ),
    ErrorCase(
        "seconds_negative",
        A + "    command: [x]\n    working_seconds: -1\n",
        "4: agents.claude.working_seconds: must be between 0 and 3600 seconds",
    ),
    ErrorCase(
        "seconds_infinite",
        A + "    command: [x]\n    working_seconds: .inf\n",
        "4: agents.claude.working_seconds: must be between 0 and 3600 seconds",
    ),
    ErrorCase(
        "seconds_nan",
        A + "    command: [x]\n    working_seconds: .nan\n",
        "4: agents.claude.working_seconds: must be between 0 and 3600 seconds",
    ),
    ErrorCase(
        "seconds_huge_int",
        A + "    command: [x]\n    working_seconds: " + "9" * 5000 + "\n",
        "4: agents.claude.working_seconds: '" + "9" * 56 + "... is not a usable number",
    ),
    ErrorCase(
        "agent_name_with_space",
        "agents:\n  'bad name':\n    command: [x]\n",
        "2: agents: invalid agent name 'bad name': expected 1-64 letters, digits, '.', "
        "'_' or '-', starting with a letter or digit",
    ),
    ErrorCase(
        "agent_name_leading_dash",
        "agents:\n  -x:\n    command: [x]\n",
        "2: agents: invalid agent name '-x': expected 1-64 letters, digits, '.', '_' or "
        "'-', starting with a letter or digit",
    ),
    ErrorCase(
        "agent_name_too_long",
        "agents:\n  " + "a" * 65 + ":\n    command: [x]\n",
        "2: agents: invalid agent name '" + "a" * 56 + "...: expected 1-64 letters, "
        "digits, '.', '_' or '-', starting with a letter or digit",
    ),
    ErrorCase(
        "agent_name_yaml11_bool",
        "agents:\n  no:\n    command: [x]\n",
        "2: agents: no is read as a boolean; quote it ('no') to mean the text",
    ),
    ErrorCase(
        "agent_name_is_a_list",
        "agents:\n  ? [a, b]\n  : {command: [x]}\n",
        "2: agents: a key must be plain text, got a list",
    ),
    ErrorCase(
        "duplicate_agent",
        "agents:\n  a: {command: [x]}\n  a: {command: [y]}\n",
        "3: agents.a: duplicate key (first on line 2)",
    ),
    ErrorCase(
        "duplicate_profile_key",
        A + "    command: [x]\n    command: [y]\n",
        "4: agents.claude.command: duplicate key (first on line 3)",
    ),
    ErrorCase(
        "anchor_and_alias",
        "base: &b [claude]\nagents:\n  claude:\n    command: *b\n",
        "1: anchors and aliases (&name, *name) are not allowed",
    ),
    ErrorCase(
        "alias_bomb",
        "a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n",
        "1: anchors and aliases (&name, *name) are not allowed",
    ),
    ErrorCase(
        "python_tag",
        A + "    command: !!python/object/apply:os.system ['touch /tmp/x']\n",
        "3: tags are not allowed ('tag:yaml.org,2002:python/object/apply:os.system')",
    ),
    ErrorCase("local_tag", A + "    command: !cmd [x]\n", "3: tags are not allowed ('!cmd')"),
    ErrorCase(
        "deep_flow_nesting",
        "agents: " + "[" * 40 + "]" * 40 + "\n",
        "1: nested more than 16 levels deep",
    ),
    ErrorCase(
        "deep_block_nesting",
        "".join("  " * i + f"k{i}:\n" for i in range(30)) + "  " * 30 + "v\n",
        "17: nested more than 16 levels deep",
    ),
    ErrorCase(
        "control_character",
        A + "    command: [x\x07]\n",
        "3: not valid YAML: control characters are not allowed",
    ),
    ErrorCase("not_utf8", b"agents:\n  claude:\n    command: [\xff]\n", "3: not UTF-8 (byte 32)"),
]


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.test_id)
def test_errors_name_file_line_and_key(case: ErrorCase, tmp_path: Path) -> None:
    project(tmp_path, case.text)
    with pytest.raises(exc.ConfigError) as caught:
        load_config(tmp_path)
    assert str(caught.value) == ".amux/config.yaml:" + case.message
    assert "\n" not in str(caught.value)
    assert caught.value.exit_code == exc.EXIT_USAGE


class FileErrorCase(NamedTuple):
    test_id: str
    make: str
    message: str  # after the file name


FILE_ERROR_CASES = [
    FileErrorCase("too_big", "big", ": file is 300000 bytes, over the 262144 byte limit"),
    FileErrorCase("fifo", "fifo", ": not a regular file"),
    FileErrorCase("directory", "dir", ": not a regular file"),
    FileErrorCase("symlink_loop", "loop", ": cannot read: Too many levels of symbolic links"),
]


@pytest.mark.parametrize("case", FILE_ERROR_CASES, ids=lambda c: c.test_id)
def test_unusable_files(case: FileErrorCase, tmp_path: Path) -> None:
    path = tmp_path / ".amux" / "config.yaml"
    path.parent.mkdir()
    if case.make == "big":
        path.write_text("# " + "x" * (300000 - 3) + "\n")
    elif case.make == "fifo":
        os.mkfifo(path)  # must not hang
    elif case.make == "dir":
        path.mkdir()
    elif case.make == "loop":
        path.symlink_to(path)
    with pytest.raises(exc.ConfigError) as caught:
        load_config(tmp_path)
    assert str(caught.value) == ".amux/config.yaml" + case.message


def test_unreadable_file(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    path = project(tmp_path, "agents: {}\n")
    path.chmod(0)
    with pytest.raises(exc.ConfigError, match=r"^\.amux/config\.yaml: cannot read: "):
        load_config(tmp_path)


def test_errors_in_the_user_layer_name_the_user_file(tmp_path: Path) -> None:
    user = write(tmp_path / "elsewhere" / "user.yaml", "agents:\n  a:\n    command: []\n")
    with pytest.raises(exc.ConfigError) as caught:
        load_config(tmp_path / "proj", user)
    assert str(caught.value) == "elsewhere/user.yaml:3: agents.a.command: empty command"


def test_errors_outside_the_cwd_show_absolute_paths(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    os.chdir(work)
    project(tmp_path / "proj", "agents: [x]\n")
    with pytest.raises(exc.ConfigError) as caught:
        load_config(tmp_path / "proj")
    assert str(caught.value).startswith(f"{tmp_path}/proj/.amux/config.yaml:1: agents: ")


def test_a_hostile_key_stays_one_short_line(tmp_path: Path) -> None:
    project(tmp_path, 'agents:\n  a:\n    command: [x]\n    "evil\\nkey' + "k" * 200 + '": 1\n')
    with pytest.raises(exc.ConfigError) as caught:
        load_config(tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(".amux/config.yaml:4: 'agents.a.evil\\nkey")
    assert len(message) < 200


def test_bom_is_ignored(tmp_path: Path, no_builtins: None) -> None:
    project(tmp_path, "\ufeffagents:\n  a:\n    command: [x]\n")
    assert load_config(tmp_path).profile("a").command == ("x",)


# --- the shipped profiles ------------------------------------------------------------------


def test_packaged_profiles_are_a_symlink_to_the_example() -> None:
    builtin = REPO / "amux_tmux" / "profiles.yaml"
    assert builtin.is_symlink()
    assert os.readlink(builtin) == "../examples/config.yaml"
    assert builtin.resolve() == (EXAMPLES / "config.yaml").resolve()
    assert builtin == config.BUILTIN_PROFILES


@pytest.mark.parametrize("name", SHIPPED_AGENTS)
def test_every_shipped_profile_is_complete(name: str, tmp_path: Path) -> None:
    profile = load_config(tmp_path).profile(name)
    assert profile.command[0] == name
    assert profile.resume and profile.resume[0] == name
    assert profile.waiting
    assert profile.secrets
    assert profile.working_seconds == 3.0
    assert profile.source == os.path.abspath(config.BUILTIN_PROFILES)


def test_the_example_file_loads_as_a_project_config(tmp_path: Path, no_builtins: None) -> None:
    project(tmp_path, (EXAMPLES / "config.yaml").read_bytes())
    cfg = load_config(tmp_path)
    assert tuple(cfg.agents) == SHIPPED_AGENTS


# --- waiting: screens captured from Claude Code 2.1.197 (tmux 3.3a, capture-pane -p) --------

RULE = "─" * 60
CLAUDE_BASH_PROMPT = [
    "● Bash(touch /tmp/amux-fake-tool-ran)",
    "  ⎿ \xa0Waiting…",
    "",
    RULE,
    " Bash command",
    "",
    "   touch /tmp/amux-fake-tool-ran",
    "   Create a marker file",
    "",
    " Do you want to proceed?",
    " ❯ 1. Yes",
    "   2. Yes, and always allow access to tmp/ from this project",
    "   3. No",
    "",
    " Esc to cancel · Tab to amend · ctrl+e to explain",
    "",
    "",
]
CLAUDE_WRITE_PROMPT = [
    "● Write(new_file.txt)",
    "",
    RULE,
    " Create file",
    " new_file.txt",
    "╌" * 60,
    "  1 hello",
    "╌" * 60,
    " Do you want to create new_file.txt?",
    " ❯ 1. Yes",
    "   2. Yes, allow all edits during this session (shift+tab)",
    "   3. No",
    "",
    " Esc to cancel · Tab to amend",
]
CLAUDE_FETCH_PROMPT = [
    "● Fetch(https://example.com/)",
    "",
    RULE,
    " Fetch",
    "",
    '   url: "https://example.com/", prompt: "summarise"',
    "   Claude wants to fetch content from example.com",
    "",
    " Do you want to allow Claude to fetch this content?",
    " ❯ 1. Yes",
    "   2. Yes, and don't ask again for example.com",
    "   3. No, and tell Claude what to do differently (esc)",
]
CLAUDE_NARROW_WRITE_PROMPT = [  # a 40-column pane: the menu wraps
    " Do you want to create new_file.txt?",
    " ❯ 1. Yes",
    "   2. Yes, allow all edits during this",
    "      session (shift+tab)",
    "   3. No",
    "",
    " Esc to cancel · Tab to amend",
]
CLAUDE_TRUST_PROMPT = [
    " Accessing workspace:",
    "",
    " /tmp/cfgtest/proj2",
    "",
    " Quick safety check: Is this a project you created or one you trust? (Like your own code, a",
    " well-known open source project, or work from your team). If not, take a moment to review",
    " this folder first.",
    "",
    " Security guide",
    "",
    " ❯ 1. Yes, I trust this folder",
    "   2. No, exit",
    "",
    " Enter to confirm · Esc to cancel",
]
CLAUDE_IDLE = [
    "╰" + "─" * 58 + "╯",
    "",
    "",
    RULE,
    "❯",
    RULE,
    "  ? for shortcuts · ← for agents                                ● high · /effort",
]
CLAUDE_WORKING = [
    "❯ SLOW please think",
    "",
    "✽ Pollinating…",
    "  ⎿ \xa0Tip: Start with small features or bug fixes, tell Claude to propose a plan, and",
    "     suggested edits",
    "",
    RULE,
    "❯",
    RULE,
    "  esc to interrupt · ← for agents",
]
CLAUDE_AFTER_YES = [
    "❯ Please RUN-TOOL now",
    "",
    "● Bash(touch /tmp/amux-fake-tool-ran)",
    "  ⎿ \xa0Done",
    "",
    "● FAKE-REPLY lines=1",
    "",
    "✻ Cogitated for 0s",
    "",
    RULE,
    "❯",
    RULE,
    "  ? for shortcuts · ← for agents                                ● high · /effort",
]
CLAUDE_AFTER_NO = [
    "❯ Please RUN-WRITE now",
    "",
    "● Write(new_file.txt)",
    "  ⎿ \xa0User rejected write to new_file.txt",
    "      1 hello",
    "",
    RULE,
    "❯",
    RULE,
    "  ? for shortcuts · ← for agents",
]
# Not captured: a model reply that asks in prose, with no menu under it.
CLAUDE_PROSE_QUESTION = [
    "● I can delete the build directory. Do you want to proceed?",
    "",
    "  Do you want to proceed?",
    "",
    RULE,
    "❯",
    RULE,
    "  ? for shortcuts · ← for agents",
]
# Built from the agents' sources (see the comments in examples/config.yaml), not captured.
CODEX_EXEC_PROMPT = [
    "  Would you like to run the following command?",
    "",
    "  $ rm -rf build",
    "",
    "› 1. Yes, proceed",
    "  2. Yes, and don't ask again for this command",
    "  3. No, and tell Codex what to do differently esc",
    "",
    "  Press enter to confirm or esc to cancel",
]
CODEX_AFTER = ["✔ You approved codex to run rm -rf build this time", "", "› Ask Codex anything"]
GEMINI_EXEC_PROMPT = [
    "│ ?  Shell rm -rf build                                                │",
    "│                                                                      │",
    "│ rm -rf build                                                         │",
    "│                                                                      │",
    "│ Allow execution of: 'rm'?                                            │",
    "│                                                                      │",
    "│ ● 1. Allow once                                                      │",
    "│   2. Allow for this session                                          │",
    "│   3. No, suggest changes (esc)                                       │",
]
GEMINI_IDLE = ["╭────────╮", "│ >   Type your message or @path/to/file │", "╰────────╯"]
AIDER_CONFIRM = [
    "Add file to the chat? (Y)es/(N)o/(A)ll/(S)kip all/(D)on't ask again [Yes]: ",
]
AIDER_ANSWERED = [
    "Add file to the chat? (Y)es/(N)o/(A)ll/(S)kip all/(D)on't ask again [Yes]: y",
    "",
    "Applied edit to hello.py",
    "> ",
]


class ScreenCase(NamedTuple):
    test_id: str
    agent: str
    screen: list[str]
    waiting: bool


SCREEN_CASES = [
    ScreenCase("claude_bash_permission", "claude", CLAUDE_BASH_PROMPT, True),
    ScreenCase("claude_write_permission", "claude", CLAUDE_WRITE_PROMPT, True),
    ScreenCase("claude_fetch_permission", "claude", CLAUDE_FETCH_PROMPT, True),
    ScreenCase("claude_narrow_pane", "claude", CLAUDE_NARROW_WRITE_PROMPT, True),
    ScreenCase("claude_question_scrolled_off", "claude", CLAUDE_BASH_PROMPT[10:], True),
    ScreenCase(
        "claude_cursor_on_second_option",
        "claude",
        [" Do you want to proceed?", "   1. Yes", " ❯ 2. Yes, and don't ask again"],
        True,
    ),
    ScreenCase("claude_trust_folder", "claude", CLAUDE_TRUST_PROMPT, True),
    ScreenCase("claude_idle", "claude", CLAUDE_IDLE, False),
    ScreenCase("claude_working", "claude", CLAUDE_WORKING, False),
    ScreenCase("claude_after_yes", "claude", CLAUDE_AFTER_YES, False),
    ScreenCase("claude_after_no", "claude", CLAUDE_AFTER_NO, False),
    ScreenCase("claude_prose_question", "claude", CLAUDE_PROSE_QUESTION, False),
    ScreenCase(
        "claude_prompt_above_last_30_lines", "claude", CLAUDE_BASH_PROMPT + ["output"] * 30, False
    ),
    ScreenCase("claude_empty_screen", "claude", [], False),
    ScreenCase("codex_exec_approval", "codex", CODEX_EXEC_PROMPT, True),
    ScreenCase("codex_after_approval", "codex", CODEX_AFTER, False),
    ScreenCase("codex_ignores_claude_prompt", "codex", CLAUDE_BASH_PROMPT, False),
    ScreenCase("gemini_exec_confirmation", "gemini", GEMINI_EXEC_PROMPT, True),
    ScreenCase("gemini_idle", "gemini", GEMINI_IDLE, False),
    ScreenCase("aider_confirm", "aider", AIDER_CONFIRM, True),
    ScreenCase("aider_confirm_no_default", "aider", ["Run shell command? (Y)es/(N)o [No]:"], True),
    ScreenCase("aider_answered", "aider", AIDER_ANSWERED, False),
]


@pytest.mark.parametrize("case", SCREEN_CASES, ids=lambda c: c.test_id)
def test_is_waiting_on_screens(case: ScreenCase, tmp_path: Path) -> None:
    profile = load_config(tmp_path).profile(case.agent)
    assert profile.is_waiting(case.screen) is case.waiting
    assert profile.is_waiting("\n".join(case.screen)) is case.waiting


class TailCase(NamedTuple):
    test_id: str
    lines: list[str]
    expected: str


TAIL_CASES = [
    TailCase("trailing_blank_lines_dropped", ["a", "b", "", "  ", ""], "a\nb"),
    TailCase(
        "last_30_lines", [str(i) for i in range(40)], "\n".join(str(i) for i in range(10, 40))
    ),
    TailCase("lines_cut_to_500", ["x" * 600 + "PROMPT?"], "x" * 500),
    TailCase("trailing_blanks_trimmed", ["ask?   ", "  menu  "], "ask?\n  menu"),
    TailCase("empty", [], ""),
]


@pytest.mark.parametrize("case", TAIL_CASES, ids=lambda c: c.test_id)
def test_screen_tail(case: TailCase) -> None:
    assert screen_tail(case.lines) == case.expected


def test_is_waiting_is_bounded_on_huge_hostile_output(tmp_path: Path, no_builtins: None) -> None:
    # The worst the shipped Claude patterns can meet: question marks and endless blanks.
    project(tmp_path, (EXAMPLES / "config.yaml").read_bytes())
    profile = load_config(tmp_path).profile("claude")
    screen = [("Do you want to " + "?" * 200 + " " * 300)] * 100_000
    start = time.monotonic()
    assert profile.is_waiting(screen) is False
    assert time.monotonic() - start < 1.0


def test_patterns_are_compiled_at_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    profile = load_config(tmp_path).profile("claude")
    assert all(isinstance(p, re.Pattern) and p.flags & re.MULTILINE for p in profile.waiting)

    def no_compiling(*args: object, **kwargs: object) -> None:
        raise AssertionError("compiled while matching")

    for name in ("compile", "search", "match"):
        monkeypatch.setattr(re, name, no_compiling)
    assert profile.is_waiting(CLAUDE_BASH_PROMPT)


def test_a_profile_without_patterns_never_waits() -> None:
    profile = Profile("x", ("x",), (), (), None, (), 3.0, "here")
    assert profile.is_waiting(["Do you want to proceed?", " ❯ 1. Yes"]) is False


# --- unknown agents ------------------------------------------------------------------------


class UnknownCase(NamedTuple):
    test_id: str
    builtins: bool
    name: str
    message: str


UNKNOWN_CASES = [
    UnknownCase(
        "suggests_closest",
        True,
        "claud",
        "unknown agent 'claud' (did you mean 'claude'?); known agents: aider, claude, "
        "codex, gemini",
    ),
    UnknownCase(
        "lists_known",
        True,
        "vim",
        "unknown agent 'vim'; known agents: aider, claude, codex, gemini",
    ),
    UnknownCase(
        "says_where_profiles_live",
        False,
        "claude",
        "unknown agent 'claude': no agent profiles are defined; add one under "
        "'agents:' in .amux/config.yaml or ~/.config/amux-tmux/config.yaml",
    ),
    UnknownCase(
        "long_name_cut",
        True,
        "z" * 100,
        "unknown agent '" + "z" * 37 + "...'; known agents: aider, claude, codex, gemini",
    ),
]


@pytest.mark.parametrize("case", UNKNOWN_CASES, ids=lambda c: c.test_id)
def test_unknown_agent(case: UnknownCase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not case.builtins:
        monkeypatch.setattr(config, "BUILTIN_PROFILES", tmp_path / "none.yaml")
    with pytest.raises(exc.UnknownAgent) as caught:
        load_config(tmp_path).profile(case.name)
    assert str(caught.value) == case.message
    assert caught.value.exit_code == exc.EXIT_USAGE


def test_empty_config_has_no_agents(tmp_path: Path, no_builtins: None) -> None:
    assert load_config(tmp_path) == Config(agents={}, files=())


# --- the user config path ------------------------------------------------------------------


class UserPathCase(NamedTuple):
    test_id: str
    environ: dict[str, str]
    expected: str | None


USER_PATH_CASES = [
    UserPathCase("xdg", {"XDG_CONFIG_HOME": "/c", "HOME": "/h"}, "/c/amux-tmux/config.yaml"),
    UserPathCase("home", {"HOME": "/h"}, "/h/.config/amux-tmux/config.yaml"),
    UserPathCase(
        "relative_xdg_ignored",
        {"XDG_CONFIG_HOME": "c", "HOME": "/h"},
        "/h/.config/amux-tmux/config.yaml",
    ),
    UserPathCase(
        "empty_xdg_ignored",
        {"XDG_CONFIG_HOME": "", "HOME": "/h"},
        "/h/.config/amux-tmux/config.yaml",
    ),
    UserPathCase("no_home", {}, None),
    UserPathCase("relative_home", {"HOME": "h"}, None),
]


@pytest.mark.parametrize("case", USER_PATH_CASES, ids=lambda c: c.test_id)
def test_user_config_path(case: UserPathCase) -> None:
    got = user_config_path(case.environ)
    assert (str(got) if got else None) == case.expected


# --- imports -------------------------------------------------------------------------------


def test_importing_config_does_not_import_yaml() -> None:
    code = "import sys, amux_tmux.config; print('yaml' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- examples/claude-code-hooks.json -------------------------------------------------------

HOOKS = json.loads((EXAMPLES / "claude-code-hooks.json").read_text())
HOOK_EVENTS = {
    "UserPromptSubmit": "working",
    "PreToolUse": "working",
    "PostToolUse": "working",
    "Notification": "waiting",
    "Stop": "idle",
}


def test_hooks_have_claude_codes_shape() -> None:
    assert set(HOOKS) == {"hooks"}
    assert set(HOOKS["hooks"]) == set(HOOK_EVENTS)
    for groups in HOOKS["hooks"].values():
        assert isinstance(groups, list) and groups
        for group in groups:
            assert set(group) <= {"matcher", "hooks"}
            assert isinstance(group.get("matcher", ""), str)
            for hook in group["hooks"]:
                assert hook["type"] == "command"
                assert isinstance(hook["command"], str)
                assert isinstance(hook.get("timeout", 1), int)


class HookCase(NamedTuple):
    test_id: str
    session: str | None  # AMUX_SESSION_ID, None: unset
    amux_exit: int  # what the fake amux-tmux returns
    exit_code: int  # what Claude Code must see


HOOK_CASES = [
    HookCase("outside_amux_does_nothing", None, 0, 0),
    HookCase("empty_session_does_nothing", "", 0, 0),
    HookCase("inside_amux_marks", "abc123", 0, 0),
    # Exit 2 would make Claude Code block the prompt or refuse to stop; a failure must stay 1.
    HookCase("failure_is_never_blocking", "abc123", 2, 1),
]


@pytest.mark.parametrize("case", HOOK_CASES, ids=lambda c: c.test_id)
@pytest.mark.parametrize("event", sorted(HOOK_EVENTS))
def test_hook_commands(event: str, case: HookCase, tmp_path: Path) -> None:
    if shutil.which("sh") is None:
        pytest.skip("no sh")
    calls = tmp_path / "calls"
    fake = write(
        tmp_path / "bin" / "amux-tmux",
        f'#!/bin/sh\necho "$* $AMUX_SESSION_ID" >> {calls}\necho noise\nexit {case.amux_exit}\n',
    )
    fake.chmod(0o755)
    env = {"PATH": f"{fake.parent}:/usr/bin:/bin", "AMUX_ROOT": str(tmp_path)}
    if case.session is not None:
        env["AMUX_SESSION_ID"] = case.session
    for group in HOOKS["hooks"][event]:
        for hook in group["hooks"]:
            done = subprocess.run(
                ["sh", "-c", hook["command"]], env=env, capture_output=True, text=True, check=False
            )
            assert done.returncode == case.exit_code
            assert done.stdout == ""  # UserPromptSubmit stdout would reach the model
    expected = f"mark {HOOK_EVENTS[event]} {case.session}\n" if case.session else None
    assert (calls.read_text() if calls.exists() else None) == expected
