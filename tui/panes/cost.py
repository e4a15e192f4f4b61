"""The Cost pane: requests, tokens, cost, errors and p50 by group, by group and deployment, or
by client, for today or all time, from the usage store, with a sparkline of hourly spend over
the last 24 hours. The rows are the proxy's own roll-ups: the groups, and the clients, add up to
the total."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Sparkline, Static

from tui.panes import format as fmt
from tui.panes.base import Frame, Pane, define_columns, sync_rows

GROUPINGS = ("group", "deployment", "client")
"""What `g` cycles through, in order."""
NAME_LABELS = {"group": "Group", "deployment": "Group / deployment", "client": "Client"}
NAME_CELLS = 28
"""Group and client names come from requests (an unknown model is a group too): cut short."""
UNNAMED = "(unnamed)"
"""A client whose User-Agent the proxy could not name."""


def columns(grouping: str) -> list[tuple[str, str]]:
    return [
        ("name", NAME_LABELS[grouping]), ("requests", "Reqs"), ("tokens_in", "Tok in"),
        ("tokens_out", "Tok out"), ("cost", "Cost"), ("errors", "Err"), ("p50", "p50"),
    ]  # fmt: skip


def cost_rows(
    usage: dict[str, Any], today: bool, grouping: str = "deployment"
) -> list[tuple[str, dict[str, Any]]]:
    """Returns keyed table rows, most costly first, then the total: each group (with its
    deployments under it when grouping by deployment), or each client."""
    suffix = "_today" if today else ""
    if grouping == "client":
        rows = [
            (f"c:{c['client']}", cells(_name(c["client"] or UNNAMED, dim=not c["client"]), c))
            for c in _by_cost(usage.get(f"by_client{suffix}"))
        ]
    else:
        deployments = usage.get(f"by_deployment{suffix}") if grouping == "deployment" else None
        rows = []
        for group in _by_cost(usage.get(f"by_group{suffix}")):
            rows.append((f"g:{group['group']}", cells(_name(group["group"]), group)))
            for dep in deployments or []:
                if dep.get("group") == group["group"]:
                    name = Text.assemble("  └ ", _name(dep["deployment"]))
                    rows.append((f"d:{dep['deployment']}", cells(name, dep)))
    total = usage.get("today" if today else "totals")
    if total:
        rows.append(("total", cells(Text("Total", style="bold"), total)))
    return rows


def _by_cost(rows: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return sorted(rows or [], key=lambda r: -float(r.get("cost") or 0))


def _name(name: str, dim: bool = False) -> Text:
    return fmt.plain(name, NAME_CELLS, style="dim" if dim else "")


def cells(name: Text, row: dict[str, Any]) -> dict[str, Any]:
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
    """Reads `snapshot["usage"]`; `a` switches today / all time, `g` what the rows are."""

    PANE_ID = "cost"
    TITLE = "Cost"
    KEY = "4"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "toggle_period", "Today/all"),
        Binding("g", "cycle_grouping", "Group by"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.today = False
        self.grouping = "deployment"
        """One of GROUPINGS: each group, each group with its deployments, or each client."""
        self._usage: dict[str, Any] = {}

    def compose(self) -> ComposeResult:
        table: DataTable[Any] = DataTable(cursor_type="row", id="cost-table")
        yield table
        yield Static("", id="spend-label")
        yield Sparkline([0.0], id="spend-spark")

    def on_mount(self) -> None:
        define_columns(self.query_one(DataTable), columns(self.grouping))
        self._update_title()

    def apply(self, frame: Frame) -> None:
        if frame.fresh and frame.snapshot is not None:
            self._usage = frame.snapshot.get("usage") or {}
            self._render_usage()

    def _render_usage(self) -> None:
        rows = cost_rows(self._usage, self.today, self.grouping)
        sync_rows(self.query_one(DataTable), rows)
        series = [float(cost) for _hour, cost in self._usage.get("spend_series") or []]
        label = f"spend per hour, last 24 h: {fmt.dollars(sum(series))}"
        self.query_one("#spend-label", Static).update(label)
        spark = self.query_one(Sparkline)
        if list(spark.data or []) != (series or [0.0]):
            spark.data = series or [0.0]

    def _update_title(self) -> None:
        period = "today" if self.today else "all time"
        self.border_subtitle = f"{period} · by {self.grouping}"

    def action_toggle_period(self) -> None:
        self.today = not self.today
        self._update_title()
        self._render_usage()

    def action_cycle_grouping(self) -> None:
        self.grouping = GROUPINGS[(GROUPINGS.index(self.grouping) + 1) % len(GROUPINGS)]
        define_columns(self.query_one(DataTable), columns(self.grouping))
        self._update_title()
        self._render_usage()
