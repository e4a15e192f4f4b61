"""The `?` help screen: every key binding, by where it applies."""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static


class HelpScreen(ModalScreen[None]):
    """A table of bindings; any of escape, q or ? closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss", "Close"),
    ]

    def __init__(self, rows: list[tuple[str, str, str]]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box"):
            yield Static("Keys — everything works without a mouse", id="help-title")
            table: DataTable[Any] = DataTable(cursor_type="none", zebra_stripes=True)
            table.add_columns("Where", "Key", "Action")
            for where, key, description in self.rows:
                table.add_row(where, key, description)
            yield table
            yield Static("escape closes · ctrl+p lists every action", id="help-foot")

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
