"""Tabular values: V over the grid as a heatmap with greedy-policy arrows, and the Q table."""

from __future__ import annotations

from typing import Any, Sequence

from rich.table import Table
from rich.text import Text

from rltui.text import printable

ARROWS = {"up": "↑", "right": "→", "down": "↓", "left": "←", "north": "↑", "east": "→", "south": "↓",
          "west": "←", "u": "↑", "r": "→", "d": "↓", "l": "←", "stay": "·", "noop": "·"}
# Cells that are not states (the layout has no position for them): walls and the cliff.
CELL_FILL = {"#": "█", "C": "░"}
CELL_WIDTHS = (7, 6, 5)  # the widest that fits the pane; where even 5 does not, the grid scrolls sideways
# A blue → white → red ramp readable on dark and light backgrounds (text switches black/white).
NEG, MID, POS = (49, 95, 180), (235, 235, 235), (200, 60, 50)


def arrow(action: Any) -> str:
    if action is None:
        return "·"
    return ARROWS.get(str(action).lower(), str(action)[:1])


def _blend(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b))  # type: ignore[return-value]


def value_colour(v: float, lo: float, hi: float) -> str:
    """Diverging colour: negative values blue, zero light, positive red (scaled by |max|)."""
    scale = max(abs(lo), abs(hi), 1e-12)
    t = max(-1.0, min(1.0, v / scale))
    rgb = _blend(MID, POS, t) if t >= 0 else _blend(MID, NEG, -t)
    return "#%02x%02x%02x" % rgb


def _text_on(bg: str) -> str:
    r, g, b = int(bg[1:3], 16), int(bg[3:5], 16), int(bg[5:7], 16)
    return "#000000" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "#ffffff"


def fit_cell_width(layout: dict[str, Any], width: int, widest: int = 7) -> int:
    """The widest cell (at most `widest`) with which the grid's columns fit in `width` characters."""
    cols = max(1, int(layout.get("cols", 1)))
    for w in CELL_WIDTHS:
        if w <= widest and w * cols <= width:
            return w
    return CELL_WIDTHS[-1]


def value_label(v: float, width: int) -> str:
    """V(s) in at most width-1 characters (a space apart from its neighbours): +0.53, -14.0, -14, -1e2."""
    room = max(2, width - 1)
    for text in (f"{v:+.2f}", f"{v:+.1f}", f"{v:+.0f}", f"{v:.0e}".replace("e+0", "e").replace("e-0", "e-")):
        if len(text) <= room:
            return text
    return text[:room]


def value_grid(layout: dict[str, Any], V: Sequence[float], policy: Sequence[Any] | None = None,
               agent: int | None = None, path: Sequence[int] = (), cell_width: int = 7) -> Text:
    """The grid: each state's cell coloured by V(s), showing V and the greedy arrow.

    Walls and cliff cells (not states) are filled, pits and goals lettered, from the layout's map;
    `agent` marks a state (replay). Values are written to fit `cell_width` (fit_cell_width).
    """
    rows, cols = int(layout["rows"]), int(layout["cols"])
    grid_map = layout.get("map") or ["." * cols] * rows
    positions = [tuple(p) for p in layout.get("positions", [])]
    where = {pos: s for s, pos in enumerate(positions)}
    vals = [float(v) for v in V] if V is not None and len(V) else []
    lo, hi = (min(vals), max(vals)) if vals else (0.0, 0.0)
    visited = set(path)
    text = Text(no_wrap=True)
    for r in range(rows):
        for line in range(2):
            for c in range(cols):
                ch = grid_map[r][c] if r < len(grid_map) and c < len(grid_map[r]) else "."
                s = where.get((r, c))
                if s is None or ch == "#":
                    fill = CELL_FILL.get(ch, " ")
                    if ch == "C":  # the cliff: a hatched band, lettered, so it is never blank
                        label = ("C" + fill * (cell_width - 1)) if line == 0 else fill * cell_width
                    else:
                        label = fill * cell_width
                    text.append(label, style="bold" if ch == "C" else "")
                    continue
                v = vals[s] if s < len(vals) else 0.0
                bg = value_colour(v, lo, hi) if vals else "#808080"
                fg = _text_on(bg)
                if line == 0:
                    mark = {"G": "G", "S": "S", "H": "H", "C": "C"}.get(ch, " ")
                    terminal = policy is not None and s < len(policy) and policy[s] is None
                    if agent is not None and s == agent:
                        a = "@"
                    else:
                        a = arrow(policy[s]) if policy is not None and s < len(policy) and not terminal else " "
                    trail = "∙" if s in visited and not (agent is not None and s == agent) else " "
                    gap = " " * max(0, (cell_width - 3) // 2)
                    label = f"{mark}{gap}{a}{trail}".ljust(cell_width)
                    style = f"bold {fg} on {bg}"
                else:
                    label = value_label(v, cell_width).center(cell_width)
                    style = f"{fg} on {bg}"
                text.append(label[:cell_width], style=style)
            text.append("\n")
    text.rstrip()
    return text


def chain_strip(n: int, V: Sequence[float] | None = None, agent: int | None = None,
                path: Sequence[int] = ()) -> Text:
    """A chain of n states in one row: ( 0 )─( 1 )─... with V below and the agent marked."""
    vals = [float(v) for v in V] if V is not None and len(V) else []
    lo, hi = (min(vals), max(vals)) if vals else (0.0, 0.0)
    text = Text(no_wrap=True)
    for s in range(n):
        style = "bold reverse" if agent == s else ("underline" if s in path else "")
        if vals:
            bg = value_colour(vals[s], lo, hi)
            style = f"{style} {_text_on(bg)} on {bg}".strip()
        text.append(f"({s:^3})", style=style)
        if s < n - 1:
            text.append("─")
    if vals:
        text.append("\n")
        for s in range(n):
            text.append(f"{vals[s]:+.2f}"[:5].center(5) + (" " if s < n - 1 else ""))
    return text


def q_table(states: Sequence[str], actions: Sequence[str], Q: Sequence[Sequence[float]],
            policy: Sequence[Any] | None = None, V: Sequence[float] | None = None, limit: int = 400) -> Table:
    """Q(s, a) per state with the greedy action in bold (a rich Table, for a Static)."""
    table = Table(box=None, pad_edge=False, header_style="bold", expand=False)
    table.add_column("s", no_wrap=True)
    if V is not None:
        table.add_column("V(s)", justify="right")
    for a in actions:  # names from the MDP file are text, not markup
        table.add_column(Text(f"Q(s,{printable(a)})"), justify="right")
    table.add_column("π(s)", justify="center")
    for s, name in enumerate(list(states)[:limit]):
        qs = list(Q[s]) if s < len(Q) else []
        live = [i for i, q in enumerate(qs) if q is not None]  # null: unavailable, or a terminal state
        best = max(live, key=lambda i: qs[i]) if live else None
        cells: list[Any] = [Text(printable(name))]
        if V is not None:
            cells.append(f"{float(V[s]):.3f}")
        terminal = policy is not None and s < len(policy) and policy[s] is None
        for i, q in enumerate(qs):
            cells.append(Text("—" if q is None else f"{q:.3f}", style="bold" if i == best and not terminal else ""))
        cells.append(Text(arrow(policy[s]) if policy is not None and s < len(policy) else ""))
        table.add_row(*cells)
    return table


def bars(labels: Sequence[str], values: Sequence[float], width: int = 24, highlight: int | None = None,
         fmt: str = "{:+.3f}") -> Text:
    """Horizontal bars (Q(s,·), π(·|s), a belief b(s)); negative values grow left of a centre line.
    A None value (an action unavailable in the state) is named as such, with no bar."""
    text = Text(no_wrap=True)
    known = [float(v) for v in values if v is not None]
    if not known:
        return text
    lo, hi = min(0.0, min(known)), max(0.0, max(known))
    span = (hi - lo) or 1.0
    zero = int(round((0 - lo) / span * width))
    pad = max(len(str(label)) for label in labels) if labels else 1
    for i, (label, v) in enumerate(zip(labels, values)):
        if v is None:
            text.append(f"{printable(label):>{pad}} " + " " * (width + 1) + " unavailable\n", style="dim")
            continue
        v = float(v)
        pos = int(round((v - lo) / span * width))
        a, b = sorted((zero, pos))
        line = [" "] * (width + 1)
        for k in range(a, b):
            line[k] = "█"
        line[min(zero, width)] = "│" if a == b else line[min(zero, width)]
        style = "bold" if i == highlight else ""
        text.append(f"{printable(label):>{pad}} ", style=style)
        text.append("".join(line), style="bold" if i == highlight else "")
        text.append(" " + fmt.format(v) + ("  ◀" if i == highlight else "") + "\n", style=style)
    text.rstrip()
    return text


def blackjack_grids(grids: dict[str, Any]) -> Text:
    """Sutton & Barto Figure 5.2 from the `blackjack` artifact: for a usable ace and for none, one
    grid with the player's sum down the side (21 at the top) and the dealer's card across (A..10),
    each cell the policy's action (H hit, S stick) and V(s), coloured by V."""
    players = [int(p) for p in grids["player"]]
    dealers = ["A" if int(d) == 1 else str(d) for d in grids["dealer"]]
    text = Text(no_wrap=True)
    for key, title in (("usable_ace", "usable ace"), ("no_usable_ace", "no usable ace")):
        panel = grids.get(key) or {}
        policy, V = panel.get("policy") or [], panel.get("V") or []
        text.append(f"{title}: π (H hit · S stick) and V, player sum ↓ by dealer showing →\n", style="bold")
        text.append("     " + "".join(f"{d:^7}" for d in dealers) + "\n")
        for i in reversed(range(len(players))):
            text.append(f"{players[i]:>4} ")
            for j in range(len(dealers)):
                v = float(V[i][j]) if i < len(V) and j < len(V[i]) else 0.0
                act = policy[i][j] if i < len(policy) and j < len(policy[i]) else None
                bg = value_colour(v, -1.0, 1.0)
                letter = "·" if act is None else ("H" if int(act) == 1 else "S")
                text.append(f"{letter}{v:+.2f}".center(7), style=f"{_text_on(bg)} on {bg}")
            text.append("\n")
        text.append("\n")
    text.rstrip()
    return text
