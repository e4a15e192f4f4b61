"""The Requests pane: a live tail of requests (updated in place as they finish), follow mode,
a group/status filter, and Enter for a request's details."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable, Input

from tui.panes import format as fmt
from tui.panes.base import Frame, Pane, define_columns, upsert_row

MAX_ROWS = 500
"""Requests kept for the detail view and the filter."""
TABLE_ROWS = 200
"""Rows in the table; past TABLE_ROWS + SLACK it is rebuilt at once (remove_row is O(n))."""
SLACK = 100
PER_FRAME = 50
"""Under load only the newest requests of a frame reach the table (it is a live tail)."""
DETAILED = [
    ("time", "Time"),
    ("route", "Group → deployment"),
    ("status", "Status"),
    ("latency", "Latency"),
    ("ttft", "TTFT"),
    ("tokens", "Tokens in/out"),
    ("cost", "Cost"),
    ("cache", "Cache"),
    ("fallback", "Fallback"),
    ("attempts", "Try"),
]
COMPACT = [
    ("time", "Time"),
    ("route", "Group → deployment"),
    ("status", "St"),
    ("latency", "Latency"),
    ("tokens", "Tokens"),
    ("cost", "Cost"),
    ("cache", "Cache"),
]


def matches(request: dict[str, Any], query: str) -> bool:
    """Whether a request passes the filter: every word must match its group or deployment
    (substring), its status (`429`, `5` for 5xx), or be `ok` / `err`."""
    status = request.get("status")
    for word in query.lower().split():
        if word == "ok":
            hit = status is not None and status < 400
        elif word in ("err", "error"):
            hit = status is not None and status >= 400
        elif word.isdigit():
            hit = status is not None and str(status).startswith(word)
        else:
            names = f"{request.get('group', '')} {request.get('deployment') or ''}".lower()
            hit = word in names
        if not hit:
            return False
    return True


class RequestTable(DataTable[Any]):
    """The request table; Enter opens the selected request."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "open", "Details")]

    class Opened(Message):
        def __init__(self, request_id: str) -> None:
            super().__init__()
            self.request_id = request_id

    def action_open(self) -> None:
        if self.row_count:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
            if key is not None:
                self.post_message(self.Opened(key))


class RequestLogPane(Pane):
    """Requests keyed by id, newest last; `f` follows the tail, `/` filters."""

    PANE_ID = "requests"
    TITLE = "Requests"
    KEY = "2"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f", "toggle_follow", "Follow"),
        Binding("slash", "filter", "Filter"),
    ]

    class DetailRequested(Message):
        """Enter on a request: the app opens its detail screen."""

        def __init__(self, request: dict[str, Any]) -> None:
            super().__init__()
            self.request = request

    def __init__(self) -> None:
        super().__init__()
        self.requests: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.follow = True
        self.query_text = ""

    def compose(self) -> ComposeResult:
        yield RequestTable(cursor_type="row", zebra_stripes=True, id="requests-table")
        yield Input(placeholder="filter: group, deployment, 429, 5, ok, err — Enter", id="filter")

    def on_mount(self) -> None:
        define_columns(self.query_one(RequestTable), DETAILED)
        self.query_one("#filter", Input).display = False
        self._update_title()

    def set_compact(self, compact: bool) -> None:
        if compact != self.compact:
            super().set_compact(compact)
            define_columns(self.query_one(RequestTable), COMPACT if compact else DETAILED)
            self._rebuild()

    def apply(self, frame: Frame) -> None:
        changed: list[str] = []
        if frame.fresh and frame.snapshot is not None and not self.requests:
            for event in frame.snapshot.get("recent", []):
                changed.append(self._absorb(event))
        for event in frame.events:
            if event.get("type") in ("request_started", "request_finished"):
                changed.append(self._absorb(event))
        if changed:
            self._show(changed)

    def _absorb(self, event: dict[str, Any]) -> str:
        old = self.requests.get(event["id"])
        if old is not None and old.get("type") == "request_finished":
            return str(event["id"])  # a late `started` never overwrites a finished request
        self.requests[event["id"]] = event
        return str(event["id"])

    def _show(self, changed: list[str]) -> None:
        table = self.query_one(RequestTable)
        while len(self.requests) > MAX_ROWS:
            self.requests.popitem(last=False)
        if table.row_count > TABLE_ROWS + SLACK:
            self._rebuild()
            return
        for request_id in list(dict.fromkeys(changed))[-PER_FRAME:]:
            request = self.requests.get(request_id)
            if request is not None and matches(request, self.query_text):
                upsert_row(table, request_id, self._cells(request))
        self._follow(table)

    def _follow(self, table: RequestTable) -> None:
        if self.follow and table.row_count:
            table.move_cursor(row=table.row_count - 1, animate=False)

    def _rebuild(self) -> None:
        """Shows the newest TABLE_ROWS requests that match the filter."""
        table = self.query_one(RequestTable)
        table.clear()
        shown = [r for r in self.requests.values() if matches(r, self.query_text)]
        for request in shown[-TABLE_ROWS:]:
            upsert_row(table, str(request["id"]), self._cells(request))
        self._follow(table)

    def _cells(self, req: dict[str, Any]) -> dict[str, Any]:
        finished = req.get("type") == "request_finished"
        dep = req.get("deployment") or ("…" if not finished else "—")
        tokens = f"{req.get('prompt_tokens', 0)}/{req.get('completion_tokens', 0)}"
        return {
            "time": fmt.clock_time(req["time"]),
            "route": f"{req['group']} → {dep}",
            "status": fmt.status(req.get("status") if finished else None),
            "latency": fmt.ms(req.get("latency_ms")) if finished else "…",
            "ttft": fmt.ms(req.get("ttft_ms")) if finished else "…",
            "tokens": tokens if finished else "",
            "cost": fmt.dollars(req.get("cost")) if finished else "",
            "cache": req.get("cache", "") if finished else "",
            "fallback": req.get("fallback") or "",
            "attempts": str(req.get("attempts", "")) if finished else "",
        }

    def _update_title(self) -> None:
        flags = ["following" if self.follow else "paused"]
        if self.query_text:
            flags.append(f"filter: {self.query_text}")
        self.border_subtitle = " · ".join(flags)

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow
        self._update_title()

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.value = self.query_text
        box.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.set_filter(event.value)

    def set_filter(self, text: str) -> None:
        """Shows only requests matching `text` (see `matches`); empty shows all."""
        self.query_text = text.strip()
        self.query_one("#filter", Input).display = False
        self._update_title()
        self._rebuild()
        self.query_one(RequestTable).focus()

    def key_escape(self) -> None:
        if self.query_one("#filter", Input).display:
            self.set_filter("")

    def on_request_table_opened(self, event: RequestTable.Opened) -> None:
        event.stop()
        request = self.requests.get(event.request_id)
        if request is not None:
            self.post_message(self.DetailRequested(request))
