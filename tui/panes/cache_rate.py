"""The Cache pane: hit rate since start and over 5 minutes (per-minute sparkline), entries,
memory, tokens and dollars saved; `x` clears the cache."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Sparkline, Static

from tui.panes import format as fmt
from tui.panes.base import Frame, Pane


def summary(cache: dict[str, Any], compact: bool) -> Text:
    """Returns the pane's text for the snapshot's `cache` section."""
    if not cache.get("enabled"):
        return Text("Cache off — set litellm_settings.cache: true to enable it.", style="dim")
    out = Text()
    out.append("Hit rate  ", style="bold")
    out.append(f"{fmt.percent(cache.get('hit_rate'))} since start", style="bold green")
    out.append(f" · {fmt.percent(cache.get('hit_rate_5m'))} last 5 min\n")
    out.append(f"Hits {cache.get('hits', 0)} · misses {cache.get('misses', 0)}")
    out.append(f" · {cache.get('type') or 'local'}\n")
    out.append(f"Entries {cache.get('entries', 0)}/{cache.get('max_entries', 0)}")
    out.append(f" · memory {fmt.size(cache.get('bytes', 0))}")
    if not compact:
        out.append(f" of {fmt.size(cache.get('max_bytes', 0))}")
    out.append("\n")
    out.append(f"Saved {fmt.tokens(cache.get('tokens_saved', 0))} tokens")
    out.append(f" · {fmt.dollars(cache.get('cost_saved', 0.0))}", style="bold")
    return out


def minute_rates(history: list[list[float]]) -> list[float]:
    """Returns the sparkline's data: a 0% anchor, then the hit rate of each minute in `history`
    ([minute, hits, misses]; 0 when idle); empty (a flat line) without history.

    The Sparkline scales bars from the data's own minimum to its maximum and draws a single
    value as a full bar: without the anchor, no history showed as a full 100% chart and a
    steady hit rate as empty bars.
    """
    rates = []
    for _minute, hits, misses in history:
        total = hits + misses
        rates.append(hits / total if total else 0.0)
    return [0.0, *rates] if rates else []


class CacheRatePane(Pane):
    """Reads `snapshot["cache"]`; the proxy owns every number shown here."""

    PANE_ID = "cache"
    TITLE = "Cache"
    KEY = "3"
    can_focus = True
    BINDINGS: ClassVar[list[BindingType]] = [Binding("x", "clear_cache", "Clear cache")]

    def __init__(self) -> None:
        super().__init__()
        self._shown: Text | None = None

    def compose(self) -> ComposeResult:
        yield Static("waiting for the proxy…", id="cache-summary")
        yield Static("hit rate per minute, last 30 min", id="cache-spark-label")
        yield Sparkline([0.0], id="cache-spark")

    def apply(self, frame: Frame) -> None:
        if not frame.fresh or frame.snapshot is None:
            return
        cache = frame.snapshot.get("cache") or {}
        text = summary(cache, self.compact)
        if text != self._shown:  # a snapshot a second, mostly the same numbers
            self._shown = text
            self.query_one("#cache-summary", Static).update(text)
        rates = minute_rates(cache.get("history") or [])
        spark = self.query_one(Sparkline)
        if list(spark.data or []) != rates:
            spark.data = rates

    def action_clear_cache(self) -> None:
        self.post_message(self.ActionRequested("clear_cache"))
