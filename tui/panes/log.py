"""The Log pane: the proxy's log records (from the bus), config warnings, every key's health
change and the operator's actions; nothing is ever written over the screen. A line repeated
back to back is written once, then counted (`… ×12`, updated once a frame)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import RichLog

from tui.panes import format as fmt
from tui.panes.base import Frame, Pane

LEVEL_STYLES = {"WARNING": "yellow", "ERROR": "red", "CRITICAL": "bold red", "DEBUG": "dim"}
MAX_MESSAGE = 4000


def log_line(event: dict[str, Any]) -> Text:
    """Returns `12:00:01 WARNING proxy.router: message`."""
    level = str(event.get("level", "INFO")).upper()
    out = Text(f"{fmt.clock_time(event.get('time', 0.0))} ", style="dim")
    out.append(f"{level:<7} ", style=LEVEL_STYLES.get(level, "cyan"))
    out.append(f"{event.get('logger', '')}: ", style="dim")
    # Messages quote what clients sent (a model name, an error body): escape, keep the lines.
    lines = str(event.get("message", ""))[:MAX_MESSAGE].split("\n")
    out.append_text(Text("\n").join(fmt.plain(line) for line in lines))
    return out


def key_change(event: dict[str, Any], now: float) -> dict[str, Any]:
    """Returns the log record of a key's health change: `gpt-4o-2: cooling down 42s (429 …)`."""
    health = str(event.get("health", ""))
    until = event.get("cooldown_until")
    state = fmt.health(health, until - now if until else None).plain[2:]
    reason = event.get("reason")
    return {
        "time": event.get("time") or now,
        "level": "INFO" if health in ("ok", "disabled") else "WARNING",
        "logger": "keys",
        "message": f"{event.get('deployment')}: {state}" + (f" ({reason})" if reason else ""),
    }


class LogPane(Pane):
    """A bounded, scrollable log."""

    PANE_ID = "log"
    TITLE = "Log"
    KEY = "5"

    def __init__(self) -> None:
        super().__init__()
        self._warned = False
        self.lines = 0
        """Records written (a repeat counts, though it takes no line)."""
        self._last: tuple[str, str, str] | None = None
        """The latest record's level, logger and message: a repeat of it is only counted."""
        self._repeats = 0
        """How many times in a row `_last` came (its first line included)."""
        self._told = 1
        """The count the Log last showed for `_last`."""

    def compose(self) -> ComposeResult:
        yield RichLog(max_lines=2000, wrap=True, markup=False, id="log-view")

    def apply(self, frame: Frame) -> None:
        view = self.query_one(RichLog)
        if not self._warned and frame.snapshot is not None:
            self._warned = True
            server = frame.snapshot.get("server", {})
            for warning in server.get("warnings", []):
                self.write(
                    {
                        "time": server.get("started_at", frame.now),
                        "level": "WARNING",
                        "logger": "config",
                        "message": warning,
                    },
                    view,
                )
        for event in frame.events:
            if event.get("type") == "log":
                self.write(event, view)
            elif event.get("type") == "deployment_changed":
                self.write(key_change(event, frame.now), view)
            elif event.get("type") == "usage_store" and not event.get("ok"):
                self.write(
                    {
                        "time": frame.now,
                        "level": "ERROR",
                        "logger": "usage",
                        "message": f"usage store: {event.get('error')}",
                    },
                    view,
                )
        self._tell_repeats(view)

    def write(self, event: dict[str, Any], view: RichLog | None = None) -> None:
        """Appends one log record; a repeat of the previous one is counted instead (shown as
        `… ×N` at the end of the frame, or before the next different record)."""
        view = view or self.query_one(RichLog)
        self.lines += 1
        key = (
            str(event.get("level", "INFO")),
            str(event.get("logger", "")),
            str(event.get("message", ""))[:MAX_MESSAGE],
        )
        if key == self._last:
            self._repeats += 1
            return
        self._tell_repeats(view)
        self._last, self._repeats, self._told = key, 1, 1
        view.write(log_line(event))

    def _tell_repeats(self, view: RichLog) -> None:
        if self._repeats > self._told:
            view.write(Text(f"  … ×{self._repeats}", style="dim"))
            self._told = self._repeats

    def focus_main(self) -> None:
        self.query_one(RichLog).focus()
