"""What every pane shares: the `Frame` of data one refresh applies, the titled `Pane` box, and
keyed in-place `DataTable` row updates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import CellType


@dataclass(frozen=True)
class Frame:
    """One refresh: the latest state document, events since the last frame, and the time."""

    snapshot: dict[str, Any] | None
    events: list[dict[str, Any]] = field(default_factory=list)
    now: float = 0.0
    fresh: bool = True
    """True when `snapshot` changed since the previous frame."""


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


def define_columns(table: DataTable[Any], columns: Sequence[tuple[str, str]]) -> None:
    """Replaces the table's columns (and rows) with `(key, label)` columns."""
    table.clear(columns=True)
    for key, label in columns:
        table.add_column(label, key=key)


def upsert_row(table: DataTable[Any], key: str, cells: dict[str, CellType]) -> bool:
    """Updates a row in place (only changed cells), or appends it.

    Returns:
        True when the row was added.
    """
    if key in table.rows:
        for column, value in cells.items():
            if column in table.columns and table.get_cell(key, column) != value:
                table.update_cell(key, column, value)
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
        table.clear()
    for key, cells in rows:
        upsert_row(table, key, cells)
