"""`rltui run`'s and `show`'s helpers (cli.py wires them): several configs, a foreground stage that
waits for its chain, and a run's data read in plain SQL."""

from __future__ import annotations

import sys
from typing import Any

from rltui.errors import ConfigError


def run_data(store, run_id: int, extra: tuple[str, ...]) -> dict[str, Any] | None:  # noqa: ANN001
    """A run as `show --json` prints it, read in plain SQL (no ORM import), or None."""
    from rltui.store.runs_table import run_json, run_rows

    with store.sql.read() as tx:
        rows = run_rows(tx, ids=[run_id], extra=extra)
    if not rows:
        return None
    data = run_json(rows[0])
    data.update({key: rows[0][key] for key in extra if key not in data})
    return data


def config_paths(patterns: list[str]) -> list[str]:
    """The config files named: a path as it is, a quoted glob ('runs/*.toml') expanded (sorted)."""
    import glob
    import os

    paths: list[str] = []
    for pattern in patterns:
        if os.path.lexists(pattern) or not glob.has_magic(pattern):
            paths.append(pattern)  # a missing file is named by load_config_file, like any bad path
            continue
        matched = sorted(glob.glob(pattern))
        if not matched:
            raise ConfigError(pattern, "", "no file matches this pattern")
        paths += matched
    return paths


def wait_for_chain(store, run: int) -> int | None:  # noqa: ANN001
    """A foreground stage waits for the runs it names (`run 7 waits for run 6`), then runs; if one of
    them fails or is cancelled (or Ctrl-C here) it ends at once, naming it: returns that exit status."""
    import os

    from rltui.runner.execute import finish_run
    from rltui.runner.lifecycle import heartbeat_interval
    from rltui.runner import scheduler
    from rltui.store.status import CANCELLED

    def say(what: str) -> None:
        print(f"run {run} {what}; it starts when that completes (Ctrl-C cancels it)", file=sys.stderr, flush=True)

    try:
        why = scheduler.wait_in_foreground(store, run, os.getpid(), beat_every=heartbeat_interval(), on_wait=say)
    except KeyboardInterrupt:
        finish_run(store, run, CANCELLED, error="cancelled while it waited (Ctrl-C)")
        why = "cancelled while it waited (Ctrl-C)"
    if why is None:
        return None
    print(f"rltui: run {run}: {why}", file=sys.stderr)
    return 1
