"""The status line at the top: is it healthy right now, and is it getting worse (the keys'
health rollup, req/s with its trend, error rate and latency of the last minute), then the
listen address, uptime and config; `stale` while an attached proxy is unreachable. And the
banner shown while the built-in demo config is in use."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from rich.text import Text
from textual.widgets import Static

from proxy.store.rollups import percentile
from tui.panes import format as fmt

DEMO_TEXT = "Demo config: mock models, no API keys needed. Press t to send a prompt, or: "
DEMO_CURL = (
    "curl {url}/v1/chat/completions -H 'content-type: application/json' -d "
    '\'{{"model":"demo-fast","messages":[{{"role":"user","content":"hi"}}]}}\''
)
WINDOW_S = 60.0
"""The error rate and percentiles in the header are of the last minute's requests."""
MAX_SAMPLES = 5000
TREND = 8
"""req/s samples in the header's trend."""
BARS = "▁▂▃▄▅▆▇█"
ROLLUP = [  # (state, word, style), the bad ones first
    ("key_rejected", "rejected", "bold red"), ("failing", "failing", "bold red"),
    ("budget_spent", "budget spent", "bold red"),
    ("cooling_down", "cooling", "yellow"), ("at_limit", "at limit", "yellow"),
    ("ok", "ok", "green"), ("disabled", "off", "dim"), ("key_missing", "off", "dim"),
]  # fmt: skip


def rollup(deployments: Iterable[dict[str, Any]]) -> Text:
    """Returns `6 ok · 2 cooling · 1 rejected`, the bad states first."""
    counts: dict[str, int] = {}
    for dep in deployments:
        state = fmt.health_state(dep)
        counts[state] = counts.get(state, 0) + 1
    words: dict[str, tuple[int, str]] = {}
    for state, word, style in ROLLUP:
        if counts.get(state):
            count = words.get(word, (0, style))[0] + counts.pop(state)
            words[word] = (count, style)
    for state, count in counts.items():  # a state this dashboard does not know yet
        words[state] = (count, "")
    parts = [Text(f"{count} {word}", style=style) for word, (count, style) in words.items()]
    return Text(" · ").join(parts) if parts else Text("no deployments", style="dim")


class RecentRequests:
    """The last minute of finished requests (time, status, latency), bounded."""

    def __init__(self) -> None:
        self.samples: deque[tuple[float, int, float | None]] = deque(maxlen=MAX_SAMPLES)
        self._summary: tuple[float, float, Text] | None = None
        """The last summary, the time it was made at and the time it holds until (when its
        oldest sample leaves the window): between them, with no new sample, it is the same."""

    def add(self, events: Iterable[dict[str, Any]]) -> None:
        for event in events:
            if event.get("type") == "request_finished":
                status = event.get("status")
                self.samples.append(
                    (float(event.get("time") or 0.0), int(status or 0), event.get("latency_ms"))
                )
                self._summary = None

    def summary(self, now: float) -> Text:
        """Returns `err 4.1% · p50 812 ms / p95 1.2 s` over the last minute, or ``."""
        if self._summary is not None:
            made, holds, text = self._summary
            if made <= now <= holds:
                return text
        while self.samples and self.samples[0][0] < now - WINDOW_S:
            self.samples.popleft()
        recent = [s for s in self.samples if s[0] >= now - WINDOW_S]  # they arrive unsorted
        holds = min((s[0] for s in recent), default=float("inf")) + WINDOW_S
        self._summary = (now, holds, self._summarise(recent))
        return self._summary[2]

    @staticmethod
    def _summarise(recent: list[tuple[float, int, float | None]]) -> Text:
        if not recent:
            return Text()
        failed = sum(1 for _t, status, _ms in recent if status >= 400)
        latencies = sorted(ms for _t, _s, ms in recent if ms is not None)
        rate = failed / len(recent)
        out = Text(f"err {rate * 100:.1f}%", style="red" if rate >= 0.05 else "")
        out.append(f" · p50 {fmt.ms(percentile(latencies, 0.5))}")
        out.append(f" / p95 {fmt.ms(percentile(latencies, 0.95))}")
        return out


def trend(samples: Iterable[float]) -> str:
    """Returns a tiny sparkline of req/s samples, `▁▃▇`."""
    values = list(samples)
    top = max(values, default=0.0)
    if top <= 0:
        return BARS[0] * len(values)
    return "".join(BARS[min(len(BARS) - 1, int(v / top * (len(BARS) - 1)))] for v in values)


def status_text(
    snapshot: dict[str, Any] | None,
    *,
    connected: bool,
    error: str | None,
    config_label: str,
    now: float,
    recent: Text | None = None,
    rates: Iterable[float] = (),
) -> Text:
    """Returns the header line; every value from the proxy is plain text, never markup."""
    out = Text("llmproxy-tui ", style="bold")
    server = (snapshot or {}).get("server") or {}
    stale = not connected and snapshot is not None
    if stale:  # first: at 80 columns the reason may be cut, never this
        out.append("stale", style="reverse")
        out.append(" ")
    if not connected:
        out.append("✖ disconnected: ", style="bold red")
        out.append_text(fmt.plain(error or "connecting", 60, style="bold red"))
        out.append(" — retrying ", style="bold red")
    if server:
        line = Text()
        line.append_text(rollup((snapshot or {}).get("deployments") or []))
        line.append(f" │ {server.get('requests_per_s', 0.0):.1f} req/s {trend(rates)}")
        if recent:
            line.append(" · ")
            line.append_text(recent)
        line.append(f" · {server.get('in_flight', 0)} in flight │ ")
        line.append_text(fmt.plain(server.get("listen", ""), 60, style="bold cyan"))
        started = server.get("started_at")
        uptime = now - started if started else server.get("uptime_s", 0.0)
        line.append(f" · up {fmt.duration(uptime)} ")
        if stale:
            line.stylize("dim")
        out.append_text(line)
    elif connected:
        out.append("starting… ", style="dim")
    label = config_label or server.get("config_path") or ""
    if label:
        out.append_text(fmt.plain(f"· config {label}", 200, style="dim"))
    store = server.get("usage_store") or {}
    if store and not store.get("ok", True):
        out.append_text(fmt.plain(f" · usage store: {store.get('error')}", 200, style="bold red"))
    return out


class StatusHeader(Static):
    """One line of status, redrawn when it changes."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.recent = RecentRequests()
        self.rates: deque[float] = deque(maxlen=TREND)
        self._snapshot: dict[str, Any] | None = None
        self._shown: Text | None = None

    def show(
        self,
        snapshot: dict[str, Any] | None,
        *,
        connected: bool,
        error: str | None,
        config_label: str,
        now: float,
        events: Iterable[dict[str, Any]] = (),
    ) -> None:
        self.recent.add(events)
        if snapshot is not None and snapshot is not self._snapshot:
            self._snapshot = snapshot
            self.rates.append(float((snapshot.get("server") or {}).get("requests_per_s") or 0.0))
        text = status_text(
            snapshot,
            connected=connected,
            error=error,
            config_label=config_label,
            now=now,
            recent=self.recent.summary(now),
            rates=self.rates,
        )
        if text != self._shown:  # mostly the same line: uptime moves once a second
            self._shown = text
            self.update(text, layout=False)  # one line, always (`#status`): no layout pass


def demo_text(listen: str) -> str:
    """Returns the banner: what the demo is and the exact line that tries it."""
    url = listen.replace("//0.0.0.0:", "//127.0.0.1:") or "http://127.0.0.1:4000"
    return DEMO_TEXT + DEMO_CURL.format(url=url)


class DemoBanner(Static):
    """Visible only when the demo config is in use."""

    def __init__(self) -> None:
        super().__init__(demo_text(""), id="demo-banner", markup=False)
        self._listen = ""

    def show(self, listen: str) -> None:
        if listen != self._listen:
            self._listen = listen
            self.update(demo_text(listen))
