"""What every pane shares: the `Frame` of data one refresh applies, the titled `Pane` box, and
keyed in-place `DataTable` row updates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.events import Click
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import CellType

NUMERIC = frozenset(
    {"requests", "tokens_in", "tokens_out", "cost", "errors", "err_pct", "p50", "p95", "rpm",
     "tpm", "in_flight", "latency", "ttft", "tokens", "attempts"}
)  # fmt: skip
"""Column keys whose cells are numbers: right-aligned, label too."""


@dataclass(frozen=True)
class Frame:
    """One refresh: the latest state document, events since the last frame, and the time."""

    snapshot: dict[str, Any] | None
    events: list[dict[str, Any]] = field(default_factory=list)
    now: float = 0.0
    fresh: bool = True
    """True when `snapshot` changed since the previous frame."""
    busy_every: float | None = None
    """Seconds between repaints while heavy traffic slows them down (None: every tick)."""


class Pane(Vertical):
    """A titled box on the home screen that can be zoomed to full screen."""

    PANE_ID: ClassVar[str] = ""
    TITLE: ClassVar[str] = ""
    KEY: ClassVar[str] = ""

    class ActionRequested(Message):
        """The user asked the proxy to do something (reset, disable, probe, clear_cache...)."""

        def __init__(self, action: str, deployment: str | None = None) -> None:
            super().__init__()
            self.action = action
            self.deployment = deployment

    compact: bool = False

    def __init__(self) -> None:
        super().__init__(id=self.PANE_ID, classes="pane")
        self.border_title = f"{self.KEY} {self.TITLE}"

    def on_descendant_focus(self) -> None:
        self.mark_focus()

    def on_focus(self) -> None:  # a pane without a table (Cache) is focused itself
        self.mark_focus()

    def on_descendant_blur(self) -> None:
        self.call_after_refresh(self.mark_focus)  # focus may stay within the pane

    def on_blur(self) -> None:
        self.call_after_refresh(self.mark_focus)

    def mark_focus(self) -> None:
        """Marks the focused pane in text too (`▶` in its border title; NO_COLOR shows it)."""
        focused = self.has_focus or self.has_focus_within
        self.border_title = f"{'▶ ' if focused else ''}{self.KEY} {self.TITLE}"

    def apply(self, frame: Frame) -> None:
        """Shows `frame`; called a few times a second inside `app.batch_update()`."""

    def set_compact(self, compact: bool) -> None:
        """Switches between the compact (80×24) and the detailed layout."""
        self.compact = compact

    def focus_main(self) -> None:
        """Focuses the pane's main widget (its table), or the pane itself."""
        tables = self.query(DataTable)
        if tables:
            tables.first().focus()
        elif self.can_focus:
            self.focus()


class PaneTable(DataTable[Any]):
    """A table with the pager keys of `less` and vim: j/k, g/G and home/end (top, bottom),
    ctrl+d/ctrl+u (half a page)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g", "scroll_top", "Top", show=False),
        Binding("G", "scroll_bottom", "Bottom", show=False),
        Binding("home", "scroll_top", "Top", show=False),
        Binding("end", "scroll_bottom", "Bottom", show=False),
        Binding("ctrl+d", "half_page(1)", "Half page down", show=False),
        Binding("ctrl+u", "half_page(-1)", "Half page up", show=False),
    ]

    class Moved(Message):
        """The user moved the cursor (a key or a click); `at_end` when it is on the last row."""

        def __init__(self, at_end: bool) -> None:
            super().__init__()
            self.at_end = at_end

    def action_half_page(self, direction: int) -> None:
        """Moves the cursor (or, without one, the view) half a page."""
        step = direction * max(1, self.scrollable_content_region.height // 2)
        if self.cursor_type == "none" or not self.row_count:
            self.scroll_relative(y=step, animate=False)
        else:
            row = min(max(0, self.cursor_row + step), self.row_count - 1)
            self.move_cursor(row=row, animate=False)
        self._moved()

    def _moved(self) -> None:
        self.post_message(self.Moved(self.cursor_row >= self.row_count - 1))

    # The user's moves, told apart from the program's `move_cursor` (a live tail's).
    def action_cursor_up(self) -> None:
        super().action_cursor_up()
        self._moved()

    def action_cursor_down(self) -> None:
        super().action_cursor_down()
        self._moved()

    def action_page_up(self) -> None:
        super().action_page_up()
        self._moved()

    def action_page_down(self) -> None:
        super().action_page_down()
        self._moved()

    def action_scroll_top(self) -> None:
        super().action_scroll_top()
        self._moved()

    def action_scroll_bottom(self) -> None:
        super().action_scroll_bottom()
        self._moved()

    async def _on_click(self, event: Click) -> None:
        await super()._on_click(event)
        self._moved()


def define_columns(table: DataTable[Any], columns: Sequence[tuple[str, str]]) -> None:
    """Replaces the table's columns (and rows) with `(key, label)` columns."""
    table.clear(columns=True)
    for key, label in columns:
        table.add_column(Text(label, justify="right") if key in NUMERIC else label, key=key)


def upsert_row(table: DataTable[Any], key: str, cells: dict[str, CellType]) -> bool:
    """Updates a row in place (only changed cells), or appends it.

    Returns:
        True when the row was added.
    """
    if key in table.rows:
        for column, value in cells.items():
            if column in table.columns and table.get_cell(key, column) != value:
                # The column widens to its longest value: `37/600`, never `37/60`.
                table.update_cell(key, column, value, update_width=True)
        return False
    table.add_row(*(cells.get(str(col.value), "") for col in table.columns), key=key)
    return True


def sync_rows(table: DataTable[Any], rows: Sequence[tuple[str, dict[str, CellType]]]) -> None:
    """Makes the table show exactly `rows`, in place when their order allows."""
    wanted = [key for key, _ in rows]
    wanted_set = set(wanted)
    for key in [k.value for k in table.rows if k.value not in wanted_set]:
        if key is not None:
            table.remove_row(key)
    current = [k.value for k in table.rows]
    if current != wanted[: len(current)]:
        selected = selected_key(table)
        table.clear()
        for key, cells in rows:
            upsert_row(table, key, cells)
        if selected is not None and selected in table.rows:  # the selection follows its row
            table.move_cursor(row=table.get_row_index(selected), animate=False)
        return
    for key, cells in rows:
        upsert_row(table, key, cells)


def selected_key(table: DataTable[Any]) -> str | None:
    """Returns the key of the row under the cursor, or None."""
    if not table.row_count or table.cursor_type == "none":
        return None
    return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
