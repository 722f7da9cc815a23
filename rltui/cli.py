"""The headless face of rltui: the same verbs as the TUI, over the same store.

    rltui                          open the lab (TUI)
    rltui run CONFIG.toml [--set algo.alpha=0.5] [--json]
    rltui ls [--json]    rltui show ID [--json]    rltui export ID --format json|csv [-o FILE]
    rltui mdp CONFIG.toml [--json]
    rltui run CONFIG.toml --detach [--json]      (a background worker; returns at once)
    rltui cancel ID      rltui resume ID      rltui db upgrade|current|history|check
    rltui worker [--slots N] [--drain]           (this machine joins the store's worker pool)
    rltui sweep SWEEP.toml [--detach]    rltui sweep ls|show|resume|cancel ID   (see cli_sweep.py)
    rltui serve [--host 127.0.0.1] [--port 8000]  (the lab in a browser)

Bad input exits non-zero with one message naming the file, the key and what is allowed.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

from rltui.text import clip, printable

EXIT_BAD_INPUT = 2


class CliError(Exception):
    """A user-facing error: printed as `rltui: <message>`, exit status 2."""


def run_id(text: str) -> int:
    """A run id argument: a positive integer the store can hold (`show 10^20` is refused here)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a run id is a positive integer, got {text[:40]!r}") from None
    if not 1 <= value <= 2**63 - 1:
        raise argparse.ArgumentTypeError(f"a run id is an integer in 1..{2**63 - 1}, got {text[:40]}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rltui", description="A terminal laboratory for reinforcement learning."
    )
    parser.add_argument("--db", help="store: a SQLite path or a SQLAlchemy URL (default: $RLTUI_DB, else ~/.local/share/rltui/rltui.db)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("run", help="run a config (foreground with a progress bar, or --detach)")
    p.add_argument("config", nargs="+", help="a run's TOML file; with --detach several (or a quoted glob: 'sweep/*.toml')")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set algo.alpha=0.5 (repeatable; applies to every config)")
    p.add_argument("--json", action="store_true", help="print one JSON object with id, status, summary (a list for several)")
    p.add_argument("--detach", action="store_true", help="run in a background worker and return at once")

    p = sub.add_parser("ls", help="list runs")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("show", help="show one run")
    p.add_argument("id", type=run_id)
    p.add_argument("--json", action="store_true")
    p.add_argument("--toml", action="store_true", help="print the run's config as TOML that reproduces it")

    p = sub.add_parser("export", help="export a run's metrics, episodes and trajectories")
    p.add_argument("id", type=run_id)
    p.add_argument("--format", choices=("json", "csv"), default="json")
    p.add_argument("-o", "--output", help="file (json) or directory (csv); default: stdout for json")

    p = sub.add_parser("mdp", help="print the exact MDP of a tabular config (TOML, or --json)")
    p.add_argument("config")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("cancel", help="ask a run to stop (graceful, then forced)")
    p.add_argument("id", type=run_id)
    p.add_argument("--grace", type=float, default=None,
                   help="seconds to wait for a graceful stop before SIGTERM/SIGKILL (default $RLTUI_CANCEL_GRACE or 10)")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("resume", help="continue a crashed, cancelled or failed run (same id)")
    p.add_argument("id", type=run_id)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("worker", help="make this machine part of the store's worker pool (detached)")
    p.add_argument("--slots", type=int, default=None, metavar="N",
                   help="runs at once on this machine (default $RLTUI_MAX_RUNS, else one per core)")
    p.add_argument("--drain", action="store_true", help="stop once the queue has nothing left for this machine")
    p.add_argument("--foreground", action="store_true", help="run the pool here instead of detached")

    p = sub.add_parser("db", help="the store's schema: upgrade, current, history; check: is the file sound")
    p.add_argument("action", choices=("upgrade", "current", "history", "check"))

    from rltui.cli_sweep import add_sweep_parser

    add_sweep_parser(sub)

    p = sub.add_parser("serve", help="serve the lab to a browser (textual-serve; no authentication)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from rltui.errors import ConfigError
    from rltui.runner.devices import DeviceError
    from rltui.runner.lifecycle import LifecycleError
    from rltui.store import StoreError

    try:
        if args.command is None:
            return _open_tui(args)
        handler = COMMANDS[args.command]
        return handler(args)
    except (ConfigError, StoreError, DeviceError, CliError, LifecycleError) as exc:
        print(f"rltui: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a full disk, a read-only or damaged store, met mid-command: one line
        from rltui.store.faults import fault_message

        message = fault_message(exc, _store_location(args.db))
        if message is None:
            raise
        print(f"rltui: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _store_location(db: str | None) -> str:
    from rltui.store.engine import display_url, resolve_url

    try:
        return display_url(resolve_url(db))
    except Exception:  # noqa: BLE001 — only for a message
        return db or "the store"


# --- verbs -------------------------------------------------------------------------------------
def _store(args: argparse.Namespace):  # noqa: ANN202
    from rltui.store import open_store

    return open_store(args.db)


def _refresh(refresh_liveness, store) -> None:  # noqa: ANN001
    """Readers mark dead runs crashed when they can; a store that cannot be written is still read."""
    from rltui.store.faults import fault_message

    if store.read_only:
        return
    try:
        refresh_liveness(store)
    except Exception as exc:  # noqa: BLE001 — a full disk must not stop `ls` from listing
        message = fault_message(exc, store.where)
        if message is None:
            raise
        print(f"rltui: warning: {message}", file=sys.stderr)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def cmd_run(args: argparse.Namespace) -> int:
    """Validate, then either queue the run for a detached worker (--detach) or run it right here.

    Foreground runs start at once (they do not wait in the queue) but hold a slot while they run,
    heartbeat like a worker, and end `cancelled` on Ctrl-C or SIGTERM.
    """
    import os

    from rltui.runner import launch
    from rltui.store import Store, resolve_url

    # The worker starts first, so that its start-up overlaps ours (checking the config costs pydantic).
    target = Store(resolve_url(args.db))
    target.refuse_writes()  # a read-only store: one line, before any worker or log file
    early = launch.spawn_waiting_worker(target) if args.detach else None

    from rltui.config import load_config_file
    from rltui.runner.execute import execute_run, run_status, sigterm_as_interrupt
    from rltui.runner.lifecycle import heartbeat_interval

    from rltui.cli_run import config_paths, wait_for_chain

    paths = config_paths(args.config)
    if len(paths) > 1 and not args.detach:
        raise CliError(f"{len(paths)} configs given: several runs are submitted with --detach (background workers); "
                       "a foreground run takes one config")
    # Every config is checked before anything is queued: a bad one exits 2 with nothing submitted.
    configs = [load_config_file(path, args.overrides) for path in paths]
    for config in configs:
        launch.check_launch_device(config)  # a missing GPU fails here, with exit 2 and no run row
    store = _store(args)
    if args.detach:
        with launch.store_busy_explained(store):
            run_ids = []
            for config in configs:  # each run starts as soon as it is queued, if a slot is free
                run_ids.append(launch.submit(store, config, check_device=False, start=False))
                launch.start_workers(store, early=early if len(run_ids) == 1 else None)
        listed = []
        for run_id, config in zip(run_ids, configs):
            data = {"id": run_id, "status": run_status(store, run_id),
                    "log_path": str(launch.run_log_path(store, run_id))}
            listed.append(data)
            if not args.json:
                print(f"run {run_id} {printable(config.name)}: {data['status']} in the background "
                      f"(rltui show {run_id}; log: {printable(data['log_path'])})")
        if args.json:
            _print_json(listed[0] if len(listed) == 1 else listed)
        return 0
    config = configs[0]
    with launch.store_busy_explained(store):
        run_id, waits = launch.create_foreground(store, config, os.getpid())
    sigterm_as_interrupt()
    if waits:  # a chain's stage: it waits here for the runs it names, as a queued run would
        failed = wait_for_chain(store, run_id)
        if failed is not None:
            return failed
    bar = None if args.json else _ProgressBar(f"run {run_id} {printable(config.name)}")
    try:
        status = execute_run(store, run_id, on_progress=bar.update if bar else None,
                             heartbeat_interval=heartbeat_interval())
    finally:
        if bar:
            bar.close()
    launch.start_workers(store, wait=False)  # the slot it held, and runs that waited for it
    return _report_run(store, run_id, args.json, ok=status == "completed")


def _report_run(store, run_id: int, as_json: bool, ok: bool) -> int:  # noqa: ANN001
    from rltui.cli_run import run_data
    from rltui.store.runs_table import DETAIL_KEYS

    data = run_data(store, run_id, DETAIL_KEYS)
    if as_json:
        _print_json(data)
    else:
        print(f"run {data['id']} {printable(data['name'])}: {data['status']}")
        for key, value in (data["summary"] or {}).items():
            print(f"  {printable(key)}: {printable(value)}")
        if data["error"]:
            print(f"  error: {printable(data['error'], lines=True)}")
    return 0 if ok else 1


def cmd_ls(args: argparse.Namespace) -> int:
    # Plain SQL (store/runs_table.py): `ls` is run in loops, and the ORM's import alone cost 0.4 s.
    from rltui.runner.launch import queue_positions, refresh_liveness
    from rltui.store.runs_table import DETAIL_KEYS, run_json, run_rows

    store = _store(args)
    _refresh(refresh_liveness, store)  # what the store says about a run must be true: dead workers → crashed
    positions = queue_positions(store)
    with store.sql.read() as tx:
        rows = run_rows(tx, extra=DETAIL_KEYS)
    runs = [run_json(r) for r in rows]
    for r in runs:
        r["queue_position"] = positions.get(r["id"])
    if args.json:
        _print_json(runs)
        return 0
    if not runs:
        print("no runs yet: try `rltui run sample_runs/maze_value_iteration.toml`")
        return 0
    print(f"{'ID':>5}  {'NAME':<28} {'ENV':<12} {'ALGO':<18} {'STATUS':<10} {'PROGRESS':>8}  {'QUEUE':>5}  NOTE")
    for r in runs:
        queue = f"#{r['queue_position']}" if r["queue_position"] else ""
        print(f"{r['id']:>5}  {clip(r['name'], 28):<28} {clip(r['env'], 12):<12} {clip(r['algo'], 18):<18} "
              f"{printable(r['status']):<10} {r['progress'] * 100:>7.0f}%  {queue:>5}  {printable(r['status_note'] or '')}".rstrip())
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from rltui.runner.launch import log_tail, queue_positions, refresh_liveness
    from rltui.cli_run import run_data
    from rltui.store.runs_table import SHOW_KEYS, latest_artifact

    store = _store(args)
    _refresh(refresh_liveness, store)
    data = run_data(store, args.id, SHOW_KEYS)
    if data is None:
        raise CliError(f"no run with id {args.id} in {store.where}")
    with store.sql.read() as tx:
        tabular = latest_artifact(tx, args.id, "tabular")
    if tabular is not None:
        data["tabular"] = tabular
    data["queue_position"] = queue_positions(store).get(args.id)
    data["log_tail"] = log_tail(data["log_path"])
    if args.toml:
        from rltui.config import dump_toml

        print(dump_toml(data["config"]), end="")
        return 0
    if args.json:
        _print_json(data)
        return 0
    for key in ("id", "name", "status", "env", "algo", "seed", "device", "device_used",
                "created_at", "started_at", "finished_at", "pid", "host"):
        print(f"{key:>12}: {printable(data[key])}")
    print(f"{'tags':>12}: {printable(', '.join(data.get('tags') or [])) or '–'}")
    for key, value in data["summary"].items():
        print(f"{printable(key):>12}: {printable(value)}")
    if data["status_note"]:
        print(f"{'note':>12}: {printable(data['status_note'])}")
    if data.get("notes"):
        print(f"{'notes':>12}: " + printable(data["notes"], lines=True).replace("\n", "\n" + " " * 14))
    if data["error"]:
        print(f"{'error':>12}: {printable(data['error'], lines=True)}")
    if data["status"] == "failed" and data["log_tail"]:
        print(f"{'log':>12}: {printable(data['log_path'])} (last lines below)")
        print(printable(data["log_tail"], lines=True))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from rltui.export import ExportError, export_csv, export_json, export_json_file

    store = _store(args)
    try:
        if args.format == "csv":
            out = export_csv(store, args.id, args.output or f"run-{args.id}-csv")
            print(f"wrote {', '.join(p.name for p in out)} to {out[0].parent}", file=sys.stderr)
        elif args.output:
            export_json_file(store, args.id, args.output)
            print(f"wrote {args.output}", file=sys.stderr)
        else:
            export_json(store, args.id, sys.stdout)
    except ExportError as exc:
        raise CliError(str(exc)) from exc
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise CliError(f"cannot write {exc.filename or args.output}: {exc.strerror}") from exc
    finally:
        store.dispose()
    return 0


def cmd_mdp(args: argparse.Namespace) -> int:
    from rltui import registry
    from rltui.config import load_config_file

    config = load_config_file(args.config, args.overrides)
    spec = registry.env_spec(config.env_id)
    if spec.kind not in ("tabular", "toytext"):
        raise CliError(f"{args.config}: env.id {config.env_id!r} is a {spec.kind} env; `mdp` prints tabular MDPs only")
    from rltui.envs.mdp_file import dump_mdp
    from rltui.envs.tabular import as_tabular

    env = as_tabular(registry.load_callable(spec.factory)(config.env))
    print(dump_mdp(env, "json" if args.json else "toml"), end="")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    """Graceful first (the algorithm stops at its next safe point), forced after --grace seconds."""
    from rltui.runner.launch import LifecycleError, cancel

    store = _store(args)
    try:
        status = cancel(store, args.id, grace=args.grace, wait=True)
    except LifecycleError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        _print_json({"id": args.id, "status": status})
    else:
        print(f"run {args.id}: {status}")
    return 0 if status == "cancelled" else 1


def cmd_resume(args: argparse.Namespace) -> int:
    """Queue a crashed, cancelled or failed run again under the same id (from its last checkpoint)."""
    from rltui.runner.execute import run_status
    from rltui.runner.launch import LifecycleError, resume

    store = _store(args)
    try:
        step = resume(store, args.id)
    except LifecycleError as exc:
        raise CliError(str(exc)) from None
    data = {"id": args.id, "status": run_status(store, args.id), "resumed_from_step": step}
    if args.json:
        _print_json(data)
    else:
        where = f"from its checkpoint at step {step}" if step is not None else "from the start (no checkpoint)"
        print(f"run {args.id}: {data['status']}, continuing {where}")
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    from rltui.store import open_store, resolve_url
    from rltui.store.engine import display_url, sqlite_path, sqlite_revision
    from rltui.store.migrate import SCHEMA_HEAD

    url = resolve_url(args.db)
    path = sqlite_path(url)
    where = display_url(url)  # never the URL's password
    if args.action == "check":
        return _db_check(args, path)
    head = SCHEMA_HEAD  # alembic's head (tests/test_migrations.py), known without importing alembic
    if args.action == "current" and path is not None and not path.exists():
        print(f"{where}: no store yet (`rltui db upgrade` or any other command creates it at {head})")
        return 0
    if args.action == "history":
        from rltui.store.migrate import script_directory

        current = sqlite_revision(path) if path is not None and path.exists() else None
        for rev in reversed(list(script_directory().walk_revisions())):
            marks = [m for m, on in (("head", rev.revision == head), ("current", rev.revision == current)) if on]
            doc = (rev.doc or "").splitlines()[0] if rev.doc else ""
            print(f"{rev.revision}  {doc}{'  (' + ', '.join(marks) + ')' if marks else ''}")
        return 0
    store = open_store(args.db, upgrade=args.action == "upgrade")
    try:
        if path is not None:  # a SQLite file: read with sqlite3 alone, no SQLAlchemy or alembic import
            current = sqlite_revision(path)
        else:
            from rltui.store.migrate import current_revision

            with store.engine.connect() as conn:
                current = current_revision(conn)
    finally:
        store.dispose()
    if path is not None:  # a damaged store is not reported healthy: SQLite reads every page
        from rltui.store.check import quick_check
        from rltui.store.faults import DAMAGED, StoreFault, describe

        problems = quick_check(path)
        if problems:
            raise StoreFault(describe(DAMAGED, where, f" (quick_check: {problems[0]})"), DAMAGED)
    if args.action == "upgrade" and store.backup is not None:
        print(f"{where}: upgraded to {current}; the previous file was copied to {store.backup}")
    elif current == head:
        print(f"{where}: revision {current} (head)")
    else:
        print(f"{where}: revision {current}; head is {head}: run `rltui db upgrade` (a backup is made first)")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """A pool of workers on this machine for the store (code: rltui/runner/pool.py)."""
    import os

    from rltui.runner import pool

    if args.slots is not None and args.slots < 1:
        raise CliError(f"--slots {args.slots}: must be at least 1")
    store = _store(args)  # checked (and upgraded) here, so the pool starts on a store at head
    if args.foreground:
        if args.slots is not None:
            os.environ["RLTUI_MAX_RUNS"] = str(args.slots)
        return pool.run_pool(store, drain=args.drain)
    proc, log = pool.start_pool(store, args.slots, args.drain)
    print(f"worker pool {proc.pid} for {pool.display_url(store.url)}: log {log}")
    return 0


def _db_check(args: argparse.Namespace, path) -> int:  # noqa: ANN001
    """Exit 0 when the store is sound, 2 when damaged (each problem listed)."""
    from rltui.store.check import check_server, check_sqlite, format_report

    if path is not None:
        report = check_sqlite(path)
    else:
        store = _store(args)
        try:
            report = check_server(store)
        finally:
            store.dispose()
    print(format_report(report), file=sys.stdout if report.ok else sys.stderr)
    return 0 if report.ok else EXIT_BAD_INPUT


def cmd_serve(args: argparse.Namespace) -> int:
    from rltui.serve import ServeError, serve

    try:
        return serve(args.db, host=args.host, port=args.port)
    except ServeError as exc:
        raise CliError(str(exc)) from exc


def _open_tui(args: argparse.Namespace) -> int:
    from rltui.tui.app import run_app

    return run_app(args.db)


COMMANDS = {
    "run": cmd_run,
    "ls": cmd_ls,
    "show": cmd_show,
    "export": cmd_export,
    "mdp": cmd_mdp,
    "cancel": cmd_cancel,
    "resume": cmd_resume,
    "db": cmd_db,
    "worker": cmd_worker,
    "sweep": lambda args: __import__("rltui.cli_sweep", fromlist=["cmd_sweep"]).cmd_sweep(args),
    "serve": cmd_serve,
}


class _ProgressBar:
    """A one-line progress bar on stderr, redrawn at most ten times a second."""

    def __init__(self, label: str) -> None:
        import time

        self.label, self._time, self._last = label, time.monotonic, 0.0
        self.tty = sys.stderr.isatty()

    def update(self, fraction: float) -> None:
        now = self._time()
        if not self.tty or (now - self._last < 0.1 and fraction < 1.0):
            return
        self._last = now
        width = 30
        filled = int(width * fraction)
        sys.stderr.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {fraction * 100:5.1f}%")
        sys.stderr.flush()

    def close(self) -> None:
        if self.tty:
            sys.stderr.write("\n")


if __name__ == "__main__":
    sys.exit(main())
