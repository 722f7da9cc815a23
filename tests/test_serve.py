"""`rltui serve`: a real server process, real app processes behind a real websocket, real signals;
and (slow) the lab driven in Debian's Chromium through Playwright, nothing downloaded."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO
from test_tui_common import demo_store  # noqa: F401 — fixture

pytest.importorskip("textual_serve")

ANSI = re.compile(rb"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][A-Za-z0-9]|\x1b[=>NOM78c]")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children_of(pid: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(name))
    return out


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def start_server(db: Path, port: int, *extra: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "rltui.cli", "--db", str(db), "serve", "--port", str(port), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, env=os.environ.copy())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("the server did not listen")


async def open_tab(port: int, want: bytes, seconds: float = 60) -> tuple[object, object, bytes]:
    """A browser tab's websocket (what textual.js opens): the server starts an app for it."""
    import aiohttp

    session = aiohttp.ClientSession()
    ws = await session.ws_connect(f"http://127.0.0.1:{port}/ws?width=100&height=30")
    seen = b""
    deadline = time.monotonic() + seconds
    while want not in ANSI.sub(b"", seen) and time.monotonic() < deadline:
        try:
            msg = await ws.receive(timeout=1)
        except asyncio.TimeoutError:
            continue
        if msg.type == aiohttp.WSMsgType.BINARY:
            seen += msg.data
        elif msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            break
    return session, ws, seen


@pytest.mark.slow  # a server and an app process each (about 10 s under load)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signalled_server_ends_every_app_it_started(demo_store, db_path, sig):
    port = free_port()
    server = start_server(db_path, port)
    try:
        async def main():
            session, ws, seen = await open_tab(port, b"cartpole-ppo")
            assert b"cartpole-ppo" in ANSI.sub(b"", seen)  # the lab's runs table, over the websocket
            apps = children_of(server.pid)
            assert apps, "the server started no app"
            grandchildren = [c for a in apps for c in children_of(a)]
            server.send_signal(sig)
            code = await asyncio.get_running_loop().run_in_executor(None, server.wait, 30)
            await session.close()
            return apps + grandchildren, code

        procs, code = asyncio.run(main())
        assert code == 0
        deadline = time.monotonic() + 5
        while any(alive(p) for p in procs) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [p for p in procs if alive(p)], "an app outlived its server"
        _, err = server.communicate(timeout=5)
        assert "NO AUTHENTICATION" in err.decode() and f"http://127.0.0.1:{port}/" in err.decode()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


@pytest.mark.slow
def test_an_app_ends_with_its_server_even_when_the_server_is_killed(demo_store, db_path):
    """SIGKILL leaves the server no chance to clean up: each app asked the kernel to end it then."""
    port = free_port()
    server = start_server(db_path, port)
    try:
        async def main():
            session, ws, seen = await open_tab(port, b"cartpole-ppo")
            apps = children_of(server.pid)
            server.kill()
            server.wait(timeout=30)
            deadline = time.monotonic() + 10
            while any(alive(p) for p in apps) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await session.close()
            return apps

        apps = asyncio.run(main())
        assert apps and not [p for p in apps if alive(p)], "an app outlived its SIGKILLed server"
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_serve_listens_on_localhost_only_by_default(demo_store, db_path):
    port = free_port()
    server = start_server(db_path, port)
    try:
        addresses = {s.split()[1] for s in Path("/proc/net/tcp").read_text().splitlines()[1:]
                     if s.split()[3] == "0A"}  # LISTEN
        assert f"0100007F:{port:04X}" in addresses  # 127.0.0.1
        assert f"00000000:{port:04X}" not in addresses  # not 0.0.0.0
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_serve_on_a_taken_port_says_so_in_one_line(demo_store, db_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "rltui.cli", "--db", str(db_path), "serve", "--port", str(port)],
                              capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 2
    assert f"rltui: cannot listen on 127.0.0.1:{port}" in proc.stderr


CHROMIUM = "/usr/bin/chromium"


@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
def test_the_lab_in_a_real_browser(demo_store, db_path):
    """Chromium opens the page, the runs table shows, a run opens, and its header and plot are read.

    xterm.js draws on a canvas, so the page's text is read where the page gets it: the terminal
    output on its websocket, captured by Playwright as the page receives it, with the escape
    sequences taken out.
    """
    playwright = pytest.importorskip("playwright.sync_api")
    port = free_port()
    server = start_server(db_path, port)
    received: list[bytes] = []

    def page_text() -> str:
        return ANSI.sub(b"", b"".join(received)).decode(errors="replace")

    def wait_text(text: str, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while text not in page_text() and time.monotonic() < deadline:
            page.wait_for_timeout(200)
        assert text in page_text(), page_text()[-2000:]

    try:
        with playwright.sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM,
                args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                      "--disable-component-update", "--disable-sync", "--no-first-run"])
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("websocket", lambda ws: ws.on(
                "framereceived", lambda payload: received.append(payload if isinstance(payload, bytes) else b"")))
            page.goto(f"http://127.0.0.1:{port}/")
            start = page.locator("#start")
            if start.is_visible():
                start.click()
            wait_text("cartpole-ppo")  # the runs table
            assert page.locator(".xterm").count() == 1  # drawn by xterm.js in the page
            page.locator(".xterm").click()  # keys go to xterm's input, then down the websocket
            page.keyboard.press("/")
            wait_text("filter: name, env")  # the filter box is up (and focused) before we type
            page.wait_for_timeout(500)
            page.keyboard.type("cartpole", delay=50)
            wait_text("filter 'cartpole': 1 match")
            page.keyboard.press("Enter")
            page.wait_for_timeout(500)
            received.clear()
            page.keyboard.press("Enter")  # open the run under the cursor
            wait_text("ppo on cartpole")  # the run header
            wait_text("episode return G (180 episodes)")  # the return plot's title
            wait_text("approx_kl (last")  # a metric plot of the grid
            text = page_text()
            assert "best G 500" in text and "episodes 180" in text  # the header's info line
            assert any("\u2801" <= ch <= "\u28ff" for ch in text)  # the curves: braille dots
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
