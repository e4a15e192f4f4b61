"""A key's details (Enter on the Keys pane): why it fails, in full (the last error and when,
error rate, cooldown left, limits), where it points, and its recent requests; reset, disable,
probe and "test this key" from right there."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.panes import format as fmt
from tui.panes.base import Pane, PaneTable
from tui.panes.key_health import probe_text
from tui.screens.tester import OpenTester, TesterPreset

LONGEST = 2000
"""Cells of the last error: shown whole, a hostile megabyte is not."""
RECENT = 20


def key_summary(dep: dict[str, Any], now: float) -> Text:
    """Returns the key's facts, each value plain text (the error is the upstream's)."""
    requests, errors = int(dep.get("requests") or 0), int(dep.get("errors") or 0)
    remaining = fmt.remaining(dep, now)
    state = fmt.health_state(dep)
    rows: list[tuple[str, object]] = [
        ("Deployment", dep.get("id", "")),
        ("Group", dep.get("group", "")),
        ("Provider", dep.get("provider", "")),
        ("Model", dep.get("model", "")),
        ("Base URL", dep.get("api_base") or "(the provider's default)"),
        ("Key", dep.get("key", "-")),
        ("Health", fmt.health(state, remaining).plain),
        ("Why", dep.get("health_reason") or _why(dep, state)),
        (
            "Frees in" if state == "at_limit" else "Cooldown",
            f"{fmt.duration(remaining)} left" if remaining else "—",
        ),
        ("RPM", _limit(dep.get("rpm_used", 0), dep.get("rpm_limit"))),
        ("TPM", _limit(dep.get("tpm_used", 0), dep.get("tpm_limit"))),
        ("In flight", dep.get("in_flight", 0)),
        ("p50", fmt.ms(dep.get("latency_p50_ms"))),
        (
            "Requests",
            f"{requests:,} · {errors:,} errors"
            + (f" ({errors / requests * 100:.1f}%)" if requests else ""),
        ),  # fmt: skip
        ("Failing now", f"{dep.get('fails_this_minute', 0)} failures this minute"),
        ("Sessions", dep.get("sessions", 0)),
    ]
    at = dep.get("last_error_at")
    rows.append(("Last error", f"at {fmt.clock_time(at)}" if at else "—"))
    if dep.get("last_probe_at"):  # background_health_checks on
        rows.append(("Last probe", probe_text(dep, now)))
    if dep.get("budget") is not None:
        rows.append(("Budget", _budget(dep, now)))
    out = Text()
    for label, value in rows:
        out.append(f"{label:<12}", style="bold")
        out.append_text(fmt.plain(value, LONGEST))
        out.append("\n")
    if dep.get("last_error"):
        # Whole, wrapped: the reason a key fails is the one thing this screen is for.
        out.append_text(fmt.plain(dep["last_error"], LONGEST, style="red"))
        out.no_wrap = False
    return out


def _why(dep: dict[str, Any], state: str) -> str:
    """Returns why a key at its limit takes no requests (its rpm, its tpm or the cluster's)."""
    if state != "at_limit":
        return "—"
    rpm, tpm = dep.get("rpm_limit"), dep.get("tpm_limit")
    if rpm and dep.get("rpm_used", 0) >= rpm:
        return f"at its rpm limit ({rpm:,} requests a minute)"
    if tpm and dep.get("tpm_used", 0) >= tpm:
        return f"at its tpm limit ({tpm:,} tokens a minute)"
    return "the cluster's rpm/tpm window is full"


def _budget(dep: dict[str, Any], now: float) -> str:
    """Returns `$0.0012 of $5.0000 (deployment), resets in 9h32m`."""
    scope = dep.get("budget_scope") or "deployment"
    line = f"${float(dep.get('budget_spend') or 0):.4f} of ${float(dep['budget']):.4f} ({scope})"
    resets = dep.get("budget_reset_at")
    return line + (f", resets in {fmt.duration(resets - now)}" if resets else ", never resets")


def _limit(used: int, limit: int | None) -> str:
    return f"{used:,} / {limit:,} this minute" if limit else f"{used:,} (no limit)"


class KeyDetailScreen(ModalScreen[None]):
    """Opened with Enter on the Keys pane; escape closes; r, d, p act on this key."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,enter", "close", "Close"),
        Binding("r", "act('reset')", "Reset cooldown"),
        Binding("d", "act('toggle')", "Disable/enable"),
        Binding("p", "act('probe')", "Probe key"),
        Binding("t", "test", "Test this key"),
    ]

    def __init__(self, dep: dict[str, Any], requests: list[dict[str, Any]], now: float) -> None:
        super().__init__()
        self.dep = dep
        self.requests = requests[-RECENT:]
        self.now = now

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="key-box") as box:
            box.border_title = fmt.plain(f"Key {self.dep.get('id', '')}", 60)
            box.border_subtitle = (
                "r reset · d disable/enable · p probe · t test key · escape closes"
            )
            yield Static(key_summary(self.dep, self.now), id="key-summary")
            yield Static("Recent requests", classes="detail-heading")
            if not self.requests:
                yield Static("none seen since the dashboard started", classes="dim")
                return
            table = PaneTable(cursor_type="row", id="key-requests")
            table.add_columns("Time", "Group", "Status", "Latency", "Error")
            for req in self.requests:
                table.add_row(
                    Text(fmt.clock_time(req.get("time") or 0.0)),
                    fmt.plain(req.get("group", ""), 30),
                    fmt.status(req.get("status")),
                    fmt.right(fmt.ms(req.get("latency_ms"))),
                    fmt.plain(req.get("error") or "", 80),
                )
            yield table

    def action_act(self, action: str) -> None:
        dep_id = str(self.dep.get("id"))
        if action == "toggle":
            action = "enable" if self.dep.get("health") == "disabled" else "disable"
        self.post_message(Pane.ActionRequested(action, dep_id))

    def action_test(self) -> None:
        """Opens the tester on this key's group, pinned to this key: each send carries
        `x-llmproxy-deployment`, so this deployment alone answers, even while it cools down or
        is disabled (ctrl+t in the tester unpins)."""
        dep_id, group = str(self.dep.get("id", "")), str(self.dep.get("group", ""))
        self.dismiss(None)
        self.app.post_message(OpenTester(TesterPreset(group, deployment=dep_id)))

    def action_close(self) -> None:
        self.dismiss(None)
