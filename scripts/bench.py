#!/usr/bin/env python3
"""Benchmarks for amux_tmux, each beside its raw floor measured in the same run.

Usage::

    scripts/bench.py store       [--sizes 1000,10000] [--big] [--repeat 7]
    scripts/bench.py lifecycle   [--records 1000]
    scripts/bench.py reconcile   [--records 500]
    scripts/bench.py fleet       [--live 200] [--recover 50]
    scripts/bench.py all

Whole-process numbers come from a non-editable install (a wheel of this tree in a
throwaway venv, bytecode compiled), the way users run it.

Everything runs in a temporary root on a private tmux server (its own TMUX_TMPDIR), which
is killed and removed at the end, however the run ends. Numbers are medians; "ratio" is
ours / floor. These are measurements, not tests: goals are printed, never asserted.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import datetime as dt
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import yaml  # noqa: E402

from amux_tmux.manager import Manager, Policy, StartSpec  # noqa: E402
from amux_tmux.model import Session, Status, format_time, generate_id  # noqa: E402
from amux_tmux.procs import create_time  # noqa: E402
from amux_tmux.store import FileStore, Query, codec, without_gc  # noqa: E402
from amux_tmux.tmux import socket_path_for  # noqa: E402

try:
    from yaml import CSafeLoader as FloorLoader
except ImportError:  # pragma: no cover
    from yaml import SafeLoader as FloorLoader  # type: ignore[assignment]

CLI = [sys.executable, "-m", "amux_tmux"]


# --- helpers -------------------------------------------------------------------------


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``fn`` in milliseconds over ``repeat`` runs."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def row(what: str, ours: float, floor: float | None, goal: str = "", unit: str = "ms") -> None:
    ratio = f"{ours / floor:6.2f}x" if floor else "      -"
    floor_s = f"{floor:9.2f}" if floor is not None else "        -"
    print(f"  {what:<44} {ours:9.2f} {unit:<3} floor {floor_s} {unit:<3} ratio {ratio}  {goal}")


@contextlib.contextmanager
def sandbox() -> Iterator[tuple[Path, str]]:
    """A temp root and a private socket name; the tmux server and files go at the end."""
    base = Path(tempfile.mkdtemp(prefix="amux-bench."))
    saved = {k: os.environ.get(k) for k in ("TMUX_TMPDIR", "TMUX", "TMUX_PANE")}
    os.environ["TMUX_TMPDIR"] = str(base / "tmux")
    # tmux makes this directory for -L but not for -S.
    (base / "tmux" / f"tmux-{os.geteuid()}").mkdir(mode=0o700, parents=True)
    os.environ.pop("TMUX", None)
    os.environ.pop("TMUX_PANE", None)
    socket = f"bench{os.getpid()}"
    (base / "root").mkdir()
    try:
        yield base / "root", socket
    finally:
        subprocess.run(
            ["tmux", "-S", socket_path_for(socket), "kill-server"],
            capture_output=True,
            check=False,
            timeout=30,
        )
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(base, ignore_errors=True)


def fake_record(sid: str, **fields: object) -> Session:
    now = format_time(dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    base: dict[str, object] = {
        "id": sid,
        "status": Status.RUNNING,
        "created_at": now,
        "updated_at": now,
        "name": None,
        "agent_id": "claude",
        "workspace_id": "ws-bench",
        "command": ("claude", "--dangerously-skip-permissions"),
        "cwd": "/home/me/project",
        "environment": {"ANTHROPIC_API_KEY": "***", "NODE_ENV": "production"},
        "revision": 3,
    }
    base.update(fields)
    return Session(**base)  # type: ignore[arg-type]


def populate(store: FileStore, records: list[Session]) -> None:
    """Write records straight to disk (no fsync: this is set-up, not the thing measured)."""
    store.ensure_dirs()
    for record in records:
        store.path_for(record.id).write_bytes(codec.encode(record.to_dict()))
    # Let the files age past the cache's racy window, as real records have.
    time.sleep(0.2)


def new_ids(count: int) -> list[str]:
    seen: set[str] = set()
    # As FileStore.new_id: never all digits (an unquoted 0725325471 is octal to YAML).
    return [
        generate_id(lambda c: c in seen or c.isdigit() or seen.add(c) is not None)
        for _ in range(count)
    ]


def raw_list(directory: Path) -> list[object]:
    """The floor for ``list``: scandir, read each file, CSafeLoader, nothing else."""
    out = []
    with os.scandir(directory) as entries:
        for entry in entries:
            with open(entry.path, "rb") as f:
                out.append(yaml.load(f.read(), Loader=FloorLoader))
    return out


def raw_write(path: Path, data: bytes) -> None:
    """The floor for a durable write: temp file, fsync, rename, fsync dir (no lock)."""
    tmp = path.with_name(path.name + ".floor")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def tmux(socket: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["tmux", "-S", socket_path_for(socket), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def cli_ms(args: list[str], repeat: int) -> float:
    def run() -> None:
        subprocess.run(args, capture_output=True, check=True, timeout=60)

    run()  # warm the page cache and .pyc files
    return median_ms(run, repeat)


# --- store ---------------------------------------------------------------------------


HAND_WRITTEN = """\
# started by hand for the nightly review
id: {sid}
name: review-{n}        # who asked: Kim
agent_id: claude
workspace_id: "ws-bench"
status: running
tmux_socket: /tmp/tmux-1000/amux
tmux_session: amux-{sid}
tmux_session_id: "$3"
pane_id: '%3'
pid: {pid}
pid_create_time: 1732420800.12
command: [claude, --dangerously-skip-permissions, "fix the tests"]
cwd: /home/me/project
environment: {{ANTHROPIC_API_KEY: "***", NODE_ENV: production, DEBUG: 1}}
created_at: 2026-11-24T10:{minute:02d}:{second:02d}Z
updated_at: 2026-11-24T11:00:00Z
revision: 3
notes: restarted twice; keep an eye on memory
"""


def write_records(directory: Path, ids: list[str], style: str) -> None:
    """Write ``ids`` as the project writes records, or as a person would by hand."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    for n, sid in enumerate(ids):
        if style == "project":
            data = codec.encode(fake_record(sid, name=f"review-{n}").to_dict())
        else:
            minute, second = n // 60 % 60, n % 60
            text = HAND_WRITTEN.format(sid=sid, n=n, pid=1000 + n, minute=minute, second=second)
            data = text.encode()
        (directory / f"session-{sid}.yaml").write_bytes(data)


def paired_ms(
    ours: Callable[[], object], floor: Callable[[], object], repeat: int
) -> tuple[float, float]:
    """Best times of ``ours`` and ``floor`` in ms, run in turns so both meet the same load.

    The best, not the median: on a shared machine the spread is other people's work.
    """
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for fn, into in ((floor, times[1]), (ours, times[0])):
            t0 = time.perf_counter()
            fn()
            into.append((time.perf_counter() - t0) * 1000)
    return min(times[0]), min(times[1])


def peak_mib(fn: Callable[[], object]) -> float:
    """Peak Python heap (tracemalloc) while ``fn`` runs and its result is alive, in MiB."""
    gc.collect()
    tracemalloc.start()
    try:
        result = fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    del result
    return peak / 2**20


def our_list(root: Path, query: Query | None = None) -> list[dict[str, object]]:
    """What `ls --json` needs: a new store (a new process), the records as plain data,
    with the cycle collector paused as `ls` pauses it."""
    with without_gc():
        return [s.to_dict() for s in FileStore(root).list(query).sessions]


def floor_list(directory: Path, limit: int | None = None) -> list[object]:
    """The floor: scandir, read each file, CSafeLoader (no sort, filter or checks)."""
    return raw_list(directory)[:limit]


def bench_store(sizes: list[int], repeat: int) -> None:
    print(
        "store: `list` (a new FileStore each time, records as dicts) against the floor\n"
        "  (scandir + read + CSafeLoader per file), best of runs taken in turns with the\n"
        "  floor; cold = no index, warm = index present; heap = tracemalloc peak.\n"
        "  goals: hand 1k cold <= 1.2x; 100k warm full <= 0.3x; 100k warm limit 20 <= 0.1x;\n"
        "  peak memory <= the floor's"
    )
    for size in sizes:
        ids = new_ids(size)
        runs = repeat if size < 50_000 else min(repeat, 2)
        for style in ("project", "hand"):
            with sandbox() as (root, _socket):
                store = FileStore(root)
                store.ensure_dirs()
                write_records(store.sessions_dir, ids, style)
                time.sleep(0.2)  # past the racy window, as real records are
                directory = store.sessions_dir
                raw_list(directory)  # warm the page cache for both sides
                floor_mem = peak_mib(lambda d=directory: floor_list(d))  # type: ignore[misc]
                assert len(our_list(root)) == size, "a record was not read"
                for what, query in (("full", None), ("limit 20", Query(limit=20))):

                    def cold(r: Path = root, q: Query | None = query) -> object:
                        FileStore(r).index_path.unlink(missing_ok=True)
                        return our_list(r, q)

                    def warm(r: Path = root, q: Query | None = query) -> object:
                        return our_list(r, q)

                    def floor(d: Path = directory) -> object:
                        return floor_list(d)

                    label = f"{style:>7} {size:>6} {what:<8}"
                    row(f"{label} cold", *paired_ms(cold, floor, runs))
                    warm()
                    row(f"{label} warm", *paired_ms(warm, floor, runs))
                    row(f"{label} cold, peak heap", peak_mib(cold), floor_mem, unit="MiB")
                    row(f"{label} warm, peak heap", peak_mib(warm), floor_mem, unit="MiB")

    with sandbox() as (root, _socket):
        store = FileStore(root)
        record = store.create(fake_record(new_ids(1)[0]))
        n = max(repeat * 30, 200)
        counter = iter(range(10**9))
        update = median_ms(
            lambda: store.update(record.id, lambda s: s.evolve(exit_code=next(counter) % 200)),
            n,
        )
        create_ids = iter(new_ids(n))
        create = median_ms(lambda: store.create(fake_record(next(create_ids))), n)
        data = store.path_for(record.id).read_bytes()
        target = root / "floor.yaml"
        floor = median_ms(lambda: raw_write(target, data), n)
        row("update (lock, re-read, fsync, rename, fsync dir)", update, floor, "goal <= 2 ms")
        row("create (lock, fsync, rename, fsync dir)", create, floor)


# --- an installed copy ----------------------------------------------------------------


@contextlib.contextmanager
def installed() -> Iterator[Path]:
    """Yield the ``bin`` directory of a throwaway venv holding a non-editable install.

    The way users run it: a wheel built from this tree, installed (pip compiles its
    bytecode); the dependencies come from the project's own venv (already compiled).
    """
    base = Path(tempfile.mkdtemp(prefix="amux-bench-venv."))
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", "--without-pip", str(base / "v")], check=True
        )
        wheels = base / "wheels"
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels),
             str(REPO)],
            check=True,
        )  # fmt: skip
        site = next((base / "v" / "lib").glob("python3*/site-packages"))
        deps = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
        (site / "amux-bench-deps.pth").write_text("\n".join(deps) + "\n")
        wheel = next(wheels.glob("*.whl"))
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
             str(site), str(wheel)],
            check=True,
        )  # fmt: skip
        compileall.compile_dir(site / "amux_tmux", quiet=1)
        scripts = base / "v" / "bin"
        entry = scripts / "amux-tmux"
        entry.write_text(
            f"#!{scripts / 'python'}\nimport sys\nfrom amux_tmux.cli import main\n"
            "sys.exit(main())\n"
        )
        entry.chmod(0o755)
        yield scripts
    finally:
        shutil.rmtree(base, ignore_errors=True)


def whole_ms(argv: list[str], repeat: int, env: dict[str, str] | None = None) -> float:
    """Median wall time of a whole process (after one warm-up run)."""

    def run() -> None:
        subprocess.run(argv, capture_output=True, check=True, timeout=120, env=env)

    run()
    return median_ms(run, repeat)


def paired_whole(
    ours: list[str], floor: list[str], repeat: int, env: dict[str, str] | None = None
) -> tuple[float, float]:
    """Medians of two whole processes measured in turns (noise hits both alike)."""
    subprocess.run(ours, capture_output=True, check=True, timeout=120, env=env)
    subprocess.run(floor, capture_output=True, check=True, timeout=120, env=env)
    a, b = [], []
    for _ in range(repeat):
        for argv, out in ((ours, a), (floor, b)):
            t0 = time.perf_counter()
            subprocess.run(argv, capture_output=True, check=True, timeout=120, env=env)
            out.append((time.perf_counter() - t0) * 1000)
    return statistics.median(a), statistics.median(b)


def owned_sessions(socket: str, store_id: str, ids: list[str], root: Path) -> None:
    """Create sessions the way a store owns them, many per tmux process."""
    script = root.parent / "spawn.tmux"
    lines = []
    for sid in ids:
        lines.append(f"new-session -d -s amux-{sid} -- sleep 100000")
        lines.append(f"set-option -t =amux-{sid}: @amux_id {sid}")
        lines.append(f"set-option -t =amux-{sid}: @amux_store {store_id}")
    script.write_text("\n".join(lines) + "\n")
    tmux(socket, "new-session", "-d", "-s", "keepalive", "--", "sleep", "100000")
    result = tmux(socket, "source-file", str(script))
    if result.returncode != 0:
        sys.exit(f"bench: could not create sessions: {result.stderr.strip()}")


def panes_of(socket: str) -> dict[str, tuple[str, int]]:
    listing = tmux(socket, "list-panes", "-a", "-F", "#{session_name} #{pane_id} #{pane_pid}")
    return {
        name: (pane, int(pid))
        for name, pane, pid in (line.split() for line in listing.stdout.splitlines())
    }


# --- lifecycle and command line ---------------------------------------------------------


def bench_lifecycle(bin_dir: Path, records: int, repeat: int) -> None:
    print("lifecycle, whole processes of an installed copy (ratio: ours / floor, same run)")
    amux = str(bin_dir / "amux-tmux")
    py = str(bin_dir / "python")
    with sandbox() as (root, socket):
        sock = socket_path_for(socket)
        tmux(socket, "new-session", "-d", "-s", "keepalive", "--", "sleep", "100000")
        base = [amux, "--root", str(root), "--socket", socket]
        floor_start = [
            py, "-c",
            "import libtmux, yaml, filelock, subprocess, sys; "
            "subprocess.run(['tmux', '-S', sys.argv[1], 'new-session', '-d', 'sleep', '100000'],"
            " check=True)",
            sock,
        ]  # fmt: skip
        ours, floor = paired_whole([*base, "start", "--", "sleep", "100000"], floor_start, repeat)
        row("start, whole CLI", ours, floor, "goal <= 1.3x")
        print("    (floor: a process importing libtmux, yaml, filelock and running a raw")
        print("     `tmux new-session -d`; ours also hands the agent its spec and waits for exec)")
        sid = subprocess.run([*base, "start", "--", "sleep", "100000"], capture_output=True,
                             text=True, check=True).stdout.strip()  # fmt: skip
        prompt = "x" * 10_000
        send = [*base, "send", sid, "--settle", "0", "--no-enter", prompt]
        floor_send = [
            "tmux", "-S", sock, "send-keys", "-t", f"=amux-{sid}:", "-l", prompt,
        ]  # fmt: skip
        ours, floor = paired_whole(send, floor_send, repeat)
        row("send of a 10 KB prompt, whole CLI", ours, floor)
        print("    (floor: one raw `tmux send-keys -l` with the text on its argv)")
        store = FileStore(root)
        floor_mark = [
            py, "-c",
            "import sys, yaml, filelock, os\n"
            "p = sys.argv[1]\n"
            "with filelock.FileLock(p + '.lock'):\n"
            "    t = p + '.tmp'\n"
            "    fd = os.open(t, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)\n"
            "    os.write(fd, yaml.safe_dump({'activity': 'waiting'}).encode()); os.fsync(fd)\n"
            "    os.close(fd); os.replace(t, p)\n"
            "    d = os.open(os.path.dirname(p), os.O_RDONLY); os.fsync(d); os.close(d)\n",
            str(root / "floor-record.yaml"),
        ]  # fmt: skip
        env = {**os.environ, "AMUX_SESSION_ID": sid, "AMUX_ROOT": str(root)}
        ours, floor = paired_whole([amux, "mark", "waiting"], floor_mark, repeat, env)
        row("mark (a hook's call), whole process", ours, floor, "goal <= 1.3x")
        print("    (floor: a process importing yaml and filelock, one locked durable write)")
        del store

    with sandbox() as (root, socket):
        store = FileStore(root)
        ids = new_ids(records)
        populate(store, [fake_record(sid, name=f"n{i}") for i, sid in enumerate(ids)])
        base = [amux, "--root", str(root), "--socket", socket]
        floor_pass = [py, "-c", "pass"]
        ours, floor = paired_whole([*base, "ls"], floor_pass, repeat)
        row(f"ls (truthful default), {records} records", ours, floor, "")
        ours, floor = paired_whole([*base, "ls", "--json"], floor_pass, repeat)
        row(f"ls --json, {records} records", ours, floor)
        ours, floor = paired_whole([*base, "completion", "--refs"], floor_pass, repeat)
        row(f"completion of refs, {records} sessions", ours, floor, "goal < 100 ms")
        print("    (floor: `python -c pass`; records written before, index warm)")


# --- reconcile -----------------------------------------------------------------------


def bench_reconcile(bin_dir: Path, records: int, repeat: int) -> None:
    half = records // 2
    amux = str(bin_dir / "amux-tmux")
    py = str(bin_dir / "python")
    print(
        f"reconcile: {records} records vs {records} owned sessions; {half} records lost their"
        f" session, {half} sessions lost their record"
    )
    with sandbox() as (root, socket):
        store = FileStore(root)
        store_id = store.ensure_store_id()
        ids = new_ids(records + half)
        matched, orphan_records, orphan_sessions = ids[:half], ids[half:records], ids[records:]
        owned_sessions(socket, store_id, matched + orphan_sessions, root)
        panes = panes_of(socket)
        sock = socket_path_for(socket)
        recs = []
        for sid in matched:
            pane, pid = panes[f"amux-{sid}"]
            recs.append(
                fake_record(
                    sid, tmux_socket=sock, tmux_session=f"amux-{sid}", pane_id=pane, pid=pid,
                    pid_create_time=create_time(pid),
                )
            )  # fmt: skip
        for sid in orphan_records:
            recs.append(fake_record(sid, tmux_socket=sock, tmux_session=f"amux-{sid}"))
        populate(store, recs)
        args = [amux, "--root", str(root), "--socket", socket, "--json"]
        detect = [*args, "reconcile", "--dry-run", "--grace", "0"]
        out = json.loads(subprocess.run(detect, capture_output=True, check=True).stdout)
        floor_detect = [
            py, "-c",
            "import libtmux, subprocess, sys; "
            "subprocess.run(['tmux', '-S', sys.argv[1], 'list-panes', '-a'], capture_output=True)",
            sock,
        ]  # fmt: skip
        ours, floor = paired_whole(detect, floor_detect, repeat)
        row(f"detect, whole CLI ({out['tmux_calls']} tmux process)", ours, floor)
        print("    (floor: `python -c 'import libtmux'` plus one raw `tmux list-panes -a`)")

    bench_reconcile_changes(amux, records)


def bench_reconcile_changes(amux: str, count: int) -> None:
    """Tag, then kill, ``count`` owned sessions without records, against one tmux process
    per action; in-process and as a whole CLI run."""
    print(f"reconcile applying {count} tags, then {count} kills (--grace 0)")
    for what, remove, loop_args in (
        ("tags", False, ("set-option", "@amux_orphan", "1")),
        ("kills", True, ("kill-session",)),
    ):
        with sandbox() as (root, socket):
            store = FileStore(root)
            store_id = store.ensure_store_id()
            ids = new_ids(count)
            owned_sessions(socket, store_id, ids, root)
            manager = Manager(store, socket=socket)
            t0 = time.perf_counter()
            report = manager.reconcile(Policy(remove=remove, grace=0.0))
            inproc = (time.perf_counter() - t0) * 1000
            done = sum(1 for o in report.outcomes if o.done)
            print(f"  {what}: {done} done in {report.tmux_calls} tmux processes")
            if remove:
                owned_sessions(socket, store_id, ids, root)
            else:
                for sid in ids:  # untag, for the CLI run (not timed)
                    tmux(socket, "set-option", "-u", "-t", f"=amux-{sid}:", "@amux_orphan")
            args = [amux, "--root", str(root), "--socket", socket, "reconcile", "--grace", "0"]
            t0 = time.perf_counter()
            subprocess.run([*args, *(["--remove"] if remove else [])], capture_output=True,
                           check=True)  # fmt: skip
            cli = (time.perf_counter() - t0) * 1000
            if remove:
                owned_sessions(socket, store_id, ids, root)
            t0 = time.perf_counter()
            for sid in ids:
                verb, *rest = loop_args
                tmux(socket, verb, "-t", f"=amux-{sid}:" if rest else f"=amux-{sid}", *rest)
            loop = (time.perf_counter() - t0) * 1000
            row(f"{count} {what}, in-process", inproc, loop)
            row(f"{count} {what}, whole CLI", cli, loop)
            if remove:  # what tmux itself needs for the kills: one source-file of them
                owned_sessions(socket, store_id, ids, root)
                script = root.parent / "kill.tmux"
                script.write_text("".join(f"kill-session -t =amux-{sid}\n" for sid in ids))
                t0 = time.perf_counter()
                tmux(socket, "source-file", str(script))
                own = (time.perf_counter() - t0) * 1000
                row(f"{count} kills in one raw `tmux source-file`", own, loop)
    print(f"    (floor: {count} tmux processes, one per action)")


# --- fleet -----------------------------------------------------------------------------


def bench_fleet(bin_dir: Path, live_count: int, recover_count: int, repeat: int) -> None:
    amux = str(bin_dir / "amux-tmux")
    print(f"fleet: ls --live with activity at {live_count} live sessions; recover of "
          f"{recover_count}")  # fmt: skip
    with sandbox() as (root, socket):
        (root / ".amux").mkdir()
        (root / ".amux" / "config.yaml").write_text(
            "agents:\n  prompt:\n    command: [sh, -c, \"printf 'Proceed? [y/n] '; exec cat\"]\n"
            "    waiting: ['Proceed\\? \\[y/n\\]']\n"
        )
        manager = Manager(FileStore(root), socket=socket)
        for _ in range(live_count):
            manager.start(StartSpec(agent="prompt"))
        time.sleep(1.0)  # the log pipes and launchers settle
        base = [amux, "--root", str(root), "--socket", socket]
        listing = Manager(FileStore(root), socket=socket)
        rows = listing.listing(Query(), live=True).rows
        waiting = sum(1 for o in rows if o.activity is not None and o.activity.value == "waiting")
        calls = sum(b.calls for b in listing._backends.values())
        floor = [
            "tmux", "-S", socket_path_for(socket), "list-panes", "-a", "-F", "#{session_name}",
        ]  # fmt: skip
        ours, raw = paired_whole([*base, "ls", "--live"], floor, repeat)
        print(f"  ls --live: {calls} tmux processes (goal <= 2), {waiting}/{live_count} waiting")
        row(f"ls --live, {live_count} live sessions, whole CLI", ours, raw)
        print("    (floor: one raw `tmux list-panes -a`)")

    with sandbox() as (root, socket):
        manager = Manager(FileStore(root), socket=socket)
        for _ in range(recover_count):
            manager.start(StartSpec(command=["sleep", "100000"]))
        subprocess.run(["tmux", "-S", socket_path_for(socket), "kill-server"], check=False)
        time.sleep(0.5)
        base = [amux, "--root", str(root), "--socket", socket]
        subprocess.run([*base, "reconcile", "--grace", "0"], capture_output=True, check=True)
        t0 = time.perf_counter()
        subprocess.run([*base, "recover", "--yes"], capture_output=True, check=True)
        took = (time.perf_counter() - t0) * 1000
        floor = []
        for i in range(recover_count):
            t1 = time.perf_counter()
            tmux(socket, "new-session", "-d", "-s", f"raw{i}", "--", "sleep", "100000")
            floor.append((time.perf_counter() - t1) * 1000)
        row(f"recover of {recover_count} sessions, whole CLI", took, sum(floor))
        print(f"    (floor: {recover_count} raw `tmux new-session -d`, one after another)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["store", "lifecycle", "reconcile", "fleet", "all"])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument(
        "--big", action="store_true", help="store: add 100,000 records (minutes, ~2 GB disk)"
    )
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--records", type=int, default=0, help="records for lifecycle/reconcile")
    parser.add_argument("--live", type=int, default=200, help="fleet: live sessions")
    parser.add_argument("--recover", type=int, default=50, help="fleet: sessions to recover")
    args = parser.parse_args()
    if shutil.which("tmux") is None and args.what != "store":
        sys.exit("bench: tmux is not installed")
    print(f"python {sys.version.split()[0]}, {tmux_version()}, {os.cpu_count()} cpus")
    # An installed package has its bytecode compiled; an editable checkout run with
    # PYTHONDONTWRITEBYTECODE=1 would otherwise pay ~25 ms per CLI run compiling it.
    compileall.compile_dir(REPO / "amux_tmux", quiet=1)
    if args.what in ("store", "all"):
        sizes = [int(s) for s in args.sizes.split(",")] + ([100_000] if args.big else [])
        bench_store(sizes, args.repeat)
    if args.what == "store":
        return
    with installed() as bin_dir:
        if args.what in ("lifecycle", "all"):
            bench_lifecycle(bin_dir, args.records or 1000, args.repeat)
        if args.what in ("reconcile", "all"):
            bench_reconcile(bin_dir, args.records or 500, args.repeat)
        if args.what in ("fleet", "all"):
            bench_fleet(bin_dir, args.live, args.recover, args.repeat)


def tmux_version() -> str:
    try:
        return subprocess.run(
            ["tmux", "-V"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        return "no tmux"


if __name__ == "__main__":
    main()
