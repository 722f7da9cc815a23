"""Formatting shared by the screens: numbers, durations, statuses in theme colours, a clock."""

from __future__ import annotations

import math
from functools import lru_cache
from datetime import datetime, timezone
from typing import Any, Callable

from rich.text import Text

from rltui.store.status import ACTIVE_STATUSES  # noqa: F401 (no SQLAlchemy: the runs screen paints before it)
from rltui.text import clip, printable

Clock = Callable[[], datetime]


def utc_clock() -> datetime:
    """Naive UTC now, like the store's timestamps."""
    return datetime.now(timezone.utc).replace(tzinfo=None)



# Theme variable per status, so colours follow the dark or light theme in use: the lab's themes set
# one colour per status (rltui/tui/app.py, STATUS_COLOURS); another theme falls back to its text-*.
STATUS_VARS = {status: f"status-{status}" for status in ("queued", "running", "completed", "failed", "cancelled", "crashed")}
FALLBACK_VARS = {
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
    colour = theme_vars.get(STATUS_VARS.get(status, ""), "") or theme_vars.get(FALLBACK_VARS.get(status, ""), "")
    if not colour:
        return ""
    from rltui.tui.contrast import readable

    return readable(colour, backgrounds(theme_vars))


GROUND_KEYS = ("background", "surface", "panel", "block-cursor-background", "surface-lighten-1",
               "surface-darken-1", "block-cursor-blurred-background", "foreground")


def backgrounds(theme_vars: dict[str, str]) -> list[str]:
    """The colours text sits on in the lab: the screen, panels, and a DataTable's rows as Textual
    paints them (zebra stripes of surface ±1 at 50%/40%, the cursor focused or not, the 5% tint of
    the focused table)."""
    return list(_grounds(tuple(theme_vars.get(k, "") for k in GROUND_KEYS)))


@lru_cache(maxsize=8)
def _grounds(values: tuple[str, ...]) -> tuple[str, ...]:
    from textual.color import Color

    background, surface, panel, cursor, lighter, darker, blurred, foreground = values
    if not (background and surface):
        return tuple(v for v in (background, surface, panel, cursor) if v)
    base = Color.parse(surface)
    rows = [base, base + Color.parse(lighter).with_alpha(0.5), base + Color.parse(darker).with_alpha(0.4)]
    rows.append(base + Color.parse(blurred) if blurred else base)
    tint = Color.parse(foreground).with_alpha(0.05) if foreground else None
    grounds = [Color.parse(background), Color.parse(panel)] + rows + [row + tint for row in rows if tint]
    if cursor:
        grounds.append(Color.parse(cursor))
    return tuple(dict.fromkeys(g.hex for g in grounds))


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
