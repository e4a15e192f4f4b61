"""The question `q` asks before it stops a proxy other clients may be using."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static


def question(in_flight: int) -> str:
    """Returns `Stop the proxy? 3 in flight`."""
    return f"Stop the proxy? {in_flight} in flight"


class QuitScreen(ModalScreen[bool]):
    """`y` stops (True); `n` or escape goes back (False)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes, stop"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, in_flight: int) -> None:
        super().__init__()
        self.in_flight = in_flight

    def compose(self) -> ComposeResult:
        with Vertical(id="quit-box"):
            yield Static(question(self.in_flight), id="quit-question")
            yield Static(
                "Every client of this proxy is refused from then on; in-flight requests finish.",
                id="quit-note",
            )
            yield Static("y stop · n / escape keep running", id="quit-keys")

    def action_answer(self, stop: bool) -> None:
        self.dismiss(stop)
