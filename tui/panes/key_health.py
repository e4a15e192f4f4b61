"""The Keys pane: every deployment's key, health (with cooldown countdown), limits and errors."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable

from tui.panes import format as fmt
from tui.panes.base import Frame, Pane, PaneTable, define_columns, selected_key, sync_rows

DETAILED = [
    ("group", "Group"),
    ("id", "Deployment"),
    ("key", "Key"),
    ("health", "Health"),
    ("rpm", "RPM"),
    ("tpm", "TPM"),
    ("in_flight", "In"),
    ("p50", "p50"),
    ("errors", "Err"),
    ("last_error", "Last error"),
]
COMPACT = [  # 80 columns: what is wrong with each key, with its reason
    ("id", "Deployment"),
    ("health", "Health"),
    ("rpm", "RPM"),
    ("errors", "Err"),
    ("last_error", "Reason"),
]
MIN_REASON = 12
"""The last error takes what the other columns leave, at least this."""
CLOCKED_STATES = frozenset({"cooling_down", "at_limit", "budget_spent"})
"""Health states whose label counts down (`fmt.health`)."""
PROBE_COLUMN = ("probe", "Probe")
"""The background health check's last result and age, shown once some key was probed."""


class KeyHealthPane(Pane):
    """Deployments keyed by id; health changes from events show before the next snapshot."""

    PANE_ID = "keys"
    TITLE = "Keys"
    KEY = "1"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "deployment('reset')", "Reset cooldown"),
        Binding("d", "toggle_disabled", "Disable/enable"),
        Binding("p", "deployment('probe')", "Probe key"),
    ]

    class DetailRequested(Message):
        """Enter on a key: the app opens its detail screen."""

        def __init__(self, deployment: str) -> None:
            super().__init__()
            self.deployment = deployment

    def __init__(self) -> None:
        super().__init__()
        self._deployments: dict[str, dict[str, Any]] = {}
        self._order: list[str] = []
        self._overrides: dict[str, dict[str, Any]] = {}
        self._now = 0.0
        self._widths: tuple[int, ...] = ()
        """The other columns' widths the reason column was last fitted to."""
        self._clocked = True
        """Whether a cell shown depends on the time (a countdown, a probe's age)."""

    def compose(self) -> ComposeResult:
        yield PaneTable(cursor_type="row", zebra_stripes=True, id="keys-table")

    def on_mount(self) -> None:
        define_columns(self.query_one(DataTable), DETAILED)

    def set_compact(self, compact: bool) -> None:
        if compact != self.compact:
            super().set_compact(compact)
            self._reset_columns()

    def on_resize(self) -> None:
        self._reset_columns()  # the reason column is as wide as the room left for it

    def _reset_columns(self) -> None:
        self._widths = ()
        self._render_rows()

    @property
    def selected(self) -> str | None:
        """The deployment id under the cursor."""
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return key.value

    def deployment(self, dep_id: str) -> dict[str, Any] | None:
        """Returns the deployment as shown (snapshot plus newer health events)."""
        dep = self._deployments.get(dep_id)
        return None if dep is None else {**dep, **self._overrides.get(dep_id, {})}

    def apply(self, frame: Frame) -> None:
        self._now = frame.now
        changed = self._clocked
        if frame.fresh and frame.snapshot is not None:
            deps = frame.snapshot.get("deployments", [])
            self._deployments = {d["id"]: d for d in deps}
            self._order = [d["id"] for d in deps]
            self._overrides.clear()
            changed = True
        for event in frame.events:
            dep_id = event.get("deployment")
            if event.get("type") == "deployment_changed" and dep_id in self._deployments:
                self._overrides[dep_id] = {
                    "health": event["health"],
                    "health_reason": event.get("reason"),
                    "cooldown_until": event.get("cooldown_until"),
                }
                changed = True
        if changed:  # else every cell would come out the same
            self._render_rows()

    def _render_rows(self) -> None:
        deps = [d for d in map(self.deployment, self._order) if d is not None]
        deps.sort(key=fmt.health_rank)  # stable: the config's order within a state
        columns = COMPACT if self.compact else DETAILED
        if not self.compact and any(d.get("last_probe_at") for d in deps):
            columns = [*columns[:-1], PROBE_COLUMN, columns[-1]]
        rows = [(str(dep["id"]), self._cells(dep)) for dep in deps]
        # A countdown or a probe's age moves with the clock alone: redraw each frame then.
        self._clocked = PROBE_COLUMN in columns or any(
            fmt.health_state(d) in CLOCKED_STATES for d in deps
        )
        # The last error takes the room the other columns leave. The table measures its
        # columns only later, so the cells are measured here; and columns never narrow by
        # themselves, so other widths start them again.
        widths = tuple(
            max([len(label)] + [_cell_len(cells[key]) for _, cells in rows])
            for key, label in columns if key != "last_error"
        )  # fmt: skip
        table = self.query_one(DataTable)
        room = table.size.width - sum(w + 2 for w in widths) - 2 - 1  # its padding, scrollbar
        room = max(MIN_REASON, room) if table.size.width else 60
        for _, cells in rows:
            cells["last_error"] = fmt.plain(cells["last_error"], room)  # never markup
        if widths == self._widths:
            sync_rows(table, rows)
            return
        self._widths = widths
        selected = selected_key(table)
        define_columns(table, columns)
        sync_rows(table, rows)
        if selected is not None and selected in table.rows:
            table.move_cursor(row=table.get_row_index(selected), animate=False)

    def _cells(self, dep: dict[str, Any]) -> dict[str, Any]:
        remaining = fmt.remaining(dep, self._now)  # a cooldown's, or until a limit frees
        last_error = dep.get("last_error") or dep.get("health_reason") or ""
        # Every cell is a `Text`: a `str` cell is read as markup, and none of these is ours.
        return {
            "group": fmt.plain(dep["group"], 40),
            "id": fmt.plain(dep["id"], 40),
            "provider": fmt.plain(dep["provider"], 20),
            "key": fmt.plain(dep.get("key", "-"), 12),
            "health": fmt.health(fmt.health_state(dep), remaining, short=self.compact),
            "rpm": fmt.right(
                fmt.bar(dep.get("rpm_used", 0), dep.get("rpm_limit"), 0 if self.compact else 4)
            ),  # fmt: skip
            "tpm": fmt.right(fmt.bar(dep.get("tpm_used", 0), dep.get("tpm_limit"), 0)),
            "in_flight": fmt.right(str(dep.get("in_flight", 0))),
            "p50": fmt.right(fmt.ms(dep.get("latency_p50_ms"))),
            "errors": fmt.right(str(dep.get("errors", 0))),
            "probe": probe_cell(dep, self._now),
            "last_error": last_error,  # the upstream's text: cut and made plain by _render_rows
        }

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(self.DetailRequested(event.row_key.value))

    def action_deployment(self, action: str) -> None:
        if (dep_id := self.selected) is not None:
            self.post_message(self.ActionRequested(action, dep_id))

    def action_toggle_disabled(self) -> None:
        dep_id = self.selected
        dep = self.deployment(dep_id) if dep_id else None
        if dep is not None:
            action = "enable" if dep["health"] == "disabled" else "disable"
            self.post_message(self.ActionRequested(action, dep_id))


def probe_cell(dep: dict[str, Any], now: float) -> Text:
    """Returns the last background probe's verdict and age (`✓ 2m05s`, `✖ 40s`), `—` if none."""
    at = dep.get("last_probe_at")
    if not at:
        return Text("—", style="dim")
    ok = dep.get("last_probe_ok")
    mark, style = ("✓", "green") if ok else ("✖", "red")
    return Text(f"{mark} {fmt.duration(now - at)}", style=style)


def probe_text(dep: dict[str, Any], now: float) -> str:
    """Returns the last background probe in words: `ok, 2m05s ago (at 14:02:11)`, or the
    error it met (the upstream's text, shown plain by the caller); `never` without one."""
    at = dep.get("last_probe_at")
    if not at:
        return "never"
    verdict = "ok" if dep.get("last_probe_ok") else str(dep.get("last_probe") or "failed")
    return f"{verdict}, {fmt.duration(now - at)} ago (at {fmt.clock_time(at)})"


def _cell_len(value: object) -> int:
    return value.cell_len if isinstance(value, Text) else len(str(value))
