"""Cancel and resume from the lab: the same flow on the Runs screen, the run screen and the palette.

`k` cancels (queued or running runs: graceful, forced after the grace period) and `u` resumes
(crashed, cancelled or failed runs, under the same id) on every screen that shows runs. Resume asks
first, since a run without a checkpoint restarts and loses what it recorded. The work goes through
rltui.tui.launching (the runner's torch-free launch API), in a thread worker: the UI never waits
on the store's write lock.
"""

from __future__ import annotations

from typing import Any, Callable

from rltui.store.status import CANCELLED, CRASHED, FAILED

RESUMABLE = (CRASHED, CANCELLED, FAILED)


def cancel_runs(screen: Any, ids: list[int], then: Callable[[], Any] | None = None) -> None:
    """Ask each run to stop; a toast per run says what happened."""
    _in_thread(screen, "cancel", ids, then)


def resume_runs(screen: Any, ids: list[int], then: Callable[[], Any] | None = None) -> None:
    """Ask, then queue each run again (a worker starts when a slot is free)."""
    from rltui.tui.screens.dialogs import ConfirmDialog

    which = f"run {ids[0]}" if len(ids) == 1 else f"{len(ids)} runs ({', '.join(map(str, ids[:6]))}{', …' if len(ids) > 6 else ''})"
    question = (f"Resume {which}?\nA run with a checkpoint continues from it (what it recorded after the "
                "checkpoint is dropped); one without (tabular runs) starts over and its data so far is deleted.")

    def done(ok: bool | None) -> None:
        if ok:
            _in_thread(screen, "resume", ids, then)

    screen.app.push_screen(ConfirmDialog(question), done)


def _in_thread(screen: Any, verb: str, ids: list[int], then: Callable[[], Any] | None) -> None:
    from rltui.tui import launching

    def work() -> None:
        act = launching.cancel if verb == "cancel" else launching.resume
        for run_id in ids:
            try:
                screen.post(screen.notify, act(screen.lab.store, run_id))
            except Exception as exc:  # noqa: BLE001 — LifecycleError and the like: say it, keep the lab open
                screen.post(screen.notify, f"run {run_id}: {verb} failed: {exc}", severity="error", timeout=8)
        if then is not None:
            screen.post(then)

    screen.run_worker(work, thread=True, group=f"run-{verb}", exit_on_error=False)
