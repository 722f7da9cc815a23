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

# A running run whose heartbeat is older than this is shown as stalled (its worker is alive but
# silent: stopped, swapping, a lid closed). Only for runs on other hosts does it also mean crashed.
HEARTBEAT_TIMEOUT_ENV = "RLTUI_HEARTBEAT_TIMEOUT"
DEFAULT_HEARTBEAT_TIMEOUT = 10.0


def stall_seconds() -> float:
    """$RLTUI_HEARTBEAT_TIMEOUT (default 10 s); a bad value is refused by the runner, not here."""
    import os

    try:
        value = float(os.environ.get(HEARTBEAT_TIMEOUT_ENV) or DEFAULT_HEARTBEAT_TIMEOUT)
    except ValueError:
        return DEFAULT_HEARTBEAT_TIMEOUT
    return value if value > 0 else DEFAULT_HEARTBEAT_TIMEOUT


def status_note(status: str, heartbeat_age: float | None, waits: str | None = None) -> str | None:
    """What a run's status alone does not say: "no heartbeat for 42 s" for a stalled running run,
    "waits for run 12" for a queued run held by its chain; None otherwise."""
    if status == RUNNING and heartbeat_age is not None and heartbeat_age > stall_seconds():
        return f"stalled: no heartbeat for {heartbeat_age:.0f} s"
    if status == QUEUED and waits:
        return waits
    return None
