"""``amux-tmux completion``: shell completion for commands, options and session refs."""

from __future__ import annotations

import argparse
import sys

from amux_tmux.cli.context import GlobalArgs, make_manager
from amux_tmux.manager import Query

EXAMPLES = """examples:
  source <(amux-tmux completion bash)          # in ~/.bashrc
  amux-tmux completion zsh > ~/.zfunc/_amux-tmux   # or: source <(amux-tmux completion zsh)
  amux-tmux completion fish > ~/.config/fish/completions/amux-tmux.fish
"""
#: Commands whose first positional argument is a session reference.
REF_COMMANDS = ("show", "attach", "logs", "send", "stop", "restart", "rm", "rename", "wait")


class CompletionArgs(GlobalArgs):
    """``completion``'s options."""

    shell: str | None
    refs: bool
    agents: bool


def create_completion_subparser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``completion``'s options to ``parser``."""
    parser.epilog = EXAMPLES
    parser.add_argument("shell", nargs="?", choices=["bash", "zsh", "fish"])
    parser.add_argument("--refs", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--agents", action="store_true", help=argparse.SUPPRESS)
    return parser


def _commands() -> dict[str, list[str]]:
    """Return each command (and alias) with its options, read from the real parser."""
    from amux_tmux.cli import create_parser

    parser = create_parser()
    out: dict[str, list[str]] = {}
    for action in parser._actions:  # argparse keeps subparsers here
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                out[name] = sorted(
                    {
                        opt
                        for a in child._actions
                        for opt in a.option_strings
                        if opt.startswith("--")
                    }
                )
    return out


def _globals() -> list[str]:
    return ["--root", "--socket", "--json", "--verbose", "--log-level", "--version", "--help"]


def bash_script() -> str:
    """Return the bash completion script (zsh loads it through bashcompinit)."""
    commands = _commands()
    cases = "\n".join(
        f'        {name}) opts="{" ".join(opts)}";;' for name, opts in commands.items()
    )
    refs = "|".join(REF_COMMANDS)
    return f"""# amux-tmux completion for bash (source <(amux-tmux completion bash))
_amux_tmux() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} prev=${{COMP_WORDS[COMP_CWORD-1]}} cmd="" i opts=""
    local -a root=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${{COMP_WORDS[i]}} in
            --root|--socket|--log-level)
                local opt=${{COMP_WORDS[i]}}
                ((i++)); [[ ${{COMP_WORDS[i]}} == = ]] && ((i++))  # --root=DIR
                # Refs come from the project this command line names.
                [[ $opt == --root ]] && root=(--root "${{COMP_WORDS[i]}}");;
            -*) ;;
            *) [[ -z $cmd ]] && cmd=${{COMP_WORDS[i]}};;
        esac
    done
    case $prev in
        --root|--cwd) COMPREPLY=($(compgen -d -- "$cur")); return;;
        --file) COMPREPLY=($(compgen -f -- "$cur")); return;;
    esac
    if [[ -z $cmd ]]; then
        COMPREPLY=($(compgen -W "{" ".join(commands)} {" ".join(_globals())}" -- "$cur"))
        return
    fi
    case $cmd in
{cases}
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
        return
    fi
    local words=""
    case $cmd in
        {refs}) words=$(amux-tmux "${{root[@]}}" completion --refs 2>/dev/null);;
        mark) words="working waiting idle";;
        start) words=$(amux-tmux "${{root[@]}}" completion --agents 2>/dev/null);;
        completion) words="bash zsh fish";;
    esac
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
}}
complete -F _amux_tmux amux-tmux
"""


def zsh_script() -> str:
    """Return the zsh completion script."""
    return (
        "# amux-tmux completion for zsh (source <(amux-tmux completion zsh))\n"
        "autoload -U +X bashcompinit && bashcompinit\n" + bash_script()
    )


def fish_script() -> str:
    """Return the fish completion script."""
    commands = _commands()
    lines = [
        "# amux-tmux completion for fish",
        "complete -c amux-tmux -f",
        f"complete -c amux-tmux -n __fish_use_subcommand -a '{' '.join(commands)}'",
    ]
    for name, opts in commands.items():
        for opt in opts:
            lines.append(
                f"complete -c amux-tmux -n '__fish_seen_subcommand_from {name}' -l {opt[2:]}"
            )
    lines.append(
        f"complete -c amux-tmux -n '__fish_seen_subcommand_from {' '.join(REF_COMMANDS)}' "
        "-a '(amux-tmux completion --refs 2>/dev/null)'"
    )
    lines.append(
        "complete -c amux-tmux -n '__fish_seen_subcommand_from start' "
        "-a '(amux-tmux completion --agents 2>/dev/null)'"
    )
    lines.append(
        "complete -c amux-tmux -n '__fish_seen_subcommand_from mark' -a 'working waiting idle'"
    )
    return "\n".join(lines) + "\n"


def command_completion(args: CompletionArgs) -> int:
    """Print a completion script, or (for the scripts) the session refs or agent names."""
    if args.refs:
        listing = make_manager(args).store.list(Query(include_ended=True))
        words = [s.id for s in listing.sessions] + [s.name for s in listing.sessions if s.name]
        sys.stdout.write("".join(w + "\n" for w in words))
        return 0
    if args.agents:
        sys.stdout.write("".join(n + "\n" for n in make_manager(args).config.agents))
        return 0
    script = {"bash": bash_script, "zsh": zsh_script, "fish": fish_script}
    if args.shell is None:
        from amux_tmux import exc

        raise exc.UsageError("name a shell: bash, zsh or fish")
    sys.stdout.write(script[args.shell]())
    return 0
