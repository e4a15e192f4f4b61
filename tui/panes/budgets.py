"""The Budgets pane: each virtual key's spend against its budget (a bar), when the budget
resets, its requests this minute, when it was last used and whether it is blocked. Hidden while
there are no virtual keys; a `budget_crossed` event shows a notice (the proxy's log line about it
reaches the Log pane over the bus)."""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from tui.panes import format as fmt
from tui.panes.base import Frame, Pane, PaneTable, define_columns, sync_rows

DETAILED = [
    ("key", "Key"),
    ("name", "Name"),
    ("budget", "Spend / budget"),
    ("resets", "Resets in"),
    ("rpm", "RPM"),
    ("last_used", "Last used"),
    ("state", "State"),
]
COMPACT = [
    ("key", "Key"),
    ("budget", "Spend / budget"),
    ("resets", "Resets"),
    ("rpm", "RPM"),
    ("state", "State"),
]
BAR_WIDTH, COMPACT_BAR_WIDTH = 10, 5
MAX_NAME = 24
MAX_ROWS = 6
"""Keys shown at home before the table scrolls (zoom, key 6, shows them all)."""
EMPTY_HINT = "No virtual keys. Create one: llmproxy-tui keys create --alias NAME --max-budget 5"


def money(value: float | None) -> str:
    """Returns `$3.20`, `$0.0042`, or `—`."""
    if value is None:
        return "—"
    return f"${value:,.2f}" if abs(value) >= 1 or value == 0 else f"${value:.4f}"


def budget_bar(key: dict[str, Any], width: int) -> Text:
    """Returns `██████░░░░ $3.20/$5.00`: spend against max_budget (yellow past the soft
    budget or 60%, red from 90%), or the spend alone when the key has no budget."""
    spend = float(key.get("spend") or 0.0)
    budget = key.get("max_budget")
    soft = key.get("soft_budget")
    if not budget:
        style = "yellow" if soft is not None and spend >= float(soft) else ""
        return Text(money(spend) + " (no budget)", style=style)
    ratio = min(1.0, spend / float(budget))
    warn = ratio >= 0.6 or (soft is not None and spend >= float(soft))
    style = "red" if ratio >= 0.9 else "yellow" if warn else "green"
    filled = round(ratio * width)
    out = Text("█" * filled, style=style)
    out.append("░" * (width - filled), style="dim")
    out.append(f" {money(spend)}/{money(float(budget))}")
    return out


def countdown(seconds: float) -> str:
    """Returns `42s`, `3m05s`, `2h03m` or `12d04h`."""
    if seconds >= 86400:
        whole = int(seconds)
        return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"
    return fmt.duration(seconds)


def ago(when: float | None, now: float) -> Text:
    """Returns `3m05s ago`, `just now` or a dim `never`."""
    if not when:
        return Text("never", style="dim")
    delta = now - float(when)
    return Text("just now" if delta < 1 else f"{countdown(delta)} ago")


def key_state(key: dict[str, Any]) -> Text:
    """Returns the key's state: blocked, expired, over budget, soft budget, or ok."""
    spend = float(key.get("spend") or 0.0)
    budget, soft = key.get("max_budget"), key.get("soft_budget")
    if key.get("blocked"):
        return Text("✗ blocked", style="bold red")
    if key.get("expired"):
        return Text("✗ expired", style="red")
    if budget is not None and spend >= float(budget):
        return Text("✗ budget spent", style="red")
    if soft is not None and spend >= float(soft):
        return Text("! soft budget", style="yellow")
    return Text("● ok", style="green")


def crossing_line(event: dict[str, Any]) -> str:
    """Returns one line for a `budget_crossed` event (names are plain, escaped, cut)."""
    what = "soft budget" if event.get("kind") == "soft_budget" else "budget"
    scope = {"key": "key", "deployment": "deployment", "provider": "provider"}.get(
        str(event.get("scope")), "budget of"
    )
    name = fmt.clean(event.get("name", ""), 60)[:60]
    line = (
        f"{scope} {name} reached its {what}: "
        f"{money(float(event.get('spend') or 0))} of {money(float(event.get('budget') or 0))}"
    )
    reset_at = event.get("reset_at")
    if reset_at:
        line += f", resets {time.strftime('%Y-%m-%d %H:%M', time.localtime(float(reset_at)))}"
    return line


class BudgetsPane(Pane):
    """Virtual keys keyed by token; shown only when the proxy has some."""

    PANE_ID = "budgets"
    TITLE = "Budgets"
    KEY = "6"
    DEFAULT_CSS = """
    BudgetsPane {
        height: auto;
        max-height: 9;
    }
    .compact BudgetsPane {
        max-height: 6;
    }
    BudgetsPane.-empty {
        display: none;
    }
    BudgetsPane.-empty DataTable {
        display: none;
    }
    BudgetsPane #budgets-hint {
        display: none;
        padding: 0 1;
        color: $text-muted;
    }
    BudgetsPane.-empty #budgets-hint {
        display: block;
    }
    """

    def __init__(self) -> None:
        super().__init__()
        self.has_keys = False
        self.notices = 0
        self._fitted_zoomed: bool | None = None
        """Budget crossings shown so far."""
        self.set_class(True, "-empty")

    def compose(self) -> ComposeResult:
        yield Static(EMPTY_HINT, id="budgets-hint", markup=False)
        yield PaneTable(cursor_type="row", zebra_stripes=True, id="budgets-table")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        define_columns(table, DETAILED)
        self._fit(table)

    def _fit(self, table: DataTable[Any]) -> None:
        """At home the table is as tall as its rows (up to MAX_ROWS); zoomed, the screen.
        Inline, because the app's `.pane DataTable` rule would make it fill the pane."""
        zoomed = self.has_class("-zoomed")
        if zoomed == self._fitted_zoomed:
            return
        self._fitted_zoomed = zoomed
        table.styles.height = "1fr" if zoomed else "auto"
        table.styles.max_height = None if zoomed else MAX_ROWS + 1

    def focus_main(self) -> None:
        self._fit(self.query_one(DataTable))  # just zoomed (key 6): fill the screen now
        super().focus_main()

    def set_compact(self, compact: bool) -> None:
        if compact != self.compact:
            super().set_compact(compact)
            define_columns(self.query_one(DataTable), COMPACT if compact else DETAILED)

    def apply(self, frame: Frame) -> None:
        for event in frame.events:
            if event.get("type") == "budget_crossed":
                self._notify(event)
        self._fit(self.query_one(DataTable))  # zoomed or back home since the last frame
        if frame.snapshot is None:
            return
        keys = [k for k in frame.snapshot.get("virtual_keys") or [] if isinstance(k, dict)]
        self._show_keys(bool(keys))
        if keys:
            sync_rows(self.query_one(DataTable), [self._row(k, frame.now) for k in keys])

    def _show_keys(self, has_keys: bool) -> None:
        self.set_class(not has_keys, "-empty")  # hidden, or the hint when zoomed
        if has_keys != self.has_keys:
            self.has_keys = has_keys
            self.app.refresh_bindings()  # the `6` key shows once there are keys

    def _row(self, key: dict[str, Any], now: float) -> tuple[str, dict[str, Any]]:
        width = COMPACT_BAR_WIDTH if self.compact else BAR_WIDTH
        reset_at = key.get("budget_reset_at")
        resets = countdown(float(reset_at) - now) if reset_at else "—"
        alias = key.get("alias")
        cells: dict[str, Any] = {
            "key": fmt.plain(alias or key.get("key_name") or "?", MAX_NAME),
            "name": fmt.plain(key.get("key_name") or "", 14),
            "budget": budget_bar(key, width),
            "resets": Text(resets, style="dim" if resets == "—" else ""),
            "rpm": fmt.right(fmt.bar(int(key.get("rpm") or 0), key.get("rpm_limit"), width=0)),
            "last_used": ago(key.get("last_used"), now),
            "state": key_state(key),
        }
        return str(key.get("token") or key.get("key_name") or alias), cells

    def _notify(self, event: dict[str, Any]) -> None:
        """Shows the crossing as a notice. The Log pane gets it as the proxy's own WARNING line
        (`proxy/observe/alerts.py`, over the bus), so it is not written there twice."""
        line = crossing_line(event)
        spent = event.get("kind") == "max_budget"
        self.app.notify(
            line,
            title="Budget reached" if spent else "Soft budget reached",
            severity="error" if spent else "warning",
            markup=False,
        )
        self.notices += 1
