"""What every lab screen shares: a handle on the app that worker threads may use safely."""

from __future__ import annotations

from typing import Any, Callable

from textual.screen import Screen


class LabScreen(Screen):
    """A screen whose worker threads report back through `post`, which drops late results.

    Thread workers cannot be interrupted, so one may finish after its screen was closed; `self.app`
    is then unreachable from the thread and the screen's widgets are gone. `lab` is the app captured
    on mount, and `post` runs the callback on the UI thread only if the screen is still attached.
    """

    _lab: Any = None

    @property
    def lab(self) -> Any:
        """The app; read once on the UI thread (compose/mount), then safe from worker threads."""
        if self._lab is None:
            self._lab = self.app
        return self._lab

    def _on_mount(self, event) -> None:  # noqa: ANN001
        _ = self.lab

    @property
    def is_on_top(self) -> bool:
        """Whether this screen is the one in front (not under another screen or a dialog).

        Not Textual's `is_current`: that also holds for the screen just beneath the top one, and a
        screen beneath that keeps redrawing makes Textual repaint the whole screen in front (a full
        160x48 repaint per poll: the lab's worst UI stalls while runs wrote). Pollers skip their tick
        unless on top, and catch up in `on_screen_resume`.
        """
        from textual.app import ScreenStackError

        try:
            return self.app.screen is self
        except ScreenStackError:  # the app is closing
            return False

    def notify(self, message: str, *, title: str = "", severity: Any = "information",
               timeout: float | None = None, markup: bool = False) -> None:
        """A toast as plain text (Textual's default reads it as markup: "[record]" vanished)."""
        self.app.notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def post(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        app = self._lab
        if app is None or not app.is_running:
            return
        try:
            app.call_from_thread(self._if_attached, fn, args, kwargs)
        except RuntimeError:  # the app is shutting down
            pass

    def _if_attached(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        if self.is_attached:
            fn(*args, **kwargs)
