"""The Keys pane: every deployment's key, health (with cooldown countdown), limits and errors."""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable

from tui.panes import format as fmt
from tui.panes.base import Frame, Pane, define_columns, sync_rows

DETAILED = [
    ("group", "Group"),
    ("id", "Deployment"),
    ("provider", "Provider"),
    ("key", "Key"),
    ("health", "Health"),
    ("rpm", "RPM"),
    ("tpm", "TPM"),
    ("in_flight", "In"),
    ("p50", "p50"),
    ("errors", "Err"),
    ("last_error", "Last error"),
]
COMPACT = [
    ("id", "Deployment"),
    ("key", "Key"),
    ("health", "Health"),
    ("rpm", "RPM"),
    ("p50", "p50"),
    ("errors", "Err"),
]


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

    def __init__(self) -> None:
        super().__init__()
        self._deployments: dict[str, dict[str, Any]] = {}
        self._order: list[str] = []
        self._overrides: dict[str, dict[str, Any]] = {}
        self._now = 0.0

    def compose(self) -> ComposeResult:
        table: DataTable[Any] = DataTable(cursor_type="row", zebra_stripes=True, id="keys-table")
        yield table

    def on_mount(self) -> None:
        define_columns(self.query_one(DataTable), DETAILED)

    def set_compact(self, compact: bool) -> None:
        if compact != self.compact:
            super().set_compact(compact)
            define_columns(self.query_one(DataTable), COMPACT if compact else DETAILED)
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
        if frame.fresh and frame.snapshot is not None:
            deps = frame.snapshot.get("deployments", [])
            self._deployments = {d["id"]: d for d in deps}
            self._order = [d["id"] for d in deps]
            self._overrides.clear()
        for event in frame.events:
            dep_id = event.get("deployment")
            if event.get("type") == "deployment_changed" and dep_id in self._deployments:
                self._overrides[dep_id] = {
                    "health": event["health"],
                    "health_reason": event.get("reason"),
                    "cooldown_until": event.get("cooldown_until"),
                }
        self._render_rows()

    def _render_rows(self) -> None:
        rows = []
        for dep_id in self._order:
            dep = self.deployment(dep_id)
            if dep is not None:
                rows.append((dep_id, self._cells(dep)))
        sync_rows(self.query_one(DataTable), rows)

    def _cells(self, dep: dict[str, Any]) -> dict[str, Any]:
        until = dep.get("cooldown_until")
        remaining = until - self._now if until else dep.get("cooldown_remaining_s")
        last_error = dep.get("last_error") or dep.get("health_reason") or ""
        return {
            "group": dep["group"],
            "id": dep["id"],
            "provider": dep["provider"],
            "key": dep.get("key", "-"),
            "health": fmt.health(dep["health"], remaining),
            "rpm": fmt.bar(dep.get("rpm_used", 0), dep.get("rpm_limit")),
            "tpm": fmt.bar(dep.get("tpm_used", 0), dep.get("tpm_limit")),
            "in_flight": str(dep.get("in_flight", 0)),
            "p50": fmt.ms(dep.get("latency_p50_ms")),
            "errors": str(dep.get("errors", 0)),
            "last_error": fmt.plain(last_error, 60),  # the upstream's text: never markup
        }

    def action_deployment(self, action: str) -> None:
        if (dep_id := self.selected) is not None:
            self.post_message(self.ActionRequested(action, dep_id))

    def action_toggle_disabled(self) -> None:
        dep_id = self.selected
        dep = self.deployment(dep_id) if dep_id else None
        if dep is not None:
            action = "enable" if dep["health"] == "disabled" else "disable"
            self.post_message(self.ActionRequested(action, dep_id))
