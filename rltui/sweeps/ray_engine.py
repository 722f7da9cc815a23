"""engine = "ray": each run of a trial is a Ray task on a Ray cluster (`ray.init(address=...)`).

The task claims its one queued run in the store (a conditional UPDATE: only one claimer can win, on
every backend), records the Ray node it runs on, and executes it with the ordinary worker code
(execute_run: heartbeat, recorder, cancel), writing to the shared store like any worker. The driver
never trusts Ray's own retries (max_retries=0): a task that died with its node leaves its run
`crashed` in the store (its heartbeat stops), and the driver resumes that run — same id — as a new
task on a live node. So a trial is never lost and never recorded twice.

Imported only for a Ray sweep: the lab, ordinary runs and local sweeps never load Ray.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from rltui.store.status import QUEUED

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def run_on_node(db_url: str, run_id: int) -> str:
    """The Ray task: take run `run_id` if it is still queued and execute it here; its final status."""
    import ray

    from rltui.recorder import utcnow
    from rltui.runner.execute import execute_run, run_status
    from rltui.runner.lifecycle import heartbeat_interval, hostname, last_wall_time
    from rltui.store.engine import Store
    from rltui.store.status import RUNNING

    store = Store(db_url)
    try:
        node = ray.get_runtime_context().get_node_id()
        with store.sql.write() as tx:
            claimed = tx.run(
                "UPDATE runs SET status = :running, pid = :pid, host = :host, node = :node, heartbeat_at = :now,"
                " started_at = coalesce(started_at, :now), finished_at = NULL WHERE id = :id AND status = :queued",
                running=RUNNING, pid=os.getpid(), host=hostname(), node=node, now=utcnow(), id=run_id, queued=QUEUED,
            )
        if not claimed:
            return run_status(store, run_id) or "gone"  # a local worker, or an earlier task, has it
        print(f"rltui ray task {os.getpid()} on node {node}: run {run_id}", flush=True)
        return execute_run(store, run_id, wall_offset=last_wall_time(store, run_id),
                           heartbeat_interval=heartbeat_interval())
    finally:
        store.dispose()


def resources_for(device: str) -> dict[str, float]:
    """What a run's device needs from the cluster: a GPU for cuda runs, else one CPU."""
    if device.startswith("cuda"):
        return {"num_cpus": 1, "num_gpus": 1}
    return {"num_cpus": 1, "num_gpus": 0}


class RayEngine:
    name = "ray"

    def __init__(self, store: Any, spec: Any) -> None:
        import logging

        import ray

        self.ray, self.store = ray, store
        address = spec.address or os.environ.get("RAY_ADDRESS")
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False,
                 configure_logging=True)
        self.task = ray.remote(max_retries=0)(run_on_node)
        self.refs: dict[int, Any] = {}  # run id → its task
        self.slots = int(ray.cluster_resources().get("CPU", 1))
        self.device = (spec.base or {}).get("device", "auto")

    def dispatch(self, run_ids: list[int]) -> None:
        for run_id in run_ids:
            self.refs[run_id] = self.task.options(**resources_for(self.device)).remote(self.store.url, run_id)

    def poll(self, statuses: dict[int, str]) -> None:
        """Collect finished tasks; a task that died before claiming its run (its node went away while
        it waited) leaves the run queued: hand it to a new task."""
        if not self.refs:
            return
        ready, _ = self.ray.wait(list(self.refs.values()), num_returns=len(self.refs), timeout=0)
        done = {ref for ref in ready}
        for run_id, ref in list(self.refs.items()):
            if ref not in done:
                continue
            del self.refs[run_id]
            try:
                self.ray.get(ref)
            except Exception as exc:  # noqa: BLE001 — the node or worker died: the store says what is left
                print(f"rltui sweep: the Ray task of run {run_id} failed: {type(exc).__name__}", file=sys.stderr,
                      flush=True)
            if statuses.get(run_id) == QUEUED:
                self.dispatch([run_id])

    def close(self) -> None:
        try:
            self.ray.shutdown()
        except Exception:  # noqa: BLE001
            pass
