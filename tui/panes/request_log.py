"""The Requests pane: a live tail of requests (updated in place as they finish) with the API
and client each came through, following like `tail -f` (moving up pauses, G/end/f resume), a
live filter with its match count, and from a row: Enter for its details, copy as curl, replay
in the tester, jump to its key. Errors stay longer than successes (MAX_ERRORS older ones).
Columns narrow and drop as the pane does (`columns_for`); every string a client could have
chosen is shown as plain text, cut short."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.events import Resize
from textual.message import Message
from textual.widgets import Input

from tui.panes import format as fmt
from tui.panes.base import Frame, Pane, PaneTable, define_columns, selected_key, upsert_row

MAX_ROWS = 600
"""Requests kept for the detail view and the filter."""
MAX_ERRORS = 200
"""Failed requests kept beyond MAX_ROWS: the filter (`err`) still finds them."""
TABLE_ROWS = 200
"""Rows in the table; past TABLE_ROWS + SLACK it is rebuilt at once (remove_row is O(n))."""
SLACK = 100
PER_FRAME = 20
"""Under load only the newest requests of a frame reach the table (it is a live tail)."""


USUAL_CELLS = {
    "time": 8, "status": 6, "latency": 7, "ttft": 6, "tokens": 10, "cost": 7, "cache": 4,
    "attempts": 2,
}  # fmt: skip
"""Usual widths of the columns that are not cut (`45.2k/1.2k` tokens: an agent's prompt)."""
MIN_ROUTE, MAX_ROUTE = 16, 48


@dataclass(frozen=True)
class ColumnSet:
    """The columns for one pane width, and how far each client-supplied string is cut."""

    name: str
    columns: list[tuple[str, str]]
    client: int
    session: int = 8
    fallback: int = 12
    short_door: bool = False
    """`msgs` / `resp` instead of `messages` / `responses`."""

    def route_cells(self, width: int) -> int:
        """Returns the cells `group → deployment` may take in a pane `width` wide: what the
        other columns leave at their usual widths (2 cells of padding each, 1 for the
        scrollbar), between MIN_ROUTE and MAX_ROUTE."""
        usual = {**USUAL_CELLS, "door": 4 if self.short_door else 9, "client": self.client,
                 "session": self.session + 1, "fallback": self.fallback}  # fmt: skip
        others = sum(max(usual[k], len(label)) + 2 for k, label in self.columns if k != "route")
        return max(MIN_ROUTE, min(MAX_ROUTE, width - others - 3))


WIDE = ColumnSet(
    "wide",
    [
        ("time", "Time"), ("door", "API"), ("client", "Client"), ("session", "Session"),
        ("route", "Group → deployment"), ("status", "Status"), ("latency", "Latency"),
        ("ttft", "TTFT"), ("tokens", "Tokens in/out"), ("cost", "Cost"), ("cache", "Cache"),
        ("fallback", "Fallback"), ("attempts", "Try"),
    ],
    client=16, session=12,
)  # fmt: skip
NORMAL = ColumnSet(  # 120 columns: TTFT and the fallback group move to the detail view;
    # `msgs` / `resp` leave the route room for a `cancel` status
    "normal",
    [
        ("time", "Time"), ("door", "API"), ("client", "Client"), ("session", "Session"),
        ("route", "Group → deployment"), ("status", "St"), ("latency", "Latency"),
        ("tokens", "Tokens"), ("cost", "Cost"), ("cache", "Cache"),
    ],
    client=13, short_door=True,
)  # fmt: skip
COMPACT = ColumnSet(  # 80 columns: the session, tokens and cache go too
    "compact",
    [
        ("time", "Time"), ("door", "API"), ("client", "Client"), ("route", "Group → deployment"),
        ("status", "St"), ("latency", "Latency"), ("cost", "Cost"),
    ],
    client=10, short_door=True,
)  # fmt: skip
WIDE_WIDTH, NORMAL_WIDTH = 168, 108
"""Pane widths (inside its border) from which WIDE and NORMAL apply: 170- and 110-column
terminals."""
SHORT_DOORS = {"messages": "msgs", "responses": "resp"}


def columns_for(width: int) -> ColumnSet:
    """Returns the column set for a pane `width` cells wide."""
    return WIDE if width >= WIDE_WIDTH else NORMAL if width >= NORMAL_WIDTH else COMPACT


def matches(request: dict[str, Any], query: str) -> bool:
    """Whether a request passes the filter: every word must match its group, deployment,
    client, API (`messages`) or session (substring), its status (`429`, `5` for 5xx), or be
    `ok` / `err`."""
    status = request.get("status")
    for word in query.lower().split():
        if word == "ok":
            hit = status is not None and status < 400
        elif word in ("err", "error"):
            hit = status is not None and status >= 400
        elif word.isdigit():
            hit = status is not None and str(status).startswith(word)
        else:
            fields = ("group", "deployment", "client", "front_door", "session")
            hit = any(word in str(request.get(f) or "").lower() for f in fields)
        if not hit:
            return False
    return True


def failed(request: dict[str, Any]) -> bool:
    """Whether a finished request failed (a 4xx or 5xx, not a client's cancel)."""
    status = request.get("status")
    return (
        request.get("type") == "request_finished"
        and isinstance(status, int)
        and status >= 400
        and status != fmt.CANCELLED
    )


class RequestTable(PaneTable):
    """The request table; Enter opens the selected request. The pane follows the tail while
    the user's cursor is on the last row (`PaneTable.Moved`)."""

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
        Binding("f", "toggle_follow", "Follow/pause"),
        Binding("slash", "filter", "Filter"),
        # In help, not in the footer: at 80 columns that room is `t`'s.
        Binding("c", "row('curl')", "Copy as curl", show=False),
        Binding("R", "row('replay')", "Replay", show=False),
        Binding("K", "row('key')", "Jump to key", show=False),
    ]

    class DetailRequested(Message):
        """Enter on a request: the app opens its detail screen."""

        def __init__(self, request: dict[str, Any]) -> None:
            super().__init__()
            self.request = request

    class RowAction(Message):
        """`curl`, `replay` or `key` on the selected request: the app does it."""

        def __init__(self, action: str, request: dict[str, Any]) -> None:
            super().__init__()
            self.action = action
            self.request = request

    def __init__(self) -> None:
        super().__init__()
        self.requests: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.old_errors: OrderedDict[str, dict[str, Any]] = OrderedDict()
        """Failed requests that left `requests`, the newest MAX_ERRORS (all older than it)."""
        self.follow = True
        """Like `tail -f`: the newest request stays in view and selected."""
        self.unseen = 0
        """Requests that arrived while paused."""
        self.busy_every: float | None = None
        """Seconds between repaints under heavy traffic (said on the border), or None."""
        self.query_text = ""
        self.column_set = NORMAL
        self.route_cells = NORMAL.route_cells(118)
        """What `group → deployment` may take at the pane's width (see ColumnSet.route_cells)."""

    def compose(self) -> ComposeResult:
        yield RequestTable(cursor_type="row", zebra_stripes=True, id="requests-table")
        yield Input(
            placeholder="filter: group, deployment, client, API, session, 429, 5, ok, err — Enter",
            id="filter",
        )

    def on_mount(self) -> None:
        define_columns(self.query_one(RequestTable), self.column_set.columns)
        self.query_one("#filter", Input).display = False
        self._update_title()

    def on_resize(self, event: Resize) -> None:
        width = self.content_size.width  # inside the border (event.size is outside it)
        wanted = columns_for(width)
        route_cells = wanted.route_cells(width)
        table = self.query_one(RequestTable)
        selected = selected_key(table)
        if wanted is not self.column_set:
            self.column_set, self.route_cells = wanted, route_cells
            define_columns(table, wanted.columns)
            self._rebuild(selected)
        elif route_cells != self.route_cells:
            self.route_cells = route_cells
            self._rebuild(selected)
        # After the new size is laid out: the tail (or the selected row) back into view.
        self.call_after_refresh(self._keep_in_view)

    def _keep_in_view(self) -> None:
        table = self.query_one(RequestTable)
        if self.follow:
            self._follow(table)
        elif table.row_count:
            table.move_cursor(row=table.cursor_row, animate=False, scroll=True)

    def apply(self, frame: Frame) -> None:
        if frame.busy_every != self.busy_every:
            self.busy_every = frame.busy_every
            self._update_title()
        changed: list[str] = []
        if frame.fresh and frame.snapshot is not None and not self.requests:
            for event in frame.snapshot.get("recent", []):
                changed.append(self._absorb(event))
        for event in frame.events:
            if event.get("type") in ("request_started", "request_finished"):
                changed.append(self._absorb(event))
        if changed:
            self._show(changed)
            if not self.follow or self.query_text:  # the new count, the new matches
                self._update_title()

    def _absorb(self, event: dict[str, Any]) -> str:
        old = self.requests.get(event["id"])
        if old is not None and old.get("type") == "request_finished":
            return str(event["id"])  # a late `started` never overwrites a finished request
        if old is None and not self.follow:
            self.unseen += 1
        self.requests[event["id"]] = event
        return str(event["id"])

    def _show(self, changed: list[str]) -> None:
        table = self.query_one(RequestTable)
        while len(self.requests) > MAX_ROWS:
            old_id, old = self.requests.popitem(last=False)
            if failed(old):
                self.old_errors[old_id] = old
                if len(self.old_errors) > MAX_ERRORS:
                    self.old_errors.popitem(last=False)
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
            # New rows are measured on the next refresh: scroll to them once they are.
            table.call_after_refresh(self._to_tail, table)

    def _to_tail(self, table: RequestTable) -> None:
        if self.follow and table.row_count:
            table.move_cursor(row=table.row_count - 1, animate=False, scroll=True)
            table.scroll_to(y=table.max_scroll_y, animate=False)

    def _rebuild(self, selected: str | None = None) -> None:
        """Shows the newest TABLE_ROWS requests that match the filter; a paused table keeps
        its selected request (or `selected`) selected."""
        table = self.query_one(RequestTable)
        selected = selected or selected_key(table)
        table.clear()
        shown = [r for r in self.history() if matches(r, self.query_text)]
        for request in shown[-TABLE_ROWS:]:
            upsert_row(table, str(request["id"]), self._cells(request))
        if not self.follow and selected is not None and selected in table.rows:
            table.move_cursor(row=table.get_row_index(selected), animate=False)
        self._follow(table)

    def _cells(self, req: dict[str, Any]) -> dict[str, Any]:
        """Returns the row of a request; every cell is a `Text` (a `str` cell would be read as
        markup, and a model name such as `[/x]` would break the table)."""
        if req.get("type") != "request_finished":
            return self._started_cells(req)
        cols = self.column_set
        door = str(req.get("front_door") or "chat")
        tokens_in, tokens_out = req.get("prompt_tokens"), req.get("completion_tokens")
        tokens = f"{fmt.tokens(tokens_in)}/{fmt.tokens(tokens_out)}"
        client = req.get("client") or ""
        return {
            "time": Text(fmt.clock_time(req["time"])),
            "door": fmt.plain(SHORT_DOORS.get(door, door) if cols.short_door else door, 9),
            "client": fmt.plain(client, cols.client) if client else Text("—", style="dim"),
            "session": fmt.short_id(req.get("session"), cols.session),
            "route": self._route(req, req.get("deployment") or "—"),
            "status": self._status(req),
            "latency": fmt.right(fmt.ms(req.get("latency_ms"))),
            "ttft": fmt.right(fmt.ms(req.get("ttft_ms"))),
            "tokens": fmt.right(tokens),
            "cost": fmt.right(fmt.dollars(req.get("cost"))),
            "cache": fmt.plain(req.get("cache", ""), 5),
            "fallback": fmt.plain(req.get("fallback") or "", cols.fallback),
            "attempts": fmt.right(str(req.get("attempts", ""))),
        }

    def _status(self, req: dict[str, Any]) -> Text:
        """Returns the status; without Try and Fallback columns, it says `×3` when the request
        took more than one attempt and `↪` when a fallback group served it."""
        out = fmt.status(req.get("status"))
        if "attempts" not in dict(self.column_set.columns):
            if int(req.get("attempts") or 0) > 1:
                out.append(f" ×{req['attempts']}", style="dim")
            if req.get("fallback"):
                out.append(" ↪", style="dim")
        return out

    def _started_cells(self, req: dict[str, Any]) -> dict[str, Any]:
        wait = Text("…", style="dim")
        cells: dict[str, Any] = {key: Text("") for key, _label in self.column_set.columns}
        cells.update(time=Text(fmt.clock_time(req["time"])), route=self._route(req, "…"))
        cells.update(status=fmt.status(None), latency=wait, ttft=wait)
        return cells

    def _route(self, req: dict[str, Any], dep: str) -> Text:
        """Returns `group → deployment` in `route_cells`. When both do not fit, the deployment
        (an id from the config) keeps up to two thirds of the room and the group is cut (it is
        whatever model name the client asked for when it names no group)."""
        room = self.route_cells - 3
        group = fmt.plain(req.get("group", ""), room)
        deployment = fmt.plain(dep, room - min(group.cell_len, room // 3))
        group.truncate(room - deployment.cell_len, overflow="ellipsis")
        return Text.assemble(group, " → ", deployment, no_wrap=True, end="")

    def history(self) -> list[dict[str, Any]]:
        """Returns every request kept, oldest first: the older errors, then the newest."""
        return [*self.old_errors.values(), *self.requests.values()]

    def find(self, request_id: str) -> dict[str, Any] | None:
        """Returns a kept request by id."""
        return self.requests.get(request_id) or self.old_errors.get(request_id)

    def match_count(self) -> int:
        """Returns how many kept requests pass the filter."""
        return sum(1 for r in self.history() if matches(r, self.query_text))

    def _update_title(self) -> None:
        paused = f"paused · {self.unseen} new ↓" if self.unseen else "paused · G resumes"
        flags = ["following" if self.follow else paused]
        if self.busy_every:  # said, so a slower tail is not taken for a stuck one
            flags.append(f"busy: every {self.busy_every:g} s")
        if self.query_text:
            count = self.match_count()
            flags.append(f"filter: {self.query_text} · {count} match{'' if count == 1 else 'es'}")
        self.border_subtitle = fmt.plain(" · ".join(flags), 60)  # the filter is typed: no markup

    def action_toggle_follow(self) -> None:
        self.set_follow(not self.follow)

    def set_follow(self, follow: bool) -> None:
        """Follows the tail (and jumps to it), or pauses where the cursor is."""
        if follow != self.follow:
            self.follow = follow
            self.unseen = 0
            self._update_title()
        if follow:
            self._follow(self.query_one(RequestTable))

    def on_pane_table_moved(self, event: PaneTable.Moved) -> None:
        event.stop()
        self.set_follow(event.at_end)

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.value = self.query_text
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        """Filters as the user types (the box stays open); Enter closes it."""
        event.stop()
        if event.input.display and event.value.strip() != self.query_text:
            self.query_text = event.value.strip()
            self._update_title()
            self._rebuild()

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

    def selected_request(self) -> dict[str, Any] | None:
        """Returns the request under the cursor."""
        key = selected_key(self.query_one(RequestTable))
        return self.find(key) if key is not None else None

    def action_row(self, action: str) -> None:
        """Asks the app to copy the selected request as curl, replay it or show its key."""
        request = self.selected_request()
        if request is None:
            self.notify("no request selected", severity="warning")
        else:
            self.post_message(self.RowAction(action, request))

    def key_escape(self) -> None:
        if self.query_one("#filter", Input).display:
            self.set_filter("")

    def on_request_table_opened(self, event: RequestTable.Opened) -> None:
        event.stop()
        request = self.find(event.request_id)
        if request is not None:
            self.post_message(self.DetailRequested(request))
