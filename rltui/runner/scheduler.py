"""The queue's rules, with no daemon: slots per host, claiming, and chains of runs that wait.

    queued ──(its slot pool on this host has room, and every run it waits for completed)──▶ running

Slots are counted per host (runs.host_id: machine id + boot id) and per pool ("cpu", "cuda:N"):
at most RLTUI_MAX_RUNS CPU runs and RLTUI_MAX_GPU_RUNS runs per GPU of one host at once.

Claiming is one short write transaction that counts this host's running runs and marks the next
queued run `running`. On SQLite, BEGIN IMMEDIATE serialises every claimer of the store. On
PostgreSQL a transaction-level advisory lock, keyed on the host, serialises the claimers of one
host (the count and the claim cannot interleave, so a host never exceeds its cap), and the row
itself is taken `FOR UPDATE SKIP LOCKED`: a claimer that meets a row another host is taking skips
to the next one instead of giving up, so no slot stays idle.

Chains: a config that names another run (`init_run = 12`, `reward_run = "latest:reward_model"`)
makes the run wait for it (runs.waits_for, {field: run id}). "latest:ALGO" is resolved when the run
is submitted, to the newest run of ALGO on the same env, finished or not; while there is none yet
(stages submitted in reverse order), it stays "latest:ALGO" and is bound by the next claim pass
that finds one. A run whose awaited run failed, was cancelled, crashed or was deleted fails at once.
"""

from __future__ import annotations

import glob
import hashlib
import os
import time
from collections import Counter
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from rltui import registry
from rltui.store.runs_table import utcnow
from rltui.runner.hosts import host_id, hostname
from rltui.store.sql import Json, Tx, as_json
from rltui.store.status import CANCELLED, COMPLETED, CRASHED, FAILED, QUEUED, RUNNING

BROKEN = (FAILED, CANCELLED, CRASHED)


class SchedulerError(Exception):
    """A setting or a chain that cannot be honoured; the message says why."""


# --- settings ------------------------------------------------------------------------------------
def env_number(name: str, default: float, cast: Callable[[str], float] = float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = cast(raw)
    except ValueError:
        raise SchedulerError(f"${name}={raw!r}: expected a number") from None
    if value <= 0:
        raise SchedulerError(f"${name}={raw!r}: must be positive")
    return value


def max_runs() -> int:
    return int(env_number("RLTUI_MAX_RUNS", os.cpu_count() or 1, int))


def max_gpu_runs() -> int:
    return int(env_number("RLTUI_MAX_GPU_RUNS", 1, int))


def visible_gpus() -> int:
    """How many CUDA GPUs this host shows, without importing torch."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    return len(glob.glob("/proc/driver/nvidia/gpus/*"))


def worker_slots() -> int:
    """How many worker processes this host may have for one store: every CPU and GPU slot."""
    return max_runs() + max_gpu_runs() * visible_gpus()


# --- slot pools ----------------------------------------------------------------------------------
def uses_torch(algo_id: str, algo_config: dict[str, Any] | None) -> bool:
    """An algorithm uses torch if its spec says so, or if its params switch torch on (`uses_torch`)."""
    spec = registry.find_algo(algo_id)
    return bool(spec is not None and spec.uses_torch) or bool((algo_config or {}).get("uses_torch"))


def slot_of(device: str, device_used: str | None, torch_run: bool) -> str:
    """Which pool a run counts against: "cpu", or "cuda:N" (GPU runs are counted per GPU)."""
    d = device_used or device
    if d.startswith("cuda"):
        return d if ":" in d else "cuda:0"
    if d == "auto" and torch_run and visible_gpus() > 0:
        return "cuda:0"  # what the worker's "auto" will pick
    return "cpu"


def capacity(slot: str) -> int:
    return max_gpu_runs() if slot.startswith("cuda") else max_runs()


def config_algo(config: Any) -> dict[str, Any]:
    return (as_json(config) or {}).get("algo") or {}


def _pool(device: str, device_used: str | None, algo_id: str, config: Any) -> str:
    # Whether the run uses torch matters only for "auto" on a host with a GPU; asking imports its
    # algorithm's schema family, which a worker about to run something else need not pay for.
    torch_run = (device_used or device) == "auto" and visible_gpus() > 0 and uses_torch(algo_id, config_algo(config))
    return slot_of(device, device_used, torch_run)


def is_mine(row_host_id: str | None, row_host: str | None) -> bool:
    """Whether a run row belongs to this host (rows from before host ids: by hostname)."""
    return row_host_id == host_id() if row_host_id else row_host == hostname()


# --- chains --------------------------------------------------------------------------------------
LATEST = "latest:"


def run_refs(algo_config: dict[str, Any]) -> dict[str, int | str]:
    """The [algo] values that name another run: `*_run` keys holding an id or "latest:ALGO"."""
    refs: dict[str, int | str] = {}
    for key, value in (algo_config or {}).items():
        if not key.endswith("_run") or isinstance(value, bool):
            continue
        if isinstance(value, int) or (isinstance(value, str) and value.startswith(LATEST)):
            refs[key] = value
    return refs


def latest_run(tx: Tx, algo: str, env_id: str, exclude: set[int] | frozenset[int] = frozenset()) -> int | None:
    """The newest run of `algo` on `env_id`, whatever its status, leaving out the ids in `exclude`."""
    for (run_id,) in tx.all("SELECT id FROM runs WHERE algo_id = :algo AND env_id = :env ORDER BY id DESC",
                            algo=algo, env=env_id):
        if run_id not in exclude:
            return run_id
    return None


def resolve_refs(tx: Tx, refs: dict[str, int | str], env_id: str,
                 exclude: set[int] | frozenset[int] = frozenset()) -> dict[str, int | str]:
    """Bind each "latest:ALGO" that has a candidate now (not in `exclude`); ids stay as they are."""
    out: dict[str, int | str] = {}
    for field, ref in refs.items():
        if isinstance(ref, str):
            found = latest_run(tx, ref[len(LATEST):], env_id, exclude)
            out[field] = found if found is not None else ref
        else:
            out[field] = ref
    return out


def _waiting_on(graph: dict[int, set[int]], run_id: int) -> set[int]:
    """`run_id` and every queued run that waits for it, directly or down a chain: binding a
    "latest:" of run_id to any of them would make a cycle that never starts."""
    out, todo = {run_id}, [run_id]
    while todo:
        target = todo.pop()
        for waiter, deps in graph.items():
            if target in deps and waiter not in out:
                out.add(waiter)
                todo.append(waiter)
    return out


def check_refs_exist(tx: Tx, refs: dict[str, int | str]) -> None:
    for field, ref in refs.items():
        if isinstance(ref, int) and tx.scalar("SELECT id FROM runs WHERE id = :id", id=ref) is None:
            raise SchedulerError(f"algo.{field} = {ref}: there is no run {ref} in this store")


_CHAIN_ROWS = "SELECT id, env_id, config, waits_for FROM runs WHERE status = :queued AND waits_for IS NOT NULL"


def _settle_chains(tx: Tx) -> set[int]:
    """Bind late "latest:" references, fail the runs whose awaited run is broken; returns the ids of
    queued runs that still wait for something unfinished. Runs inside the claim's transaction."""
    for _ in range(100):  # a failure breaks the runs waiting for the failed one: go round again
        rows = [(run_id, env_id, config, as_json(w) or {}) for run_id, env_id, config, w in tx.all(_CHAIN_ROWS, queued=QUEUED)]
        graph = {run_id: {v for v in waits.values() if isinstance(v, int)} for run_id, _e, _c, waits in rows}
        waiting: set[int] = set()
        failed_any = False
        for run_id, env_id, config, waits in rows:
            if not waits:
                continue
            if any(isinstance(v, str) for v in waits.values()):
                bound = resolve_refs(tx, waits, env_id, exclude=_waiting_on(graph, run_id))
                if bound != waits:
                    cfg = as_json(config) or {}
                    cfg.setdefault("algo", {}).update({k: v for k, v in bound.items() if isinstance(v, int)})
                    tx.run("UPDATE runs SET waits_for = :waits, config = :config WHERE id = :id AND status = :queued",
                           waits=Json(bound), config=Json(cfg), id=run_id, queued=QUEUED)
                    waits = bound
                    graph[run_id] = {v for v in bound.values() if isinstance(v, int)}
            verdict = _chain_verdict(tx, waits)
            if verdict is True:
                continue
            if verdict is None:
                waiting.add(run_id)
                continue
            failed_any |= bool(tx.run(
                "UPDATE runs SET status = :failed, finished_at = :now, error = :error WHERE id = :id AND status = :queued",
                failed=FAILED, now=utcnow(), error=verdict, id=run_id, queued=QUEUED,
            ))
        if not failed_any:
            return waiting
    return waiting


def _chain_verdict(tx: Tx, waits: dict[str, int | str]) -> bool | str | None:
    """True: every awaited run completed; None: still waiting; a message: one of them broke."""
    done = True
    for field, ref in waits.items():
        if not isinstance(ref, int):
            done = False
            continue
        row = tx.first("SELECT status, algo_id FROM runs WHERE id = :id", id=ref)
        if row is None:
            return f"algo.{field} = {ref}: run {ref} is no longer in this store; this run cannot start"
        status, algo = row
        if status in BROKEN:
            return f"algo.{field} = {ref}: run {ref} ({algo}) {status}; this run cannot start without it"
        if status != COMPLETED:
            done = False
    return True if done else None


# --- claiming ------------------------------------------------------------------------------------
_SLOT_COLUMNS = "SELECT id, device, device_used, algo_id, config, host_id, host FROM runs WHERE status = :status"


def _candidates(tx: Tx, waiting: set[int] | None) -> tuple[list[tuple[int, str]], Counter]:
    """Queued runs free to start, in submission order, with their pools; and this host's used slots.
    `waiting`: the queued runs held by their chain (computed here, read-only, when not given)."""
    used = Counter(_pool(d, du, a, c) for _i, d, du, a, c, hid, h in tx.all(_SLOT_COLUMNS, status=RUNNING) if is_mine(hid, h))
    if waiting is None:
        waiting = {run_id for run_id, _e, _c, w in tx.all(_CHAIN_ROWS, queued=QUEUED)
                   if _chain_verdict(tx, as_json(w) or {}) is not True}
    # A queued run with a pid waits in its own foreground `rltui run` (wait_in_foreground): not for a worker.
    queued = [(run_id, _pool(device, device_used, algo_id, config))
              for run_id, device, device_used, algo_id, config, _hid, _h
              in tx.all(_SLOT_COLUMNS + " AND pid IS NULL ORDER BY id", status=QUEUED)
              if run_id not in waiting]
    return queued, used


def claimable(tx: Tx, waiting: set[int] | None = None) -> list[int]:
    """Queued run ids that would get a slot on this host now, in the order they would start."""
    queued, used = _candidates(tx, waiting)
    out = []
    for run_id, pool in queued:
        if used[pool] < capacity(pool):
            used[pool] += 1
            out.append(run_id)
    return out


def _host_lock_key() -> int:
    """A signed 64-bit key for PostgreSQL's advisory lock: one per host."""
    return int.from_bytes(hashlib.blake2b(f"rltui-claim:{host_id()}".encode(), digest_size=8).digest(), "big", signed=True)


class ClaimBusy(Exception):
    """A claim asked not to wait found the store's write lock taken."""


@contextmanager
def _claim_transaction(store: Any, wait: bool) -> Iterator[Tx]:
    """The transaction a claim runs in: SQLite's write lock, or PostgreSQL's per-host advisory lock.
    With wait=False a busy store raises ClaimBusy at once."""
    try:
        with (store.sql.write() if wait else store.sql.try_write()) as tx:
            if not store.is_sqlite:
                if wait:
                    tx.all("SELECT pg_advisory_xact_lock(:key)", key=_host_lock_key())
                elif not tx.scalar("SELECT pg_try_advisory_xact_lock(:key)", key=_host_lock_key()):
                    raise ClaimBusy("another claimer on this host holds the claim lock")
            yield tx
    except ClaimBusy:
        raise
    except Exception as exc:  # noqa: BLE001
        if not wait and is_busy(exc):
            raise ClaimBusy(str(exc)) from exc
        raise


def is_busy(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text or "lock timeout" in text or "lock_timeout" in text


def claim(
    store: Any,
    *,
    pid: int | None,
    pid_start: int | None,
    log_path_for: Callable[[int], str | None],
    wait: bool = True,
) -> int | None:
    """Mark the next queued run that has a slot on this host as `running` for a worker; its id.

    `pid` None claims for a worker about to be started (the spawner fills the pid in); counting it
    in the same transaction as the claim is what keeps the host within its slots. With wait=False
    (readers) a busy store raises ClaimBusy at once instead of waiting.
    """
    with _claim_transaction(store, wait) as tx:
        queued, used = _candidates(tx, _settle_chains(tx))
        for run_id, pool in queued:
            if used[pool] >= capacity(pool):
                continue
            if not store.is_sqlite and tx.first(
                "SELECT id FROM runs WHERE id = :id AND status = :queued FOR UPDATE SKIP LOCKED", id=run_id, queued=QUEUED
            ) is None:
                continue  # another host is taking it (or took it): the next one
            now = utcnow()
            taken = tx.run(
                "UPDATE runs SET status = :running, pid = :pid, pid_start = :pid_start, host = :host, host_id = :host_id,"
                " heartbeat_at = :now, started_at = coalesce(started_at, :now), finished_at = NULL, log_path = :log_path"
                " WHERE id = :id AND status = :queued",
                running=RUNNING, pid=pid, pid_start=pid_start, host=hostname(), host_id=host_id(), now=now,
                log_path=log_path_for(run_id), id=run_id, queued=QUEUED,
            )
            if taken:
                return run_id
    return None


def settle_chains(store: Any) -> None:
    """Fail the queued runs whose awaited run ended badly (after a cancel, say), if the store is free."""
    try:
        with _claim_transaction(store, wait=False) as tx:
            _settle_chains(tx)
    except ClaimBusy:
        pass


def set_worker(store: Any, run_id: int, pid: int, pid_start: int | None) -> bool:
    """Fill in the worker of a run claimed for a worker that was starting (whoever gets there first)."""
    with store.sql.write() as tx:
        return bool(tx.run(
            "UPDATE runs SET pid = :pid, pid_start = :pid_start WHERE id = :id AND status = :running"
            " AND pid IS NULL AND host_id = :host_id",
            pid=pid, pid_start=pid_start, id=run_id, running=RUNNING, host_id=host_id(),
        ))


def assigned_run(store: Any, pid: int) -> int | None:
    """The run claimed for worker `pid` on this host, if any (an early worker waits for one)."""
    with store.sql.read() as tx:
        return tx.scalar(
            "SELECT min(id) FROM runs WHERE status = :running AND pid = :pid AND host_id = :host_id",
            running=RUNNING, pid=pid, host_id=host_id(),
        )


def wait_in_foreground(store: Any, run_id: int, pid: int, *, poll: float = 0.25, beat_every: float = 1.0,
                       on_wait: Callable[[str], None] | None = None) -> str | None:
    """Hold a foreground run (`rltui run STAGE.toml`, created queued under `pid`, which no worker
    claims) until every run it waits for completed, then mark it running under `pid`: returns None.
    If an awaited run fails, is cancelled or is gone, or this run was cancelled meanwhile, returns
    why (the run then ended `failed`/`cancelled`). `on_wait` is told once what it waits for. Polls
    read; binding a late "latest:" and the heartbeat stamp (every `beat_every` s) never wait."""
    from rltui.store.runs_table import waits_text

    said, stamped = False, 0.0
    while True:
        status, error, env_id, waits, verdict = _foreground_state(store, run_id)
        if verdict is None and any(isinstance(v, str) for v in waits.values()):
            settle_chains(store)  # a stage submitted before its "latest:" run existed: bind it now
            status, error, env_id, waits, verdict = _foreground_state(store, run_id)
        if status != QUEUED:
            return error or f"run {run_id} is {status or 'gone'}"
        if isinstance(verdict, str):  # an awaited run broke: this one fails, naming it
            with store.sql.write() as tx:
                tx.run("UPDATE runs SET status = :failed, finished_at = :now, error = :error WHERE id = :id AND status = :queued",
                       failed=FAILED, now=utcnow(), error=verdict, id=run_id, queued=QUEUED)
            continue  # read back what the row says now (a cancel may have come first)
        if verdict is True:
            now = utcnow()
            with store.sql.write() as tx:
                taken = tx.run(
                    "UPDATE runs SET status = :running, heartbeat_at = :now, started_at = :now WHERE id = :id"
                    " AND status = :queued AND pid = :pid", running=RUNNING, now=now, id=run_id, queued=QUEUED, pid=pid)
            if taken:
                return None
            continue
        if time.monotonic() - stamped >= beat_every:
            stamped = time.monotonic()
            try:  # proof of life while it waits (a reader on another host goes by it: lifecycle.why_dead)
                with store.sql.try_write() as tx:
                    tx.run("UPDATE runs SET heartbeat_at = :now WHERE id = :id AND status = :queued AND pid = :pid",
                           now=utcnow(), id=run_id, queued=QUEUED, pid=pid)
            except Exception as exc:  # noqa: BLE001
                if not is_busy(exc):
                    raise
        if not said and on_wait is not None:
            said = True
            on_wait(waits_text(waits, env_id) or "waits")
        time.sleep(poll)


def _foreground_state(store: Any, run_id: int) -> tuple[Any, Any, Any, dict[str, Any], bool | str | None]:
    """(status, error, env id, waits_for, its verdict: see _chain_verdict; None unless queued)."""
    with store.sql.read() as tx:
        status, error, env_id, waits = tx.first(
            "SELECT status, error, env_id, waits_for FROM runs WHERE id = :id", id=run_id) or (None,) * 4
        waits = as_json(waits) or {}
        return status, error, env_id, waits, _chain_verdict(tx, waits) if status == QUEUED else None
