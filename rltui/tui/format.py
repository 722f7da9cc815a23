"""Formatting shared by the screens: numbers, durations, statuses in theme colours, a clock."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any, Callable

from rich.text import Text

from rltui.store.status import ACTIVE_STATUSES  # noqa: F401 (no SQLAlchemy: the runs screen paints before it)
from rltui.text import clip, printable

Clock = Callable[[], datetime]


def utc_clock() -> datetime:
    """Naive UTC now, like the store's timestamps."""
    return datetime.now(timezone.utc).replace(tzinfo=None)



# Theme variable per status, so colours follow the dark or light theme in use.
STATUS_VARS = {
    "queued": "text-secondary",
    "running": "text-accent",
    "completed": "text-success",
    "failed": "text-error",
    "cancelled": "text-warning",
    "crashed": "text-error",
}
STATUS_ICONS = {"queued": "…", "running": "▶", "completed": "✔", "failed": "✖", "cancelled": "■", "crashed": "‼"}


def plain(value: Any, width: int | None = None) -> Text:
    """Store or user text (a name, tag, note) for a widget: a Text, so never read as markup, with
    control characters escaped and, given a width, cut with an ellipsis."""
    return Text(clip(value, width) if width else printable(value), no_wrap=True, end="")


def status_text(status: str, theme_vars: dict[str, str] | None = None) -> Text:
    colour = status_colour(status, theme_vars or {})
    style = f"bold {colour}" if colour else "bold"
    return Text(f"{STATUS_ICONS.get(status, '?')} {printable(status)}", style=style)


def status_colour(status: str, theme_vars: dict[str, str]) -> str:
    """The theme's colour for a status, darkened or lightened until it reads (WCAG AA) on the lab's
    backgrounds: the light theme's warning and success colours are pastel (1.3:1 and 1.6:1 on white)."""
    colour = theme_vars.get(STATUS_VARS.get(status, ""), "")
    if not colour:
        return ""
    from rltui.tui.contrast import readable

    return readable(colour, backgrounds(theme_vars))


def backgrounds(theme_vars: dict[str, str]) -> list[str]:
    """The colours text sits on in the lab: the screen, tables, panels and the table's cursor row."""
    return [theme_vars[k] for k in ("background", "surface", "panel", "block-cursor-background") if theme_vars.get(k)]


def num(value: Any, digits: int = 4) -> str:
    """A compact number: 0.1235, 12.3, 1.2e+05, or '–' for missing."""
    if value is None:
        return "–"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(v):
        return "nan"
    if v == int(v) and abs(v) < 1e6:
        return str(int(v))
    a = abs(v)
    if a >= 1e5 or a < 1e-3:
        return f"{v:.{max(1, digits - 2)}e}"
    return f"{v:.{digits}g}"


def count(value: Any) -> str:
    if value is None:
        return "–"
    v = int(value)
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if v >= size * 10:
            return f"{v / size:.0f}{unit}"
        if v >= size:
            return f"{v / size:.1f}{unit}"
    return str(v)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h}h{m:02d}m"
    return f"{h // 24}d{h % 24:02d}h"


def run_duration(row: dict[str, Any], now: datetime) -> float | None:
    started = row.get("started_at")
    if not started:
        return None
    end = row.get("finished_at") or now
    return (end - started).total_seconds()


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "–"


def progress_bar(fraction: float | None, width: int = 10) -> str:
    f = max(0.0, min(1.0, float(fraction or 0.0)))
    filled = f * width
    full = int(filled)
    parts = "▏▎▍▌▋▊▉"
    frac = filled - full
    tail = parts[int(frac * len(parts))] if full < width and frac > 0 else ""
    return ("█" * full + tail).ljust(width, "·")


def eta(row: dict[str, Any], now: datetime) -> str:
    """Remaining time from progress so far (linear), for running runs."""
    p = float(row.get("progress") or 0.0)
    elapsed = run_duration(row, now)
    if row.get("status") != "running" or not elapsed or p <= 0.0 or p >= 1.0:
        return "–"
    return duration(elapsed * (1 - p) / p)
