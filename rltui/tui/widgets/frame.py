"""An image observation (MinAtar's (10, 10, C) boolean frames) drawn as a coloured grid: one colour
per channel, two terminal cells per pixel, and a legend naming the channels.

Replay stores such a state as {"frame": H rows of W ints}, bit c of a pixel set where channel c is on
(rltui.envs.minatar.frame_codes). A pixel with two channels on shows both colours, one per half.
An Atari state is {"gray": rows of gray levels 0..255} (rltui.envs.ale): drawn with half blocks, two
pixels per terminal cell, one above the other.
"""

from __future__ import annotations

from typing import Any, Sequence

from rich.text import Text
from textual.widgets import Static

from rltui.text import printable

# Ten colours apart from each other on dark and light backgrounds (MinAtar's games have ≤ 10 channels).
PALETTE = ("#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6",
           "#bfef45", "#9a6324")
EMPTY = "· "


def channel_colour(c: int) -> str:
    return PALETTE[c % len(PALETTE)]


def channels_on(code: int) -> list[int]:
    return [c for c in range(max(0, int(code)).bit_length()) if code >> c & 1]


def frame_text(codes: Sequence[Sequence[int]], channels: Sequence[str]) -> Text:
    """The frame as rows of coloured pixels, then the legend (each channel's colour and name)."""
    text = Text(no_wrap=True)
    for row in codes:
        for code in row:
            on = channels_on(int(code))
            if not on:
                text.append(EMPTY, style="dim")
            else:  # the first and the last channel that are on, one per half of the pixel
                text.append("█", style=channel_colour(on[0]))
                text.append("█", style=channel_colour(on[-1]))
        text.append("\n")
    text.append(legend(channels))
    return text


def legend(channels: Sequence[str]) -> Text:
    text = Text()
    for c, name in enumerate(channels):
        if c:
            text.append("  ")
        text.append("██", style=channel_colour(c))
        text.append(" " + printable(name))  # channel names come from the store: plain text
    return text


def gray_text(rows: Sequence[Sequence[int]]) -> Text:
    """Gray levels as half blocks: each cell's upper half one row, its lower half the next."""
    text = Text(no_wrap=True)
    for r in range(0, len(rows), 2):
        upper, lower = rows[r], rows[r + 1] if r + 1 < len(rows) else [0] * len(rows[r])
        for top, bottom in zip(upper, lower):
            t, b = (max(0, min(255, int(v))) for v in (top, bottom))
            text.append("▀", style=f"rgb({t},{t},{t}) on rgb({b},{b},{b})")
        text.append("\n")
    return text


def is_frame(state: Any) -> bool:
    return isinstance(state, dict) and (isinstance(state.get("frame"), list) or isinstance(state.get("gray"), list))


def render_state(layout: dict[str, Any] | None, state: Any) -> Text:
    """A stored frame state drawn: its title, then the channel grid and legend, or the gray image."""
    if is_frame(state) and "gray" in state:
        rows = state["gray"]
        title = Text(f"frame {len(rows)}×{len(rows[0]) if rows else 0}, newest of the stack\n", style="bold")
        return title + gray_text(rows)
    codes = state["frame"] if is_frame(state) else []
    width = max((len(r) for r in codes), default=0)
    highest = max((int(v).bit_length() for r in codes for v in r), default=0)
    names = list((layout or {}).get("channels") or [])
    names += [f"channel {c}" for c in range(len(names), highest)]  # a layout without names: numbered
    title = Text(f"frame {len(codes)}×{width}, {len(names)} channels\n", style="bold")
    return title + frame_text(codes, names)


class FrameView(Static):
    """Replay's view of one frame: the grid and its legend (`show` draws a step's state)."""

    def show(self, layout: dict[str, Any] | None, state: Any) -> None:
        self.update(render_state(layout, state))
