"""Run statuses, importable without SQLAlchemy (the worker's lean path needs them).

A run is `queued` until a worker picks it up, `running` while it heartbeats, then ends `completed`,
`failed` (the algorithm raised), `cancelled` (asked to stop) or `crashed` (the worker died without
saying so: stale heartbeat or vanished pid).
"""

QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED, CRASHED = (
    "queued",
    "running",
    "completed",
    "failed",
    "cancelled",
    "crashed",
)
STATUSES = (QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED, CRASHED)
ACTIVE_STATUSES = (QUEUED, RUNNING)
FINAL_STATUSES = (COMPLETED, FAILED, CANCELLED, CRASHED)
