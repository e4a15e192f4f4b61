"""The Sessions pane: one row per agent session (Claude Code, Codex, any client naming a session)
from the request events the dashboard receives: its client, groups, the deployments that served
it, requests, tokens, the provider's prompt-cache read share, cost and when it was last active.
Shown zoomed (its number key); at home it takes no room."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from tui.panes import format as fmt
from tui.panes.base import Frame, Pane, PaneTable, define_columns, sync_rows

MAX_SESSIONS = 500
"""Sessions kept (the least recently active leave first)."""
DETAILED = [
    ("session", "Session"), ("client", "Client"), ("group", "Group"),
    ("deployments", "Deployments"), ("requests", "Requests"), ("tokens", "Tokens in/out"),
    ("cache_read", "Cache read"), ("cost", "Cost"), ("last", "Last active"),
]  # fmt: skip
COMPACT = [
    ("session", "Session"), ("client", "Client"), ("requests", "Requests"),
    ("cache_read", "Cache read"), ("cost", "Cost"), ("last", "Last active"),
]  # fmt: skip
EMPTY = (
    "No agent sessions yet: requests that name a session (Claude Code, Codex, an "
    "x-session-id header) appear here, one row per session."
)


@dataclass
class Session:
    """What the requests of one session add up to."""

    session: str
    client: str = ""
    groups: list[str] = field(default_factory=list)
    deployments: list[str] = field(default_factory=list)
    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost: float = 0.0
    unpriced: int = 0
    """Requests without a known price (their cost is not in `cost`)."""
    last_active: float = 0.0

    def add(self, event: dict[str, Any]) -> None:
        """Counts one `request_finished` event."""
        self.requests += 1
        self.client = str(event.get("client") or self.client)
        _remember(self.groups, event.get("group"))
        _remember(self.deployments, event.get("deployment"))
        status = event.get("status")
        if isinstance(status, int) and status >= 400:
            self.errors += 1
        self.prompt_tokens += int(event.get("prompt_tokens") or 0)
        self.completion_tokens += int(event.get("completion_tokens") or 0)
        self.cached_tokens += int(event.get("cached_tokens") or 0)
        cost = event.get("cost")
        if cost is None:
            self.unpriced += 1
        else:
            self.cost += float(cost)
        self.last_active = max(self.last_active, float(event.get("time") or 0.0))

    @property
    def cache_read(self) -> float | None:
        """The provider's prompt-cache read share: cached prompt tokens / prompt tokens."""
        return self.cached_tokens / self.prompt_tokens if self.prompt_tokens else None


def _remember(values: list[str], value: object) -> None:
    if value and str(value) not in values:
        values.append(str(value))


class SessionBook:
    """Sessions by id, the most recently active last; each request counted once."""

    def __init__(self) -> None:
        self.sessions: OrderedDict[str, Session] = OrderedDict()
        self._seen: OrderedDict[str, None] = OrderedDict()

    def add(self, events: Iterable[dict[str, Any]]) -> bool:
        """Counts the finished requests of `events` that name a session.

        Returns:
            True when a session changed.
        """
        changed = False
        for event in events:
            session_id = event.get("session")
            if event.get("type") != "request_finished" or not session_id:
                continue
            request_id = str(event.get("id"))
            if request_id in self._seen:  # `recent` and the live events overlap
                continue
            self._seen[request_id] = None
            if len(self._seen) > 4 * MAX_SESSIONS:
                self._seen.popitem(last=False)
            key = str(session_id)
            session = self.sessions.pop(key, None) or Session(key)
            session.add(event)
            self.sessions[key] = session
            while len(self.sessions) > MAX_SESSIONS:
                self.sessions.popitem(last=False)
            changed = True
        return changed

    def newest_first(self) -> list[Session]:
        return sorted(self.sessions.values(), key=lambda s: s.last_active, reverse=True)


def ago(seconds: float) -> str:
    """Returns `12s ago`, `3m05s ago`, or `now`."""
    return "now" if seconds < 1 else f"{fmt.duration(seconds)} ago"


class SessionsPane(Pane):
    """Agent sessions, the most recently active first."""

    PANE_ID = "sessions"
    TITLE = "Sessions"
    KEY = "7"

    def __init__(self) -> None:
        super().__init__()
        self.book = SessionBook()
        self._now = 0.0
        self._dirty = True

    def compose(self) -> ComposeResult:
        yield Static(EMPTY, id="sessions-empty")
        yield PaneTable(cursor_type="row", zebra_stripes=True, id="sessions-table")

    def on_mount(self) -> None:
        define_columns(self.query_one(DataTable), COMPACT if self.compact else DETAILED)

    def set_compact(self, compact: bool) -> None:
        if compact != self.compact:
            super().set_compact(compact)
            if self.is_mounted:
                define_columns(self.query_one(DataTable), COMPACT if compact else DETAILED)
                self._render_rows()

    def apply(self, frame: Frame) -> None:
        if frame.fresh and frame.snapshot is not None:
            self._dirty |= self.book.add(frame.snapshot.get("recent") or ())
        self._dirty |= self.book.add(frame.events)
        if frame.now - self._now >= 1.0:  # "last active" moves on
            self._dirty = True
        self._now = frame.now
        if self._dirty and self.display and self.has_class("-zoomed"):
            self._render_rows()

    def focus_main(self) -> None:
        self._render_rows()  # zoomed: it was not drawn while hidden
        super().focus_main()

    def _render_rows(self) -> None:
        self._dirty = False
        sessions = self.book.newest_first()
        self.query_one("#sessions-empty", Static).display = not sessions
        rows = [(s.session, self._cells(s)) for s in sessions]
        sync_rows(self.query_one(DataTable), rows)
        self.border_subtitle = f"{len(sessions)} session{'' if len(sessions) == 1 else 's'}"

    def _cells(self, s: Session) -> dict[str, Any]:
        tokens = f"{fmt.tokens(s.prompt_tokens)}/{fmt.tokens(s.completion_tokens)}"
        cost = Text(fmt.dollars(s.cost) if s.requests > s.unpriced else "—")
        if s.unpriced and s.requests > s.unpriced:
            cost.append(" +", style="dim")  # some of its requests have no known price
        return {
            "session": fmt.short_id(s.session, 12 if self.compact else 36),
            "client": fmt.plain(s.client, 16) if s.client else Text("—", style="dim"),
            "group": fmt.plain(", ".join(s.groups), 30),
            "deployments": fmt.plain(", ".join(s.deployments), 40),
            "requests": fmt.right(
                f"{s.requests:,}" + (f" ({s.errors} err)" if s.errors else "")
            ),  # fmt: skip
            "tokens": fmt.right(tokens),
            "cache_read": fmt.right(fmt.percent(s.cache_read)),
            "cost": fmt.right(cost),
            "last": fmt.right(ago(self._now - s.last_active)),
        }
