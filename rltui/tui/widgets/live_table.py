"""A DataTable whose rows can change without re-rendering every other row."""

from __future__ import annotations

from typing import Any

from textual.render import measure
from textual.widgets import DataTable
from textual.widgets._data_table import default_cell_formatter


class LiveTable(DataTable):
    """DataTable plus `update_row`: new values for some cells of one row, re-rendering that row only.

    DataTable.update_cell bumps a table-wide counter that is part of every render cache key, so
    one changed cell re-renders every visible cell: 40 rows x 14 columns of runs, re-rendered on
    every poll for the progress of four live runs, stalled the UI for 100-300 ms. update_row drops
    only the changed row's cached renders. If the cell gets wider than its column, or this Textual
    lacks the caches named here, it falls back to update_cell (the whole table, but correct).
    """

    def update_row(self, row_key: str, cells: dict[str, Any]) -> None:
        changed = {col: value for col, value in cells.items() if self.get_cell(row_key, col) != value}
        if not changed:
            return
        if not self._fits(changed) or not self._drop_row_renders(row_key):
            for col, value in changed.items():
                self.update_cell(row_key, col, value, update_width=True)
            return
        for col, value in changed.items():
            self._data[row_key][col] = value  # what update_cell stores, without the table-wide invalidation
        self.refresh_row(self.get_row_index(row_key))

    def _fits(self, cells: dict[str, Any]) -> bool:
        for col, value in cells.items():
            column = self.columns.get(col)  # type: ignore[call-overload]
            if column is None:
                return False
            room = column.content_width if column.auto_width else column.width  # a fixed width never grows
            if measure(self.app.console, default_cell_formatter(value), 1) > room:
                return False
        return True

    def _drop_row_renders(self, row_key: str) -> bool:
        try:
            row_index = self.get_row_index(row_key)
            by_row = (self._cell_render_cache, self._row_render_cache)
            renderables, lines = self._row_renderable_cache, self._line_cache
        except AttributeError:
            return False
        for cache in by_row:
            for key in [k for k in cache.keys() if k[0] == row_key]:
                cache.discard(key)
        renderables.discard((self._update_count, row_index))
        lines.clear()  # lines are joined from the per-row renders kept above: cheap to rebuild
        return True
