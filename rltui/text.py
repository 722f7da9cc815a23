"""User and store text made safe to print: control characters shown, never sent to the terminal.

A run name, tag, note or log line comes from whoever wrote the store. Printed raw, an ESC starts a
terminal escape sequence (clear the screen, set the window title, OSC 52 writes the clipboard), a BEL
rings, a C1 control (U+0080-U+009F: CSI, OSC as one character) does the same on some terminals, and a
bidirectional override reorders what follows. `printable` replaces each with a visible escape
(`\\x1b`, `\\u202e`), so the text still says what was stored.
"""

from __future__ import annotations

import re
from typing import Any

# C0 controls and DEL, C1 controls, and the bidirectional embedding/override/isolate controls.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CONTROL_KEEP_LINES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: Any, *, lines: bool = False) -> str:
    """`value` as text with every control character written as an escape (`\\x1b`).

    `lines=True` keeps newlines and tabs (a note, a log tail, a traceback); otherwise they are
    escaped too, so a name stays on one line.
    """
    text = "" if value is None else str(value)
    return (_CONTROL_KEEP_LINES if lines else _CONTROL).sub(_escape, text)


def clip(value: Any, width: int) -> str:
    """`printable(value)`, cut to `width` characters with an ellipsis (a 10 kB name fits a column)."""
    text = printable(value)
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"
