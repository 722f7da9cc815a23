"""The lab's footer: Textual's Footer, rebuilt only when what it shows changes."""

from __future__ import annotations

from typing import Any

from textual.screen import Screen
from textual.widgets import Footer


class LabFooter(Footer):
    """Footer that rebuilds its keys only when the bindings it shows differ from those it shows.

    Opening a screen announces binding changes several times in a row (the screen below suspends,
    focus moves, the screen resumes, its data arrives), mostly without changing a single key shown;
    Textual's Footer rebuilds every key each time, 40-75 ms apiece while worker threads are busy:
    the worst stalls when a live run's screen opened. Changes within one refresh are coalesced too.
    """

    _rebuild_pending = False
    _shown: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("compact", True)  # one space between keys: a screen's main keys fit 80 columns
        super().__init__(*args, **kwargs)

    def bindings_changed(self, screen: Screen) -> None:
        if self._rebuild_pending:
            return
        self._rebuild_pending = True
        self.call_after_refresh(self._rebuild, screen)

    def _rebuild(self, screen: Screen) -> None:
        self._rebuild_pending = False
        shown = self._signature(screen)
        if shown is not None and shown == self._shown:
            return
        self._shown = shown
        super().bindings_changed(screen)

    def _signature(self, screen: Screen) -> tuple | None:
        """What compose would draw: each shown binding's key, label, action, group and state."""
        try:
            bindings = screen.active_bindings
        except Exception:  # noqa: BLE001 — a screen being torn down: let Footer decide
            return None
        return (self.app.app_focus, self.compact, self.show_command_palette, tuple(
            (key, binding.key_display, binding.description, binding.action, id(binding.group), enabled, tooltip)
            for key, (_node, binding, enabled, tooltip) in bindings.items()
            if binding.show or key == self.app.COMMAND_PALETTE_BINDING
        ))
