"""`rltui serve`: the same lab in a browser, through textual-serve.

textual-serve runs one copy of the app per browser tab (`sh -c COMMAND`, talking over its pipes) and
draws it with xterm.js. Two things it leaves to us:

- It has no authentication: whoever reaches the port drives the lab (and its store). It binds to
  127.0.0.1 unless told otherwise, and says so; reach it from elsewhere with `ssh -L`.
- A server that dies leaves its apps behind, each spinning at 100% CPU on a closed pipe. So the
  server leads its own process group and, however it ends (Ctrl-C, SIGTERM, SIGHUP), ends the whole
  group: every app and anything an app started in the foreground. Workers that run the runs are
  detached in their own sessions and keep going. An app also asks the kernel to send it SIGTERM when
  the server dies (PR_SET_PDEATHSIG), which covers even a SIGKILLed server.

The store is handed to the apps in $RLTUI_DB, never on a command line (a PostgreSQL URL may hold a
password, and command lines are visible to every user in `ps`).
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import time

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
GRACE_SECONDS = 3.0  # for the apps to quit on SIGTERM before SIGKILL


class ServeError(Exception):
    """A user-facing problem starting the server (the CLI prints it, exit status 2)."""


def app_command() -> str:
    """What textual-serve runs per browser tab: the lab, exec'd in place of the shell."""
    return f"exec {shlex.quote(sys.executable)} -m rltui.serve --app"


def serve(db: str | None, host: str = "127.0.0.1", port: int = 8000) -> int:
    try:
        from textual_serve.server import Server
    except ImportError as exc:
        raise ServeError("serve needs textual-serve: pip install 'rltui[serve]'") from exc

    if db:
        os.environ["RLTUI_DB"] = db  # for the apps, which read it like every rltui command
    lead_own_process_group()
    print(f"rltui serve: http://{host}:{port}/ — NO AUTHENTICATION: anyone who can reach this port "
          "drives the lab and its store.", file=sys.stderr, flush=True)
    if host not in LOCAL_HOSTS:
        print(f"rltui serve: listening on {host}, beyond this machine. Prefer the default 127.0.0.1 and "
              f"`ssh -L {port}:localhost:{port} THIS_HOST`.", file=sys.stderr, flush=True)

    class LabServer(Server):
        def request_exit(self) -> None:
            # The apps first: textual-serve's own shutdown asks each to quit and waits on it, which
            # takes seconds per tab on a busy machine; an app that is gone lets its tab close at once.
            end_process_group()
            super().request_exit()

        async def on_startup(self, app) -> None:  # noqa: ANN001
            import asyncio

            # textual-serve handles SIGINT and SIGTERM; a closed ssh session sends SIGHUP.
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.request_exit)
            print(f"rltui serve: serving the lab on http://{host}:{port}/ (Ctrl-C to stop)", file=sys.stderr,
                  flush=True)

    try:
        LabServer(app_command(), host=host, port=port, title="rltui").serve()
    except OSError as exc:  # the port is taken, or the host is not ours
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    finally:
        end_process_group()
    return 0


def lead_own_process_group() -> None:
    """Make this process the leader of its own group, so ending the group ends only what it started.

    From an interactive shell it already is (job control puts each job in its own group), and then
    nothing changes: Ctrl-C still reaches it.
    """
    if os.getpgid(0) != os.getpid():
        try:
            os.setpgid(0, 0)
        except PermissionError:  # a session leader is its group's leader already
            pass


def group_members(pgid: int) -> list[int]:
    """Processes in group `pgid` other than this one (from /proc)."""
    me, out = os.getpid(), []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read().decode()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:  # state, ppid, pgrp
            out.append(int(name))
    return out


def end_process_group() -> None:
    """SIGTERM to every other process of our group, then SIGKILL to those still there after the grace."""
    pgid = os.getpgid(0)
    if pgid != os.getpid():
        return  # not our group (setpgid refused): ending it would end our parent's
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + GRACE_SECONDS
    while group_members(pgid) and time.monotonic() < deadline:
        _reap_children()
        time.sleep(0.05)
    for pid in group_members(pgid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _reap_children()


def _reap_children() -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


def _die_with_parent() -> None:
    """Ask Linux for SIGTERM when the server (our parent) dies, even by SIGKILL."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the server's group kill still ends us
        pass


def run_served_app() -> int:
    """One browser tab's lab (textual-serve's WebDriver is chosen by its environment)."""
    _die_with_parent()
    if os.getppid() == 1:  # the server died before we could ask
        return 1
    from rltui.tui.app import run_app

    return run_app(os.environ.get("RLTUI_DB") or None)


if __name__ == "__main__":
    if sys.argv[1:] == ["--app"]:
        sys.exit(run_served_app())
    print("usage: rltui serve [--host 127.0.0.1] [--port 8000]", file=sys.stderr)
    sys.exit(2)
