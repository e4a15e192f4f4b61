"""A request's details: summary (the client, the API it came through, the session, the
parameters it set, why its answer ended), each attempt with its reason and the upstream's
message in full, and the response preview (events never carry keys, so none can show here);
with a source that serves them, the request's stored bodies side by side (client, upstream,
answer; scrubbed by the proxy), and B to turn storing on or off."""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar

import orjson
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.panes import format as fmt
from tui.panes.base import PaneTable

PATHS = {
    "chat": "Chat Completions, /v1/chat/completions",
    "messages": "Anthropic Messages, /v1/messages",
    "responses": "OpenAI Responses, /v1/responses",
}
LONGEST = 256
"""Cells of any one value: ids are shown whole, a hostile megabyte is not."""
MESSAGE = 2000
"""Cells of an upstream's message: whole, wrapped."""
BODY_CHARS = 20_000
"""Characters of one stored body shown (the proxy keeps up to 64 KiB of each)."""
BODY_COLUMNS = (
    ("client", "Client sent"),
    ("upstream", "Sent upstream"),
    ("answer", "Came back"),
)
NOT_STORED = "not stored (press B to start storing bodies)"
FINISHES = {
    "length": "length (the answer hit max tokens)",
    "content_filter": "content_filter (the provider's filter stopped the answer)",
}
"""Finish reasons worth a word of explanation; any other is shown as it is."""


def summary(req: dict[str, Any]) -> Text:
    """Returns the summary block of a request event: every value plain text, never markup,
    with control characters escaped (see `fmt.plain`)."""
    finished = req.get("type") == "request_finished"
    door = str(req.get("front_door") or "chat") if finished else "…"
    rows = [
        ("Request", req.get("id", "")),
        ("Time", fmt.clock_time(req.get("time", 0.0))),
        ("API", f"{door} ({PATHS[door]})" if door in PATHS else door),
        ("Client", (req.get("client") or "(unnamed)") if finished else "…"),
        ("Session", (req.get("session") or "—") if finished else "…"),
        ("Group", req.get("group", "")),
        ("Deployment", f"{req.get('deployment') or '—'} ({req.get('provider') or '—'})"),
        ("Status", _status(req) if finished else "in flight"),
        ("Finish", _finish(req.get("finish")) if finished else "—"),
        ("Kind", f"{req.get('kind', 'chat')}{' · stream' if req.get('stream') else ''}"),
        ("Params", params(req.get("params")) if finished else "…"),
        ("Latency", f"{fmt.ms(req.get('latency_ms'))} · TTFT {fmt.ms(req.get('ttft_ms'))}"),
        (
            "Tokens",
            f"{req.get('prompt_tokens', 0)} in · {req.get('completion_tokens', 0)} out"
            f"{' (estimated)' if req.get('tokens_estimated') else ''}",
        ),
        ("Cost", fmt.dollars(req.get("cost"))),
        (
            "Cache",
            f"{req.get('cache', '—')}"
            + (f" · saved {fmt.dollars(req.get('cost_saved'))}" if req.get("cost_saved") else ""),
        ),
        ("Fallback", req.get("fallback") or "—"),
        ("Attempts", str(req.get("attempts", "—"))),
    ]
    if req.get("error"):
        rows.append(("Error", str(req["error"])))
    out = Text()
    for label, value in rows:
        out.append(f"{label:<12}", style="bold")
        out.append_text(fmt.plain(value, LONGEST))
        out.append("\n")
    return out


def upstream_messages(attempts: Any) -> Text:
    """Returns each failed attempt's upstream message in full, wrapped (the table's Reason
    column cuts it): `#1 gpt-4o-2 · 429: rate limited …`; plain text, never markup."""
    out = Text()
    for i, attempt in enumerate(attempts, start=1):
        reason = str(attempt.get("reason") or "")
        if not reason or reason == "ok":
            continue
        head = f"#{i} {attempt.get('deployment') or attempt.get('group') or '—'}"
        out.append_text(fmt.plain(f"{head} · {attempt.get('status', '')}: ", LONGEST, "bold"))
        out.append_text(fmt.plain(reason, MESSAGE))
        out.append("\n")
    out.rstrip()
    out.no_wrap = False
    return out


def _status(req: dict[str, Any]) -> str:
    status = req.get("status")
    if status == fmt.CANCELLED:
        return f"{status} cancelled (the client went away before the answer)"
    return str(status)


def _finish(reason: Any) -> str:
    if not reason:
        return "—"
    return FINISHES.get(reason, str(reason)) if isinstance(reason, str) else str(reason)


def params(values: Any) -> str:
    """Returns the client's parameters on one line, `temperature 0.2 · tools 25 · stream` (a
    true flag by its name alone); `—` for none. A string to show through `fmt.plain`: the
    values are the client's."""
    if not isinstance(values, dict) or not values:
        return "—"
    shown = []
    for name, value in list(values.items())[:24]:
        if value is True:
            shown.append(str(name))
        else:
            shown.append(f"{name} {'false' if value is False else value}")
    return " · ".join(shown)


def preview(text: str) -> Text:
    """Returns the answer's preview as plain text, its lines kept, anything else escaped."""
    return Text("\n").join(fmt.plain(line) for line in text[:4000].splitlines())


def body_text(text: str | None) -> Text:
    """Returns one stored body as plain text (never markup), pretty-printed when it is JSON,
    its lines kept, control characters escaped; `(not captured)` for none."""
    if text is None:
        return Text("(not captured)", style="dim")
    shown = text[:BODY_CHARS]
    with contextlib.suppress(orjson.JSONDecodeError):  # SSE text, or a body cut short
        shown = orjson.dumps(orjson.loads(shown), option=orjson.OPT_INDENT_2).decode()
    lines = shown.splitlines() or [""]
    return Text("\n").join(fmt.plain(line) for line in lines)


def bodies_heading(document: dict[str, Any]) -> Text:
    """Returns the Bodies section's heading: whether the proxy stores bodies now."""
    state = "on" if document.get("storing") else "off"
    return Text(f"Bodies (storing {state}; B turns it {'off' if state == 'on' else 'on'})")


class RequestDetailScreen(ModalScreen[None]):
    """Opened with Enter on the Requests pane; escape closes. With a `source` that serves
    stored bodies, a Bodies section shows the client's body, the upstream's and the answer
    side by side, and B turns storing on or off on the running proxy."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,enter", "close", "Close"),
        Binding("B", "toggle_bodies", "Store bodies", show=False),
    ]
    DEFAULT_CSS = """
    .bodies-columns { height: auto; }
    .bodies-column { width: 1fr; height: auto; padding: 0 1 0 0; }
    .bodies-title { text-style: bold; }
    """

    def __init__(self, request: dict[str, Any], source: Any = None) -> None:
        """Args:
        request: the request event shown.
        source: the dashboard's `LiveSource`; its `bodies` (when it has one) fills the
            Bodies section.
        """
        super().__init__()
        self.request = request
        self.source = source if callable(getattr(source, "bodies", None)) else None
        self.bodies: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        req = self.request
        with VerticalScroll(id="detail-box") as box:
            box.border_title = fmt.plain(f"Request {req.get('id', '')}", 80)  # a client's id
            yield Static(summary(req), id="detail-summary")
            yield Static("Attempts", classes="detail-heading")
            table = PaneTable(cursor_type="none", id="detail-attempts")
            table.add_columns("#", "Group", "Deployment", "Status", "Latency", "Reason")
            for i, attempt in enumerate(req.get("attempt_log") or (), start=1):
                table.add_row(
                    Text(str(i)),
                    fmt.plain(attempt.get("group", ""), 40),
                    fmt.plain(attempt.get("deployment") or "", 40),
                    fmt.plain(attempt.get("status", ""), 6),
                    fmt.right(fmt.ms(attempt.get("latency_ms"))),
                    fmt.plain(attempt.get("reason") or "", LONGEST),
                )
            yield table
            messages = upstream_messages(req.get("attempt_log") or ())
            if messages.plain:
                yield Static("Upstream messages", classes="detail-heading")
                yield Static(messages, id="detail-upstream")
            yield Static("Response preview", classes="detail-heading")
            yield Static(preview(req.get("preview") or "(none)"), id="detail-preview")

    def on_mount(self) -> None:
        if self.source is not None:
            self.run_worker(self._load_bodies(), group="bodies", exclusive=True)

    async def _load_bodies(self) -> None:
        assert self.source is not None
        try:
            document: dict[str, Any] = await self.source.bodies(str(self.request.get("id", "")))
        except RuntimeError as exc:
            document = {"stored": False, "storing": False, "error": str(exc)}
        self.bodies = document
        await self._show_bodies(document)

    async def _show_bodies(self, document: dict[str, Any]) -> None:
        """Mounts (or replaces) the Bodies section at the end of the detail."""
        box = self.query_one("#detail-box", VerticalScroll)
        await box.query("#detail-bodies-heading, #detail-bodies").remove()
        heading = Static(
            bodies_heading(document), classes="detail-heading", id="detail-bodies-heading"
        )
        if not document.get("stored"):
            reason = document.get("error") or NOT_STORED
            body = Static(fmt.plain(reason, MESSAGE), id="detail-bodies")
            await box.mount_all([heading, body])
            return
        columns = Horizontal(classes="bodies-columns", id="detail-bodies")
        await box.mount_all([heading, columns])
        truncated = document.get("truncated") or {}
        for part, title in BODY_COLUMNS:
            cut = " (cut)" if truncated.get(part) else ""
            head = [Static(f"{title}{cut}", classes="bodies-title")]
            if part == "upstream" and document.get("upstream_url"):
                head.append(Static(fmt.plain(document["upstream_url"], LONGEST)))
            column = Vertical(*head, classes="bodies-column")
            await columns.mount(column)
            await column.mount(Static(body_text(document.get(part)), id=f"detail-body-{part}"))

    async def action_toggle_bodies(self) -> None:
        """Turns storing bodies on (or off) on the running proxy, then shows them again."""
        if self.source is None:
            self.notify("this dashboard cannot reach stored bodies", severity="warning")
            return
        on = not (self.bodies or {}).get("storing")
        try:
            await self.source.action("bodies_on" if on else "bodies_off")
        except RuntimeError as exc:
            self.notify(fmt.clean(str(exc), 500), severity="error", markup=False)
            return
        self.notify(f"storing request bodies: {'on' if on else 'off'}", markup=False)
        await self._load_bodies()

    def action_close(self) -> None:
        self.dismiss(None)
