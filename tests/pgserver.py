"""A throwaway PostgreSQL cluster for the tests: initdb in a temp dir, a free port on 127.0.0.1.

Started once per test process (pytest-xdist workers each get their own), stopped at exit. The server
is the real one from the distribution (scripts/system-packages.sh installs it); nothing is mocked.
TCP connections need the role's password (scram), so the store's password handling is exercised.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

ROLE = "rltui"
PASSWORD = "pw-" + os.urandom(6).hex()


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or ([shutil.which(name)] if shutil.which(name) else [])
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is not installed: run `bash scripts/system-packages.sh` (make test does)")
    return found[-1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThrowawayPostgres:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="rltui-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._as_user: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root: run the server as the distribution's postgres user
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *cmd: str, input: str | None = None) -> None:
        subprocess.run([*self._as_user, *cmd], check=True, capture_output=True, text=True, input=input, timeout=60)

    def start(self) -> "ThrowawayPostgres":
        self._run(_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync")
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-o", opts, "-l", str(self.root / "server.log"), "-w", "-t", "30", "start")
        atexit.register(self.stop)
        # The password goes through stdin, never a command line.
        self.psql(f"CREATE ROLE {ROLE} LOGIN CREATEDB PASSWORD '{PASSWORD}';")
        return self

    def psql(self, sql: str, database: str = "postgres") -> None:
        self._run(_bin("psql"), "-h", str(self.root), "-p", str(self.port), "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1", "-q", input=sql)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{ROLE}:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        self.psql(f'CREATE DATABASE "{name}" OWNER {ROLE};')
        return self.url(name)

    def stop(self) -> None:
        if self.data.exists():
            subprocess.run([*self._as_user, _bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"], capture_output=True, timeout=60)
            shutil.rmtree(self.root, ignore_errors=True)
