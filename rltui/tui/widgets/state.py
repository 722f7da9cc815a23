"""Drawing one state of an episode, by the run's "layout" artifact: grid, chain, cart-pole, text, vector."""

from __future__ import annotations

import math
from typing import Any, Sequence

from rich.text import Text

from rltui.text import printable
from rltui.tui.widgets.values import chain_strip, fit_cell_width, value_grid


def cartpole(state: Sequence[float], width: int = 60, height: int = 9, x_limit: float = 2.4) -> Text:
    """The cart on its track and the pole at angle θ, from [x, x_dot, theta, theta_dot]."""
    x, x_dot, theta, theta_dot = (list(state) + [0.0] * 4)[:4]
    width = max(24, width)
    canvas = [[" "] * width for _ in range(height)]
    track_y = height - 2
    cx = int(round((x + x_limit) / (2 * x_limit) * (width - 9))) + 4
    cx = max(3, min(width - 4, cx))
    for i in range(width):
        canvas[track_y + 1][i] = "▔"
    for i in (0, width - 1):
        canvas[track_y][i] = "┃"
    for i in range(cx - 3, cx + 4):
        canvas[track_y][i] = "█"
    # Pole: from the cart's top, length ~ height-2 rows, aspect 2:1 for terminal cells.
    length = height - 3
    for k in range(1, length * 2 + 1):
        r = k / 2
        px = cx + int(round(2 * r * math.sin(theta)))
        py = track_y - 1 - int(round(r * math.cos(theta)))
        if 0 <= py < height and 0 <= px < width:
            canvas[py][px] = "●" if k == length * 2 else "┃" if abs(theta) < 0.15 else ("╱" if theta > 0 else "╲")
    text = Text(no_wrap=True)
    for row in canvas:
        text.append("".join(row) + "\n")
    text.append(f"x={x:+.3f}  ẋ={x_dot:+.3f}  θ={math.degrees(theta):+.2f}°  θ̇={theta_dot:+.3f}", style="italic")
    return text


def token_text(tokens: Sequence[str], current: int, prompt: str = "") -> Text:
    """The response so far, token by token; the current token highlighted, later ones hidden."""
    text = Text()
    if prompt:
        text.append(printable(prompt, lines=True), style="italic")
    for i, tok in enumerate(tokens[: current + 1]):
        text.append(printable(tok), style="bold reverse" if i == current else "")
    return text


def vector(state: Any, labels: Sequence[str] | None = None) -> Text:
    text = Text(no_wrap=True)
    values = state if isinstance(state, (list, tuple)) else [state]
    for i, v in enumerate(values):
        name = labels[i] if labels and i < len(labels) else f"s[{i}]"
        text.append(f"{printable(name):>12} = ")
        text.append(f"{v:+.4f}\n" if isinstance(v, (int, float)) else f"{printable(v)}\n")
    text.rstrip()
    return text


def state_name(layout: dict[str, Any] | None, state: Any) -> str:
    if isinstance(state, int) and layout and layout.get("states") and 0 <= state < len(layout["states"]):
        return str(layout["states"][state])
    return str(state)


def action_name(layout: dict[str, Any] | None, action: Any) -> str:
    if isinstance(action, int) and layout and layout.get("actions") and 0 <= action < len(layout["actions"]):
        return str(layout["actions"][action])
    return str(action)


def draw_state(layout: dict[str, Any] | None, steps: Sequence[dict[str, Any]], t: int, width: int = 60,
               V: Sequence[float] | None = None) -> Text:
    """State at step t of an episode (with the path so far), drawn as the layout says."""
    layout = layout or {}
    kind = layout.get("kind")
    step = steps[t]
    state = step["state"]
    if kind == "grid" and isinstance(state, int):
        path = [s["state"] for s in steps[:t] if isinstance(s["state"], int)]
        return value_grid(layout, V or [], None, agent=state, path=path,
                          cell_width=fit_cell_width(layout, width, widest=6))
    if kind == "chain" and isinstance(state, int):
        path = [s["state"] for s in steps[:t]]
        return chain_strip(int(layout.get("n", len(layout.get("states", [])) or state + 1)), V, agent=state, path=path)
    if kind == "cartpole" or (kind is None and isinstance(state, list) and len(state) == 4
                              and all(isinstance(v, (int, float)) for v in state)):
        return cartpole(state, width=min(width, 70))
    if kind == "text" or any("token" in (s.get("extras") or {}) for s in steps[:1]):
        tokens = [str((s.get("extras") or {}).get("token", s["action"])) for s in steps]
        prompt = state.get("prompt", "") if isinstance(state, dict) else ""
        return token_text(tokens, t, prompt)
    if kind == "vector" or isinstance(state, list):
        return vector(state, layout.get("labels"))
    return Text(f"state: {printable(state_name(layout, state))}")
