"""A request's details: summary (the client, the API it came through, the session), each
attempt with its reason and the upstream's message in full, and the response preview (events
never carry keys, so none can show here)."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
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
        ("Kind", f"{req.get('kind', 'chat')}{' · stream' if req.get('stream') else ''}"),
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


def preview(text: str) -> Text:
    """Returns the answer's preview as plain text, its lines kept, anything else escaped."""
    return Text("\n").join(fmt.plain(line) for line in text[:4000].splitlines())


class RequestDetailScreen(ModalScreen[None]):
    """Opened with Enter on the Requests pane; escape closes."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,enter", "close", "Close")]

    def __init__(self, request: dict[str, Any]) -> None:
        super().__init__()
        self.request = request

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

    def action_close(self) -> None:
        self.dismiss(None)
