"""The Cost pane: requests, tokens, cost, errors and p50 by group (and deployment) for today or
all time, from the usage store, with a sparkline of hourly spend over the last 24 hours."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Sparkline, Static

from tui.panes import format as fmt
from tui.panes.base import Frame, Pane, define_columns, sync_rows

COLUMNS = [
    ("name", "Group / deployment"),
    ("requests", "Reqs"),
    ("tokens_in", "Tok in"),
    ("tokens_out", "Tok out"),
    ("cost", "Cost"),
    ("errors", "Err"),
    ("p50", "p50"),
]


def cost_rows(usage: dict[str, Any], today: bool) -> list[tuple[str, dict[str, Any]]]:
    """Returns keyed table rows: each group, its deployments (all time only), then the total."""
    groups = usage.get("by_group_today" if today else "by_group") or []
    deployments = [] if today else usage.get("by_deployment") or []
    rows: list[tuple[str, dict[str, Any]]] = []
    for group in sorted(groups, key=lambda g: -float(g.get("cost") or 0)):
        rows.append((f"g:{group['group']}", cells(group["group"], group)))
        for dep in deployments:
            if dep.get("group") == group["group"]:
                rows.append((f"d:{dep['deployment']}", cells(f"  └ {dep['deployment']}", dep)))
    total = usage.get("today" if today else "totals")
    if total:
        rows.append(("total", cells(Text("Total", style="bold"), total)))
    return rows


def cells(name: str | Text, row: dict[str, Any]) -> dict[str, Any]:
    cost = fmt.dollars(row.get("cost", 0.0))
    if row.get("cost_unknown"):
        cost += "+?"  # some requests had no known price
    return {
        "name": name,
        "requests": str(row.get("requests", 0)),
        "tokens_in": fmt.tokens(row.get("tokens_in", 0)),
        "tokens_out": fmt.tokens(row.get("tokens_out", 0)),
        "cost": cost,
        "errors": str(row.get("errors", 0)),
        "p50": fmt.ms(row.get("p50_ms")),
    }


class CostPane(Pane):
    """Reads `snapshot["usage"]`; `a` switches today / all time."""

    PANE_ID = "cost"
    TITLE = "Cost"
    KEY = "4"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("a", "toggle_period", "Today/all")]

    def __init__(self) -> None:
        super().__init__()
        self.today = False
        self._usage: dict[str, Any] = {}

    def compose(self) -> ComposeResult:
        table: DataTable[Any] = DataTable(cursor_type="row", id="cost-table")
        yield table
        yield Static("", id="spend-label")
        yield Sparkline([0.0], id="spend-spark")

    def on_mount(self) -> None:
        define_columns(self.query_one(DataTable), COLUMNS)
        self._update_title()

    def apply(self, frame: Frame) -> None:
        if frame.fresh and frame.snapshot is not None:
            self._usage = frame.snapshot.get("usage") or {}
            self._render_usage()

    def _render_usage(self) -> None:
        sync_rows(self.query_one(DataTable), cost_rows(self._usage, self.today))
        series = [float(cost) for _hour, cost in self._usage.get("spend_series") or []]
        label = f"spend per hour, last 24 h: {fmt.dollars(sum(series))}"
        self.query_one("#spend-label", Static).update(label)
        spark = self.query_one(Sparkline)
        if list(spark.data or []) != (series or [0.0]):
            spark.data = series or [0.0]

    def _update_title(self) -> None:
        self.border_subtitle = "today" if self.today else "all time"

    def action_toggle_period(self) -> None:
        self.today = not self.today
        self._update_title()
        self._render_usage()
