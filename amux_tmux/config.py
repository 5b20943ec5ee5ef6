"""Agent profiles from ``.amux/config.yaml`` and its layers (ADR-013: YAML for configuration).

A profile says how to run one kind of agent::

    agents:
      claude:
        command: [claude]                 # argv; one string is split like a shell would
        env: [ANTHROPIC_BASE_URL]         # names copied from the caller's environment when set
        secrets: [ANTHROPIC_API_KEY]      # names always masked, handed over like secrets when set
        resume: [claude, --continue]      # argv for `restart --resume` and `recover`
        waiting: ['Do you want to proceed\\?']   # regexes: on the last lines, "waits for input"
        working_seconds: 3                # output this recent means "working"

Three layers are read, a later one replacing a whole profile of the same name: the built-in
profiles shipped with the package (``amux_tmux/profiles.yaml``, the same file as
``examples/config.yaml``), the user's file, then ``<root>/.amux/config.yaml``. A missing file
is skipped; nothing is ever created or cached.

The files are the user's, but a project file may come with a cloned repository, so they are
read like hostile input: size, anchors, tags and nesting are refused as in
:mod:`amux_tmux.store.codec`, and every mistake is one :class:`~amux_tmux.exc.ConfigError` line
naming file, line and key. PyYAML is imported only when a file is read.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import stat
import types
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from amux_tmux import exc

PROJECT_CONFIG = Path(".amux") / "config.yaml"
BUILTIN_PROFILES = Path(__file__).with_name("profiles.yaml")

MAX_CONFIG_BYTES = 256 * 1024
# A config needs four levels (top, agents, profile, list); anything much deeper is an attack
# on the recursive composer, and is refused while still streaming events.
MAX_DEPTH = 16
MAX_PATTERNS = 64
MAX_PATTERN_CHARS = 1000
MAX_WORKING_SECONDS = 3600.0
DEFAULT_WORKING_SECONDS = 3.0
# What is_waiting looks at: a prompt is drawn at the bottom of the pane, and bounding the
# text bounds the work any one pattern can do on huge output.
WAIT_LINES = 30
WAIT_LINE_CHARS = 500

AGENT_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# amux sets these itself for every agent; a profile must not take them from the caller.
RESERVED_ENV = frozenset({"AMUX_SESSION_ID", "AMUX_ROOT"})

TOP_KEYS = ("agents",)
AGENT_KEYS = ("command", "env", "secrets", "resume", "waiting", "working_seconds")

_TAG = "tag:yaml.org,2002:"
_NULL, _BOOL, _STR = _TAG + "null", _TAG + "bool", _TAG + "str"
_NUMBER_TAGS = frozenset({_TAG + "int", _TAG + "float"})


@dataclasses.dataclass(frozen=True, slots=True)
class Profile:
    """How to run one kind of agent.

    Attributes
    ----------
    name
        The agent name (``start NAME``).
    command
        The argv to run; ``start NAME -- ARGS`` appends ARGS.
    env
        Names of variables copied from the caller's environment when set there.
    secrets
        Names of variables that are always masked in records and logs.
    resume
        The argv that continues the agent's last conversation, or ``None``.
    waiting
        Compiled patterns (``re.MULTILINE``) that mean "waits for input" on the screen.
    working_seconds
        Output within this many seconds means the agent is working.
    source
        Absolute path of the file that defined the profile.
    """

    name: str
    command: tuple[str, ...]
    env: tuple[str, ...]
    secrets: tuple[str, ...]
    resume: tuple[str, ...] | None
    waiting: tuple[re.Pattern[str], ...]
    working_seconds: float
    source: str

    def is_waiting(self, lines: Sequence[str]) -> bool:
        """Tell whether a screen shows one of the profile's "waits for input" prompts.

        Parameters
        ----------
        lines
            The pane's lines, top to bottom (``capture-pane -p`` split into lines); a single
            string is split into lines first.

        Returns
        -------
        bool
            True when any pattern matches the text of :func:`screen_tail`.
        """
        if not self.waiting:
            return False
        text = screen_tail(lines)
        return any(pattern.search(text) for pattern in self.waiting)


@dataclasses.dataclass(frozen=True, slots=True)
class Config:
    """The agent profiles in effect, and the files they came from.

    Attributes
    ----------
    agents
        Read-only mapping of agent name to :class:`Profile`, sorted by name.
    files
        Absolute paths of the files that were read, in layer order.
    """

    agents: Mapping[str, Profile]
    files: tuple[str, ...]

    def profile(self, name: str) -> Profile:
        """Return the profile called ``name``.

        Raises
        ------
        amux_tmux.exc.UnknownAgent
            No layer defines ``name``; the message lists the agents that exist.
        """
        try:
            return self.agents[name]
        except KeyError:
            pass
        import difflib

        close = difflib.get_close_matches(name, list(self.agents), n=1)
        raise exc.UnknownAgent(name, list(self.agents), suggestion=close[0] if close else None)


def screen_tail(lines: Sequence[str] | str) -> str:
    """The text that waiting patterns are matched against.

    Trailing blank lines are dropped (a pane is padded below its content), then the last
    :data:`WAIT_LINES` lines are kept, each cut to :data:`WAIT_LINE_CHARS` characters with its
    trailing blanks removed, and joined with newlines.

    >>> screen_tail(["old", "x" * 600, " Do you want to proceed?  ", "", "   "]).splitlines()[-1]
    ' Do you want to proceed?'
    >>> len(screen_tail(["y" * 600]))
    500
    >>> screen_tail([str(n) for n in range(100)]).splitlines()[0]
    '70'
    """
    if isinstance(lines, str):
        lines = lines.splitlines()
    end = len(lines)
    while end and not lines[end - 1].strip():
        end -= 1
    start = max(0, end - WAIT_LINES)
    return "\n".join(line[:WAIT_LINE_CHARS].rstrip() for line in lines[start:end])


def user_config_path(environ: Mapping[str, str] | None = None) -> Path | None:
    """Where the user's own profiles live, per the XDG base directory spec.

    ``$XDG_CONFIG_HOME/amux-tmux/config.yaml`` when that variable holds an absolute path,
    else ``~/.config/amux-tmux/config.yaml``; ``None`` when no home directory is known.

    >>> str(user_config_path({"XDG_CONFIG_HOME": "/x", "HOME": "/h"}))
    '/x/amux-tmux/config.yaml'
    >>> str(user_config_path({"XDG_CONFIG_HOME": "relative", "HOME": "/h"}))
    '/h/.config/amux-tmux/config.yaml'
    """
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME", "")
    if base and os.path.isabs(base):
        return Path(base) / "amux-tmux" / "config.yaml"
    home = env.get("HOME") or (os.path.expanduser("~") if environ is None else "")
    if not home or not os.path.isabs(home):
        return None
    return Path(home) / ".config" / "amux-tmux" / "config.yaml"


def load_config(root: Path, user_config: Path | None = None) -> Config:
    """Read the built-in, user and project profiles; later layers win per agent name.

    Parameters
    ----------
    root
        The project root; its ``.amux/config.yaml`` is the last layer.
    user_config
        The user's file (see :func:`user_config_path`), or ``None`` to skip that layer.

    Returns
    -------
    Config
        Fresh on every call; nothing is cached and nothing is created.

    Raises
    ------
    amux_tmux.exc.ConfigError
        A file that exists cannot be read or is not a valid configuration.
    """
    agents: dict[str, Profile] = {}
    files: list[str] = []
    for path in (BUILTIN_PROFILES, user_config, Path(root) / PROJECT_CONFIG):
        if path is None:
            continue
        raw = _read(path)
        if raw is None:
            continue
        source = os.path.abspath(path)
        files.append(source)
        agents.update(_parse(raw, _Context(_display(path), source)))
    return Config(agents=types.MappingProxyType(dict(sorted(agents.items()))), files=tuple(files))


# --- reading ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _Context:
    name: str  # the file as shown in messages
    source: str  # the file as recorded in Profile.source

    def error(self, why: str, node: Any = None, key: str | None = None) -> exc.ConfigError:
        line = node.start_mark.line + 1 if node is not None else None
        return exc.ConfigError(self.name, why, line=line, key=key)


def _display(path: Path) -> str:
    """The path relative to the working directory when inside it, else absolute."""
    absolute = os.path.abspath(path)
    try:
        relative = os.path.relpath(absolute)
    except (OSError, ValueError):
        return absolute
    return absolute if relative.split(os.sep, 1)[0] == os.pardir else relative


def _read(path: Path) -> bytes | None:
    """The file's bytes, or ``None`` when it does not exist."""
    name = _display(path)
    # O_NONBLOCK: a FIFO planted as config.yaml must not hang a read-only command.
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as err:
        raise exc.ConfigError(name, f"cannot read: {err.strerror or err}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise exc.ConfigError(name, "not a regular file")
        if info.st_size > MAX_CONFIG_BYTES:
            raise exc.ConfigError(name, _too_big(info.st_size))
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_CONFIG_BYTES:
            chunk = os.read(fd, MAX_CONFIG_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as err:
        raise exc.ConfigError(name, f"cannot read: {err.strerror or err}") from None
    finally:
        os.close(fd)
    if size > MAX_CONFIG_BYTES:  # it grew after fstat
        raise exc.ConfigError(name, _too_big(size))
    return b"".join(chunks)


def _too_big(size: int) -> str:
    return f"file is {size} bytes, over the {MAX_CONFIG_BYTES} byte limit"


def _yaml() -> tuple[Any, Any]:
    """PyYAML and its fastest safe loader, imported on first need."""
    import yaml

    try:
        loader: Any = yaml.CSafeLoader
    except AttributeError:  # pragma: no cover - PyYAML built without libyaml
        loader = yaml.SafeLoader
    return yaml, loader


def _parse(raw: bytes, ctx: _Context) -> dict[str, Profile]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise exc.ConfigError(ctx.name, f"not UTF-8 (byte {err.start})", line=line) from None
    text = text.removeprefix("\ufeff")
    yaml_, loader = _yaml()
    _check_events(text, ctx, yaml_, loader)
    try:
        root = yaml_.compose(text, Loader=loader)
    except yaml_.YAMLError as err:
        raise _yaml_error(err, text, ctx) from None
    except (RecursionError, MemoryError, ValueError, TypeError, OverflowError) as err:
        raise ctx.error(f"cannot load: {type(err).__name__}") from None
    return _agents(root, ctx)


def _check_events(text: str, ctx: _Context, m: Any, loader: Any) -> None:
    """Refuse anchors, aliases, tags and deep nesting before anything is composed.

    Counted on the event stream, so brackets inside quoted strings (regexes are full of
    them) are text, not nesting; libyaml's parser keeps its own stack, so this pass is safe
    where the recursive composer is not.
    """
    depth = 0
    try:
        for event in m.parse(text, Loader=loader):
            if isinstance(event, m.AliasEvent) or getattr(event, "anchor", None):
                raise ctx.error("anchors and aliases (&name, *name) are not allowed", event)
            tag = getattr(event, "tag", None)
            # Tags build objects (!!python/...); only the harmless !!str is let through.
            if tag and tag != _STR and isinstance(event, (m.ScalarEvent, m.CollectionStartEvent)):
                raise ctx.error(f"tags are not allowed ({_show(tag)})", event)
            if isinstance(event, m.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise ctx.error(f"nested more than {MAX_DEPTH} levels deep", event)
            elif isinstance(event, m.CollectionEndEvent):
                depth -= 1
    except m.YAMLError as err:
        raise _yaml_error(err, text, ctx) from None
    except (RecursionError, MemoryError, ValueError, TypeError, OverflowError) as err:
        raise ctx.error(f"cannot load: {type(err).__name__}") from None


def _yaml_error(err: Any, text: str, ctx: _Context) -> exc.ConfigError:
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None)
    if mark is not None and problem:
        context = getattr(err, "context", None)
        why = _one_line(f"{context}: {problem}" if context else problem)
        return exc.ConfigError(ctx.name, f"not valid YAML: {why}", line=mark.line + 1)
    position = getattr(err, "position", None)  # ReaderError: bad characters
    if isinstance(position, int):
        line = text[:position].count("\n") + 1
        reason = getattr(err, "reason", None) or "unreadable character"
        return exc.ConfigError(ctx.name, f"not valid YAML: {reason}", line=line)
    return exc.ConfigError(ctx.name, f"not valid YAML: {_one_line(str(err))}")


# --- the document -----------------------------------------------------------------------


def _agents(root: Any, ctx: _Context) -> dict[str, Profile]:
    if root is None or _is_null(root):  # empty, or only comments
        return {}
    if not _is_mapping(root):
        raise ctx.error(
            f"expected a mapping with an 'agents:' key at the top level, got {_kind(root)}",
            root,
        )
    agents: dict[str, Profile] = {}
    for key, key_node, value in _pairs(root, "", ctx):
        if key not in TOP_KEYS:
            raise _unknown_key(key, key_node, key, TOP_KEYS, ctx)
        if _is_null(value):
            continue
        if not _is_mapping(value):
            raise ctx.error(
                f"expected a mapping of agent names to profiles, got {_kind(value)}",
                value,
                key,
            )
        for name, name_node, body in _pairs(value, key, ctx):
            if not AGENT_NAME_RE.fullmatch(name):
                raise ctx.error(
                    f"invalid agent name {_show(name)}: expected 1-64 letters, digits, '.', "
                    "'_' or '-', starting with a letter or digit",
                    name_node,
                    key,
                )
            agents[name] = _profile(name, name_node, body, f"{key}.{name}", ctx)
    return agents


def _profile(name: str, name_node: Any, node: Any, path: str, ctx: _Context) -> Profile:
    if not _is_mapping(node):
        raise ctx.error(f"expected a mapping of profile keys, got {_kind(node)}", node, path)
    fields: dict[str, Any] = {}
    for key, key_node, value in _pairs(node, path, ctx):
        if key not in AGENT_KEYS:
            raise _unknown_key(key, key_node, f"{path}.{key}", AGENT_KEYS, ctx)
        fields[key] = value
    if "command" not in fields:
        raise ctx.error("missing required key 'command'", name_node, path)
    command = _argv(fields["command"], f"{path}.command", ctx)
    resume_node = fields.get("resume")
    resume = (
        None
        if resume_node is None or _is_null(resume_node)
        else _argv(resume_node, f"{path}.resume", ctx)
    )
    env = _names(fields.get("env"), f"{path}.env", ctx)
    secrets = _names(fields.get("secrets"), f"{path}.secrets", ctx)
    for secret, secret_node in secrets.items():
        if secret in env:
            raise ctx.error(
                f"{secret} is also listed in env; a secret belongs under secrets only",
                secret_node,
                f"{path}.secrets",
            )
    waiting = _patterns(fields.get("waiting"), f"{path}.waiting", ctx)
    seconds_node = fields.get("working_seconds")
    seconds = (
        DEFAULT_WORKING_SECONDS
        if seconds_node is None or _is_null(seconds_node)
        else _seconds(seconds_node, f"{path}.working_seconds", ctx)
    )
    return Profile(
        name=name,
        command=command,
        env=tuple(env),
        secrets=tuple(secrets),
        resume=resume,
        waiting=waiting,
        working_seconds=seconds,
        source=ctx.source,
    )


def _pairs(node: Any, path: str, ctx: _Context) -> Iterator[tuple[str, Any, Any]]:
    """The mapping's (key, key node, value node), refusing odd and repeated keys."""
    seen: dict[str, int] = {}
    for key_node, value in node.value:
        where = path or None
        if not _is_scalar(key_node):
            raise ctx.error(f"a key must be plain text, got {_kind(key_node)}", key_node, where)
        key = _text(key_node, where, ctx, what="a key")
        line = key_node.start_mark.line + 1
        if key in seen:
            full = f"{path}.{key}" if path else key
            raise ctx.error(f"duplicate key (first on line {seen[key]})", key_node, full)
        seen[key] = line
        yield key, key_node, value


def _unknown_key(
    key: str, node: Any, path: str, known: Sequence[str], ctx: _Context
) -> exc.ConfigError:
    import difflib

    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ctx.error(f"unknown key{hint} (known: {', '.join(known)})", node, _path_of(path))


def _path_of(path: str) -> str:
    # A hostile key could be long or hold newlines: the message stays one short line.
    return path if len(path) <= 80 and path.isprintable() else _show(path)


def _argv(node: Any, path: str, ctx: _Context) -> tuple[str, ...]:
    """A command: a list of words, or one string split like a POSIX shell would."""
    if _is_scalar(node):
        import shlex

        try:
            words = shlex.split(_text(node, path, ctx))
        except ValueError as err:
            raise ctx.error(f"cannot be split into words: {err}", node, path) from None
    elif _is_sequence(node):
        words = [_text(item, f"{path}[{i}]", ctx) for i, item in enumerate(node.value)]
    else:
        raise ctx.error(f"expected a list of words or one string, got {_kind(node)}", node, path)
    if not words:
        raise ctx.error("empty command", node, path)
    if not words[0].strip():
        raise ctx.error("the program name is empty", node, path)
    for i, word in enumerate(words):
        if "\0" in word:
            raise ctx.error(f"word {i} contains a NUL character", node, path)
    return tuple(words)


def _names(node: Any, path: str, ctx: _Context) -> dict[str, Any]:
    """Environment variable names (a list, or one name), in order, without repeats."""
    names: dict[str, Any] = {}
    for item, item_path in _items(node, path, ctx):
        name = _text(item, item_path, ctx)
        if not ENV_NAME_RE.fullmatch(name):
            raise ctx.error(
                f"{_show(name)} is not a valid environment variable name (letters, digits "
                "and '_', not starting with a digit)",
                item,
                item_path,
            )
        if name in RESERVED_ENV:
            raise ctx.error(f"{name} is set by amux itself", item, item_path)
        names.setdefault(name, item)
    return names


def _patterns(node: Any, path: str, ctx: _Context) -> tuple[re.Pattern[str], ...]:
    items = list(_items(node, path, ctx))
    if len(items) > MAX_PATTERNS:
        raise ctx.error(f"more than {MAX_PATTERNS} patterns", node, path)
    patterns: list[re.Pattern[str]] = []
    for item, item_path in items:
        source = _text(item, item_path, ctx)
        if len(source) > MAX_PATTERN_CHARS:
            raise ctx.error(
                f"pattern is longer than {MAX_PATTERN_CHARS} characters", item, item_path
            )
        try:
            pattern = re.compile(source, re.MULTILINE)
        except re.error as err:
            raise ctx.error(
                f"not a valid regular expression ({err.msg})", item, item_path
            ) from None
        except (RecursionError, OverflowError, ValueError, MemoryError):
            raise ctx.error("regular expression is too complex", item, item_path) from None
        if pattern.search("") is not None:
            raise ctx.error(
                "pattern matches empty text, so every screen would look like waiting",
                item,
                item_path,
            )
        slow = _slow_pattern(source)
        if slow:
            raise ctx.error(slow, item, item_path)
        patterns.append(pattern)
    return tuple(patterns)


def _seconds(node: Any, path: str, ctx: _Context) -> float:
    if not _is_scalar(node) or node.tag not in _NUMBER_TAGS:
        got = f"text {_show(node.value)}" if _is_scalar(node) and node.tag == _STR else None
        raise ctx.error(f"expected a number of seconds, got {got or _kind(node)}", node, path)
    from yaml.constructor import SafeConstructor

    try:
        value = float(SafeConstructor().construct_object(node))
    except (ValueError, TypeError, OverflowError, ArithmeticError):
        raise ctx.error(f"{_show(node.value)} is not a usable number", node, path) from None
    if not math.isfinite(value) or not 0 <= value <= MAX_WORKING_SECONDS:
        raise ctx.error(f"must be between 0 and {MAX_WORKING_SECONDS:g} seconds", node, path)
    return value


def _items(node: Any, path: str, ctx: _Context) -> Iterator[tuple[Any, str]]:
    """A list's items with their paths; one scalar counts as a list of one, null as none."""
    if node is None or _is_null(node):
        return
    if _is_sequence(node):
        for i, item in enumerate(node.value):
            yield item, f"{path}[{i}]"
    elif _is_scalar(node):
        yield node, path
    else:
        raise ctx.error(f"expected a list, got {_kind(node)}", node, path)


def _text(node: Any, path: str | None, ctx: _Context, what: str = "text") -> str:
    """A scalar as the text the user wrote: numbers keep their spelling, booleans refuse."""
    if not _is_scalar(node):
        raise ctx.error(f"expected {what}, got {_kind(node)}", node, path)
    if node.tag == _BOOL:
        # YAML 1.1 reads yes/no/on/off/true/false as booleans; the user meant the word.
        raise ctx.error(
            f"{node.value} is read as a boolean; quote it ('{node.value}') to mean the text",
            node,
            path,
        )
    if node.tag == _NULL:
        raise ctx.error(f"missing value (expected {what})", node, path)
    value: str = node.value
    return value


_EXPONENTIAL = (
    "repeating something that can itself match in more than one way, like (a+)+, (a|a)* or "
    "(a?){9}, can take exponential time; make the inner part possessive (a++) or atomic (?>...)"
)
_POLYNOMIAL = (
    "two open-ended repeats in a row, like .*.* or \\s*\\s*, can take polynomial time; "
    "separate them with fixed text"
)
_BACKREFERENCE = "backreferences (\\1, (?P=name)) can take exponential time"


class _Slow(Exception):
    """Ends the walk of a pattern that could backtrack for minutes."""


def _slow_pattern(source: str) -> str | None:
    r"""Why matching a pattern could run for minutes on a 30 x 500 character screen, or None.

    Refused: a repetition whose body can match the same text in more than one way (nested
    or optional repeats, alternation) or a backreference, which backtrack exponentially on a
    near miss, and two open-ended repeats with nothing required between them, which backtrack
    polynomially (``.*.*.*x`` takes a minute on 30 lines of 500 ``a``). A possessive or
    atomic part never gives text back, so it is exempt. The check reads CPython's own parse
    tree; if that private module changes, it is skipped.

    >>> [_slow_pattern(p) is None for p in (r"(a+)+$", r"(a|a)*$", r"(.*)(.*)x", r"(\d++\.)+x")]
    [False, False, False, True]
    """
    try:
        import importlib

        parser = importlib.import_module("re._parser")
        tree = parser.parse(source, re.MULTILINE)
    except Exception:  # private API; re.compile has already accepted the pattern
        return None
    try:
        _walk_pattern(tree, repeated=False, run=None, unbounded=parser.MAXREPEAT)
    except _Slow as slow:
        return str(slow)
    except Exception:  # a parse tree of a shape this walk does not know
        return None
    return None


def _walk_pattern(items: Any, *, repeated: bool, run: Any, unbounded: int) -> Any:
    """Check one sequence of parse items; return the open-ended repeat still open at its end.

    ``repeated``: the sequence is the body of a repetition. ``run``: the body of an
    open-ended repeat before this sequence with nothing required since, or None.
    """
    for op, av in items:
        name = getattr(op, "name", "")
        if name in ("MAX_REPEAT", "MIN_REPEAT"):
            low, high, body = av
            if repeated and low != high:
                raise _Slow(_EXPONENTIAL)
            _walk_pattern(body, repeated=repeated or high > 1, run=None, unbounded=unbounded)
            if high >= unbounded and low != high:
                if run is not None and not _disjoint(run, body):
                    raise _Slow(_POLYNOMIAL)
                run = body
            elif low > 0:
                run = None
        elif name == "POSSESSIVE_REPEAT":
            _walk_pattern(av[2], repeated=False, run=None, unbounded=unbounded)
            run = run if av[0] == 0 else None
        elif name == "ATOMIC_GROUP":
            _walk_pattern(av, repeated=False, run=None, unbounded=unbounded)
            run = None
        elif name == "SUBPATTERN":  # a group is transparent: (.*)(.*) is .*.*
            run = _walk_pattern(av[3], repeated=repeated, run=run, unbounded=unbounded)
        elif name == "BRANCH":
            if repeated:
                raise _Slow(_EXPONENTIAL)
            for branch in av[1]:
                _walk_pattern(branch, repeated=False, run=run, unbounded=unbounded)
            run = None
        elif name in ("ASSERT", "ASSERT_NOT"):  # zero width: the run goes on
            _walk_pattern(av[1], repeated=repeated, run=None, unbounded=unbounded)
        elif name == "GROUPREF":
            raise _Slow(_BACKREFERENCE)
        elif name == "GROUPREF_EXISTS":
            for branch in av[1:]:
                if branch is not None:
                    _walk_pattern(branch, repeated=repeated, run=run, unbounded=unbounded)
            run = None
        elif name != "AT":  # anchors are zero width too; anything else is required text
            run = None
    return run


def _disjoint(first: Any, second: Any) -> bool:
    """Two repeat bodies that are different single characters (`` *x*``) never compete."""
    if len(first) != 1 or len(second) != 1:
        return False
    (op1, av1), (op2, av2) = first[0], second[0]
    literal = getattr(op1, "name", "") == getattr(op2, "name", "") == "LITERAL"
    return literal and av1 != av2


# --- node helpers -------------------------------------------------------------------------


# PyYAML's node classes carry their kind in ``id``; checking it keeps yaml out of imports.
def _is_scalar(node: Any) -> bool:
    return getattr(node, "id", None) == "scalar"


def _is_sequence(node: Any) -> bool:
    return getattr(node, "id", None) == "sequence"


def _is_mapping(node: Any) -> bool:
    return getattr(node, "id", None) == "mapping"


def _is_null(node: Any) -> bool:
    return _is_scalar(node) and node.tag == _NULL


def _kind(node: Any) -> str:
    if _is_mapping(node):
        return "a mapping"
    if _is_sequence(node):
        return "a list"
    tag = getattr(node, "tag", "")
    if tag == _BOOL:
        return f"a boolean ({node.value})"
    if tag == _NULL:
        return "nothing (null)"
    if tag in _NUMBER_TAGS:
        return f"a number ({node.value})"
    return "text"


def _show(value: str) -> str:
    """A user string for a one-line message: quoted, escaped and cut short."""
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _one_line(text: str) -> str:
    return " ".join(text.split())[:200]
