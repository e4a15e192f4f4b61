"""The `?` help screen: every key binding, by where it applies."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.panes.base import PaneTable


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
            table = PaneTable(cursor_type="none", zebra_stripes=True)
            table.add_columns("Where", "Key", "Action")
            for where, key, description in self.rows:
                table.add_row(Text(where), Text(key), Text(description))  # `[` is no markup
            yield table
            yield Static("escape closes · ctrl+p lists every action", id="help-foot")

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
