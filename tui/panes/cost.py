"""The Cost pane: requests, tokens, cost, error rate, p50 and p95 by group, by group and
deployment (a tree: each deployment under the group it belongs to, fallback traffic as such), or
by client, for today or all time, from the usage store, with a sparkline of hourly spend over
the last 24 hours. The rows are the proxy's own roll-ups: the groups, and the clients, add up to
the total, and in the tree every parent is the sum of its children."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Sparkline, Static

from tui.panes import format as fmt
from tui.panes.base import Frame, Pane, PaneTable, define_columns, sync_rows

GROUPINGS = ("group", "deployment", "client")
"""What `g` cycles through, in order."""
NAME_LABELS = {"group": "Group", "deployment": "Group / deployment", "client": "Client"}
NAME_CELLS = 28
"""Group and client names come from requests (an unknown model is a group too): cut short."""
UNNAMED = "(unnamed)"
"""A client whose User-Agent the proxy could not name."""


def columns(grouping: str, width: int = 200) -> list[tuple[str, str]]:
    """Returns the columns for a pane `width` cells wide: all of them zoomed, then without
    the error count and p95, at 80 columns without tokens (the cost stays)."""
    name = ("name", NAME_LABELS[grouping])
    if width < NORMAL_WIDTH:
        return [name, ("requests", "Reqs"), ("cost", "Cost"), ("err_pct", "Err%"), ("p50", "p50")]
    if width < FULL_WIDTH:
        return [name, ("requests", "Reqs"), ("tokens_in", "Tok in"), ("tokens_out", "Tok out"),
                ("cost", "Cost"), ("err_pct", "Err%"), ("p50", "p50")]  # fmt: skip
    return [
        name, ("requests", "Reqs"), ("tokens_in", "Tok in"), ("tokens_out", "Tok out"),
        ("cost", "Cost"), ("errors", "Err"), ("err_pct", "Err%"), ("p50", "p50"), ("p95", "p95"),
    ]  # fmt: skip


NORMAL_WIDTH, FULL_WIDTH = 64, 100
"""Pane widths (inside the border) from which tokens, then every column, show."""
MIN_NAME = 10


SUMMED = ("requests", "tokens_in", "tokens_out", "cost", "cost_unknown", "errors")
"""The counters a parent row adds up from its children."""
Row = tuple[str, dict[str, Any]]


def cost_rows(
    usage: dict[str, Any],
    today: bool,
    grouping: str = "deployment",
    owners: dict[str, str] | None = None,
) -> list[Row]:
    """Returns keyed table rows, most costly first, then the total: each group (with its
    deployments under it when grouping by deployment, see `deployment_tree`), or each client.
    `owners` maps a deployment id to the group it belongs to in the config."""
    suffix = "_today" if today else ""
    rows: list[Row]
    if grouping == "client":
        rows = [
            (f"c:{c['client']}", cells(_name(c["client"] or UNNAMED, dim=not c["client"]), c))
            for c in _by_cost(usage.get(f"by_client{suffix}"))
        ]
    elif grouping == "deployment":
        rows = deployment_tree(
            usage.get(f"by_group{suffix}") or [], usage.get(f"by_deployment{suffix}") or [],
            owners or {},
        )  # fmt: skip
    else:
        rows = [(f"g:{g['group']}", cells(_name(g["group"]), g))
                for g in _by_cost(usage.get(f"by_group{suffix}"))]  # fmt: skip
    total = usage.get("today" if today else "totals")
    if total:
        rows.append(("total", cells(Text("Total", style="bold"), total)))
    return rows


def deployment_tree(
    by_group: list[dict[str, Any]], by_deployment: list[dict[str, Any]], owners: dict[str, str]
) -> list[Row]:
    """Returns each group with the deployments that belong to it under it, the group's numbers
    the sum of its children's. A deployment's requests asked for its own group (or a name its
    wildcard group serves) are one child; those it served for another group, as that group's
    fallback, are a child of their own (`↪ for claude-sonnet`); requests asked for a group that
    no deployment served (a 404, every key failing) are its `(no deployment)` child. So the
    groups add up to the total, and every request is counted once."""
    tree: dict[str, dict[str, dict[str, Any]]] = {}
    served: dict[str, dict[str, Any]] = {}
    for dep in by_deployment:
        asked, dep_id = str(dep.get("group", "")), str(dep.get("deployment", ""))
        owner = owners.get(dep_id, asked)
        fallback = None if asked == owner or _wildcard_serves(owner, asked) else asked
        key = f"d:{dep_id}" if fallback is None else f"f:{dep_id}\0{asked}"
        _add(tree.setdefault(owner, {}), key, (dep_id, fallback), dep)
        _add(served, asked, (asked, None), dep)
    for group in by_group:
        asked = str(group.get("group", ""))
        rest = {k: (group.get(k) or 0) - served.get(asked, {}).get(k, 0) for k in SUMMED}
        if rest["requests"] > 0:
            owner = next((g for g in tree if _wildcard_serves(g, asked)), asked)
            label = ("(no deployment)", None if owner == asked else asked)
            _add(tree.setdefault(owner, {}), f"u:{asked}", label, rest)
    asked_rows = {str(g.get("group")): g for g in by_group}
    rows: list[Row] = []
    for owner, kids in sorted(tree.items(), key=lambda kv: -_sum(kv[1].values())["cost"]):
        own = asked_rows.get(owner) or {}  # percentiles do not add up: the group's own
        parent = {**_sum(kids.values()), "p50_ms": own.get("p50_ms"), "p95_ms": own.get("p95_ms")}
        rows.append((f"g:{owner}", cells(_name(owner), parent)))
        for key, kid in sorted(kids.items(), key=lambda kv: -float(kv[1]["cost"] or 0)):
            rows.append((key, cells(_child_name(key, *kid["label"]), kid)))
    return rows


def _child_name(key: str, name: str, other: str | None) -> Text:
    """`└ opus-key1`, `└ opus-key1 ↪ for claude-sonnet`, `└ (no deployment)`."""
    out = Text("  └ ")
    out.append_text(fmt.plain(name, NAME_CELLS - 4, style="dim" if key[0] == "u" else ""))
    if other is not None:
        out.append(" ↪ for " if key[0] == "f" else " for ", style="dim")
        out.append_text(fmt.plain(other, max(8, NAME_CELLS - out.cell_len)))
    return out


def _add(into: dict[str, dict[str, Any]], key: str, label: tuple[str, str | None],
         row: dict[str, Any]) -> None:  # fmt: skip
    """Adds `row`'s counters to the child `key` (a deployment's slices of one kind are one)."""
    kid = into.get(key)
    if kid is None:
        into[key] = {"label": label, **{k: row.get(k) or 0 for k in SUMMED},
                     "p50_ms": row.get("p50_ms"), "p95_ms": row.get("p95_ms")}  # fmt: skip
        return
    for k in SUMMED:
        kid[k] += row.get(k) or 0
    kid["p50_ms"] = kid["p95_ms"] = None  # the percentiles of several slices do not combine


def _sum(kids: Iterable[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = dict.fromkeys(SUMMED, 0)
    for kid in kids:
        for k in SUMMED:
            total[k] += kid.get(k) or 0
    return total


def _wildcard_serves(group: str, name: str) -> bool:
    return group.endswith("*") and name.startswith(group[:-1])


def _by_cost(rows: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return sorted(rows or [], key=lambda r: -float(r.get("cost") or 0))


def _name(name: str, dim: bool = False) -> Text:
    return fmt.plain(name, NAME_CELLS, style="dim" if dim else "")


def cells(name: Text, row: dict[str, Any]) -> dict[str, Any]:
    """Returns a row's cells: numbers right-aligned, unpriced requests said in words."""
    cost = fmt.dollars(row.get("cost", 0.0))
    if row.get("cost_unknown"):
        cost += f" +{row['cost_unknown']:,} unpriced"
    requests, errors = int(row.get("requests") or 0), int(row.get("errors") or 0)
    return {
        "name": name,
        "requests": fmt.right(f"{requests:,}"),
        "tokens_in": fmt.right(fmt.tokens(row.get("tokens_in", 0))),
        "tokens_out": fmt.right(fmt.tokens(row.get("tokens_out", 0))),
        "cost": fmt.right(cost),
        "errors": fmt.right(f"{errors:,}"),
        "err_pct": fmt.right(f"{errors / requests * 100:.1f}%" if requests else "—"),
        "p50": fmt.right(fmt.ms(row.get("p50_ms"))),
        "p95": fmt.right(fmt.ms(row.get("p95_ms"))),
    }


class CostPane(Pane):
    """Reads `snapshot["usage"]`; `a` switches today / all time, `b` what the rows are by."""

    PANE_ID = "cost"
    TITLE = "Cost"
    KEY = "4"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "toggle_period", "Today/all"),
        Binding("b", "cycle_grouping", "Group by"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.today = False
        self.grouping = "deployment"
        """One of GROUPINGS: each group, each group with its deployments, or each client."""
        self._usage: dict[str, Any] = {}
        self._owners: dict[str, str] = {}
        """Each deployment's own group, from the snapshot's deployments."""
        self._layout: tuple[Any, ...] | None = None
        """The columns, their widths and the name's room the table was last defined with."""
        self._spend_label: str | None = None

    def compose(self) -> ComposeResult:
        table = PaneTable(cursor_type="row", id="cost-table")
        yield table
        yield Static("", id="spend-label")
        yield Sparkline([0.0], id="spend-spark")

    def on_mount(self) -> None:
        self._update_title()

    def on_resize(self) -> None:
        self._layout = None
        self._render_usage()

    def apply(self, frame: Frame) -> None:
        if frame.fresh and frame.snapshot is not None:
            self._usage = frame.snapshot.get("usage") or {}
            deps = frame.snapshot.get("deployments") or []
            self._owners = {str(d.get("id")): str(d.get("group")) for d in deps}
            self._render_usage()

    def _render_usage(self) -> None:
        table = self.query_one(DataTable)
        width = table.size.width
        shown = columns(self.grouping, width or 200)
        rows = cost_rows(self._usage, self.today, self.grouping, self._owners)
        # Names take the room the numbers leave (measured here: the table measures later).
        widths = tuple(
            max([len(label)] + [c[key].cell_len for _, c in rows]) for key, label in shown[1:]
        )
        room = width - sum(w + 2 for w in widths) - 2 - 1 if width else NAME_CELLS
        room = max(MIN_NAME, min(NAME_CELLS + 12, room))
        for _, c in rows:
            c["name"].truncate(room, overflow="ellipsis")
        key, label = shown[0]
        shown[0] = (key, label if len(label) <= room else label[: room - 1] + "…")
        layout = (tuple(shown), widths, room)
        if layout != self._layout:
            self._layout = layout
            define_columns(table, shown)
        sync_rows(table, rows)
        series = [float(cost) for _hour, cost in self._usage.get("spend_series") or []]
        label = f"spend per hour, last 24 h: {fmt.dollars(sum(series))}"
        if label != self._spend_label:
            self._spend_label = label
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
        self._layout = None
        self._update_title()
        self._render_usage()
