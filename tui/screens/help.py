"""The `?` help screen: every key binding, grouped by where it applies, the focused pane's
group first."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Static

from tui.panes.base import Pane, PaneTable

Row = tuple[str, str, str]
"""(where, key, description)."""


def focused_pane(widget: Widget | None) -> str | None:
    """Returns the title of the pane `widget` is in (the focused pane), or None."""
    for node in [widget, *(widget.ancestors if widget is not None else [])]:
        if isinstance(node, Pane):
            return node.TITLE
    return None


def grouped(rows: list[Row], focused: str | None) -> list[Row]:
    """Returns `rows` grouped by where they apply, in first-seen order but the focused pane's
    group first (then "Everywhere" and "Tables", which apply there too); each group's name on
    its first row only, the focused one marked `▶`."""
    groups: dict[str, list[Row]] = {}
    for row in rows:
        groups.setdefault(row[0], []).append(row)
    first = [g for g in (focused, "Everywhere", "Tables") if g in groups]
    order = first + [g for g in groups if g not in first]
    out: list[Row] = []
    for name in order:
        label = f"▶ {name} (focused)" if name == focused else name
        out += [
            (label if i == 0 else "", key, what) for i, (_, key, what) in enumerate(groups[name])
        ]
    return out


class HelpScreen(ModalScreen[None]):
    """A table of bindings; any of escape, q or ? closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss", "Close"),
    ]

    def __init__(self, rows: list[Row], focused: str | None = None) -> None:
        super().__init__()
        self.rows = grouped(rows, focused)
        self.first = focused
        """The focused pane's title: its keys lead."""

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box"):
            where = f" · {self.first} first" if self.first else ""
            yield Static(f"Keys — everything works without a mouse{where}", id="help-title")
            table = PaneTable(cursor_type="none", zebra_stripes=True)
            table.add_columns("Where", "Key", "Action")
            for where, key, description in self.rows:
                table.add_row(Text(where), Text(key), Text(description))  # `[` is no markup
            yield table
            yield Static("escape closes · ctrl+p lists every action", id="help-foot")

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
