"""The status line at the top (listen address, uptime, req/s, config, connection) and the
banner shown while the built-in demo config is in use."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from tui.panes import format as fmt

DEMO_TEXT = (
    "Demo config: mock models, no API keys needed. "
    "Run with --config path/to/config.yaml (LiteLLM format) to proxy real providers."
)


def status_text(
    snapshot: dict[str, Any] | None,
    *,
    connected: bool,
    error: str | None,
    config_label: str,
    now: float,
) -> Text:
    """Returns the header line."""
    out = Text("llmproxy-tui ", style="bold")
    if not connected:
        out.append(f"✖ disconnected: {error or 'connecting'} — retrying ", style="bold red")
    server = (snapshot or {}).get("server") or {}
    if server:
        out.append(f"{server.get('listen', '')} ", style="bold cyan")
        started = server.get("started_at")
        uptime = now - started if started else server.get("uptime_s", 0.0)
        out.append(f"· up {fmt.duration(uptime)} ")
        out.append(f"· {server.get('requests_per_s', 0.0):.1f} req/s ")
        out.append(f"· {server.get('in_flight', 0)} in flight ")
    elif connected:
        out.append("starting… ", style="dim")
    label = config_label or server.get("config_path") or ""
    if label:
        out.append(f"· config {label}", style="dim")
    store = server.get("usage_store") or {}
    if store and not store.get("ok", True):
        out.append(f" · usage store: {store.get('error')}", style="bold red")
    return out


class StatusHeader(Static):
    """One line of status, re-rendered each refresh."""

    def show(
        self,
        snapshot: dict[str, Any] | None,
        *,
        connected: bool,
        error: str | None,
        config_label: str,
        now: float,
    ) -> None:
        text = status_text(
            snapshot, connected=connected, error=error, config_label=config_label, now=now
        )
        self.update(text)


class DemoBanner(Static):
    """Visible only when the demo config is in use."""

    def __init__(self) -> None:
        super().__init__(DEMO_TEXT, id="demo-banner")
