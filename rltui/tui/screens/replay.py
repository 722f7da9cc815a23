"""Replay: step through a stored episode and see what the agent saw at every step.

The state is drawn from the run's "layout" artifact (grid with the agent and the path so far, chain,
cart-pole, token text, an image observation's channels as a coloured grid); beside it the action, the
reward, the return so far G_t, and the step's extras: Q(s,·) or π(·|s) as bars, V(s), TD error,
advantage; for language-model episodes the response token by token with logprob, reference logprob, KL
and advantage.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Header, Static

from rltui.store.models import Episode, Run
from rltui.store.queries import latest_artifact, trajectory_dicts
from rltui.text import printable
from rltui.tui import format as fmt
from rltui.tui.screens.base import LabScreen
from rltui.tui.widgets.footer import LabFooter
from rltui.tui.widgets.frame import FrameView, is_frame
from rltui.tui.widgets.state import action_name, draw_state, state_name
from rltui.tui.widgets.values import bars

SPEEDS = (0.5, 1, 2, 4, 8, 16, 32)


class ReplayScreen(LabScreen):
    HELP_TITLE = "Replay"
    HELP_ABOUT = ("Step through a recorded episode. G_t is the (undiscounted) return so far, r_0 + … + r_t; "
                  "the bars show what the agent computed at that state before acting.")
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("right,l,n", "step(1)", "Next", key_display="→"),
        Binding("left,h,p", "step(-1)", "Prev", key_display="←"),
        Binding("home,g", "goto(0)", "First", key_display="home", show=False),
        Binding("end,G", "goto(-1)", "Last", key_display="end", show=False),
        Binding("space", "play", "Play/pause"),
        Binding("plus,equals_sign", "speed(1)", "Faster", key_display="+"),
        Binding("minus", "speed(-1)", "Slower", key_display="-", show=False),
        Binding("j", "jump", "Jump to t"),
    ]

    def __init__(self, run_id: int, episode_id: int) -> None:
        super().__init__()
        self.run_id, self.episode_id = run_id, episode_id
        self.steps: list[dict[str, Any]] = []
        self.state_layout: dict[str, Any] | None = None
        self.values: list[float] | None = None
        self.meta: dict[str, Any] = {}
        self.t = 0
        self.playing = False
        self.speed_index = 3
        self._timer = None
        self.returns_so_far: list[float] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("loading…", id="replay-status")
        with VerticalScroll(id="replay-body"):
            with Horizontal(id="replay-row"):
                yield FrameView("", id="replay-frame")
                yield Static("", id="replay-state")
                yield Static("", id="replay-extras")
            yield Static("", id="replay-tokens")
        yield LabFooter()

    def on_mount(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="replay-load")
    def load(self) -> None:
        with self.lab.store.read() as session:
            ep = session.get(Episode, self.episode_id)
            run = session.get(Run, self.run_id)
            meta = {"index": ep.index, "phase": ep.phase, "return": ep.return_, "length": ep.length} if ep else {}
            meta["run_name"] = run.name if run else "?"
            steps = trajectory_dicts(session, self.episode_id)
            layout = tabular = None
            try:  # a damaged artifact row: the episode still replays, drawn without it
                layout = latest_artifact(session, self.run_id, "layout")
                tabular = latest_artifact(session, self.run_id, "tabular")
            except Exception as exc:  # noqa: BLE001
                meta["broken"] = f"{type(exc).__name__}: {exc}"
        self.post(self._loaded, meta, steps, layout, tabular)

    def _loaded(self, meta: dict[str, Any], steps: list[dict[str, Any]], layout: Any, tabular: Any) -> None:
        self.meta, self.steps = meta, steps
        self.state_layout = layout if isinstance(layout, dict) else None
        if isinstance(tabular, dict):
            self.values = tabular.get("V")
            if self.state_layout is None:
                self.state_layout = {"kind": "tabular", "states": tabular.get("states"), "actions": tabular.get("actions")}
        g, self.returns_so_far = 0.0, []
        for s in steps:
            g += float(s["reward"])
            self.returns_so_far.append(g)
        self.draw()

    # --- drawing ---------------------------------------------------------------------------------
    def draw(self) -> None:
        if not self.steps:
            self.query_one("#replay-status", Static).update(
                Text(f"episode {self.meta.get('index', '?')}: no trajectory was recorded", style="bold"))
            return
        n = len(self.steps)
        step = self.steps[self.t]
        extras = step.get("extras") or {}
        playing = f"▶ playing {SPEEDS[self.speed_index]:g} steps/s" if self.playing else "⏸ paused"
        broken = f"  (layout not drawn: {printable(self.meta['broken'])})" if self.meta.get("broken") else ""
        line1 = Text(f"run {self.run_id} {printable(self.meta.get('run_name', ''))} · episode {self.meta.get('index')} "
                     f"({printable(self.meta.get('phase'))}) · return {fmt.num(self.meta.get('return'))}", style="bold",
                     no_wrap=True, overflow="ellipsis")
        line2 = Text(f"t = {self.t}/{n - 1}  {fmt.progress_bar((self.t + 1) / n, 20)}  {playing}{broken}",
                     no_wrap=True, overflow="ellipsis")
        self.query_one("#replay-status", Static).update(Text("\n").join([line1, line2]))
        is_text = (self.state_layout or {}).get("kind") == "text" or "token" in extras
        width = self.size.width or 80
        frame = self.query_one("#replay-frame", FrameView)
        frame.display = is_frame(step.get("state"))
        self.query_one("#replay-state", Static).display = not frame.display
        if frame.display:  # an image observation: its channels beside Q(s,·)
            frame.show(self.state_layout, step["state"])
        try:
            state_view = draw_state(self.state_layout, self.steps, self.t,
                                    width=width // 2 - 4 if not is_text else width,
                                    V=self.values if (self.state_layout or {}).get("kind") in ("grid", "chain") else None)
        except Exception as exc:  # noqa: BLE001 — a layout of the wrong shape: the state as text instead
            state_view = Text(f"state: {printable(step.get('state'))}\n(not drawn: {type(exc).__name__}: "
                              f"{printable(exc)})")
        self.query_one("#replay-state", Static).update(state_view)
        self.query_one("#replay-extras", Static).update(self.extras_view(step, extras))
        self.query_one("#replay-extras", Static).display = True
        tokens = self.query_one("#replay-tokens", Static)
        if is_text:
            tokens.display = True
            tokens.update(self.token_table())
            self.query_one("#replay-state", Static).styles.width = "1fr"
        else:
            tokens.display = False

    def extras_view(self, step: dict[str, Any], extras: dict[str, Any]) -> Group:
        layout = self.state_layout
        actions = (layout or {}).get("actions")
        g = extras.get("return_so_far", self.returns_so_far[self.t])
        head = Table.grid(padding=(0, 1))
        head.add_column(style="bold", no_wrap=True)
        head.add_column()
        # State and action names come from the MDP file or the env: plain Text cells, never markup.
        if not isinstance(step["state"], dict):
            head.add_row("state s", Text(printable(
                state_name(layout, step["state"]) if not isinstance(step["state"], list)
                else ", ".join(f"{v:+.3f}" if isinstance(v, float) else str(v) for v in step["state"]))))
        head.add_row("action a", Text(printable(action_name(layout, step["action"]))))
        head.add_row("reward r", fmt.num(step["reward"]))
        head.add_row("G_t so far", fmt.num(g))
        if step.get("done"):
            head.add_row("", Text("episode ends (terminal)", style="bold"))
        for key, label in (("V", "V(s)"), ("td_error", "TD error δ"), ("advantage", "advantage A_t"),
                           ("value", "value"), ("logprob", "logprob"), ("ref_logprob", "ref logprob"),
                           ("kl", "KL")):
            if key in extras and isinstance(extras[key], (int, float)):
                head.add_row(label, fmt.num(extras[key]))
        parts: list[Any] = [head]
        chosen = step["action"] if isinstance(step["action"], int) else None
        states = (layout or {}).get("states")
        for key, label, names_of in (("Q", "Q(s,·)", actions), ("pi", "π(·|s)", actions),
                                     ("belief", "belief b(s)", states)):
            vals = extras.get(key)
            # None: an action unavailable in this state (drawn as such, never as a number)
            if isinstance(vals, list) and vals and all(v is None or isinstance(v, (int, float)) for v in vals):
                names = ([str(a) for a in names_of] if names_of and len(names_of) == len(vals)
                         else [str(i) for i in range(len(vals))])
                parts.append(Text(f"\n{label}", style="bold"))
                parts.append(bars(names, vals, width=16, highlight=chosen if key != "belief" else None,
                                  fmt="{:+.3f}" if key == "Q" else "{:.3f}"))
        shown = {"Q", "pi", "belief", "V", "td_error", "advantage", "return_so_far", "value", "logprob", "ref_logprob",
                 "kl", "token"}
        other = {k: v for k, v in extras.items() if k not in shown}
        if other:
            parts.append(Text("\n" + "\n".join(printable(f"{k}: {v}") for k, v in list(other.items())[:8])))
        return Group(*parts)

    def token_table(self) -> Table:
        """Per-token statistics around the current token (a window that fits 80x24)."""
        table = Table(box=None, header_style="bold", pad_edge=False)
        for col in ("t", "token", "logprob", "ref logprob", "KL", "advantage"):
            table.add_column(col, justify="left" if col == "token" else "right", no_wrap=True)
        lo = max(0, min(self.t - 3, len(self.steps) - 7))
        for i in range(lo, min(len(self.steps), lo + 7)):
            e = self.steps[i].get("extras") or {}
            table.add_row(str(i), Text(printable(repr(str(e.get("token", self.steps[i]["action"]))))),
                          fmt.num(e.get("logprob")),
                          fmt.num(e.get("ref_logprob")), fmt.num(e.get("kl")), fmt.num(e.get("advantage")),
                          style="bold reverse" if i == self.t else "")
        return table

    # --- actions ---------------------------------------------------------------------------------
    def action_step(self, delta: int) -> None:
        if self.steps:
            self.t = max(0, min(len(self.steps) - 1, self.t + delta))
            if self.playing and self.t == len(self.steps) - 1 and delta > 0:
                self._stop()
            self.draw()

    def action_goto(self, t: int) -> None:
        if self.steps:
            self.t = t % len(self.steps)
            self.draw()

    def action_play(self) -> None:
        if self.playing:
            self._stop()
        else:
            if self.steps and self.t == len(self.steps) - 1:
                self.t = 0
            self.playing = True
            self._restart_timer()
        self.draw()

    def _restart_timer(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_interval(1 / SPEEDS[self.speed_index], lambda: self.action_step(1))

    def _stop(self) -> None:
        self.playing = False
        if self._timer is not None:
            self._timer.stop()
            self._timer = None

    def action_speed(self, delta: int) -> None:
        self.speed_index = max(0, min(len(SPEEDS) - 1, self.speed_index + delta))
        if self.playing:
            self._restart_timer()
        self.draw()

    def action_jump(self) -> None:
        from rltui.tui.screens.dialogs import PromptDialog

        def done(value: str | None) -> None:
            try:
                t = int((value or "").strip())
            except ValueError:
                if value:
                    self.notify(f"not a step number: {value!r}", severity="warning")
                return
            self.action_goto(max(0, min(len(self.steps) - 1, t)))

        self.lab.push_screen(PromptDialog(f"Jump to step t (0–{max(0, len(self.steps) - 1)})", str(self.t)), done)
