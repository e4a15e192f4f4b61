"""How the dashboard writes numbers: latencies, tokens, dollars, sizes, durations and bars."""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text

HEALTH_STYLES: dict[str, tuple[str, str, str]] = {
    "ok": ("●", "ok", "green"),
    "cooling_down": ("◔", "cooling down", "yellow"),
    "at_limit": ("◑", "at limit", "yellow"),
    "failing": ("✖", "failing", "red"),
    "key_rejected": ("✖", "key rejected", "red"),
    "disabled": ("○", "disabled", "dim"),
    "key_missing": ("○", "key missing", "dim"),
    "budget_spent": ("$", "budget spent", "red"),
}


HEALTH_ORDER = ("key_rejected", "failing", "budget_spent", "cooling_down", "at_limit",
                "key_missing", "ok", "disabled")  # fmt: skip
"""Keys are listed bad first."""


def at_limit(dep: dict[str, Any]) -> bool:
    """Whether a usable deployment is at its rpm or tpm limit (its group may answer 429/503),
    or held back by the cluster's window (`limit_frees_at` set)."""
    rpm, tpm = dep.get("rpm_limit"), dep.get("tpm_limit")
    return dep.get("health") == "ok" and bool(
        (rpm and dep.get("rpm_used", 0) >= rpm)
        or (tpm and dep.get("tpm_used", 0) >= tpm)
        or dep.get("limit_frees_at")
    )


def remaining(dep: dict[str, Any], now: float) -> float | None:
    """Returns the seconds until the deployment takes requests again: its cooldown's, or, at its
    rpm/tpm limit, until the minute window frees a slot (`limit_frees_at`); None if unknown."""
    if health_state(dep) == "at_limit":
        frees = dep.get("limit_frees_at")
        return max(0.0, frees - now) if frees else None
    if dep.get("health") == "budget_spent":  # until the budget's window resets
        resets = dep.get("budget_reset_at") or dep.get("cooldown_until")
        return max(0.0, resets - now) if resets else None
    until = dep.get("cooldown_until")
    return until - now if until else dep.get("cooldown_remaining_s")


def health_state(dep: dict[str, Any]) -> str:
    """Returns the deployment's health, `at_limit` for a usable one at its rpm/tpm limit."""
    return "at_limit" if at_limit(dep) else str(dep.get("health", "ok"))


def health_rank(dep: dict[str, Any]) -> int:
    state = health_state(dep)
    return HEALTH_ORDER.index(state) if state in HEALTH_ORDER else 0


def ms(value: float | None) -> str:
    """Returns `850 ms`, `1.2 s` or `—`."""
    if value is None:
        return "—"
    return f"{value:.0f} ms" if value < 1000 else f"{value / 1000:.1f} s"


def tokens(value: int | None) -> str:
    """Returns `950`, `12.3k` or `4.5M`."""
    if value is None:
        return "—"
    if value < 10_000:
        return str(value)
    if value < 1_000_000:
        return f"{value / 1000:.1f}k"
    return f"{value / 1_000_000:.1f}M"


def dollars(value: float | None) -> str:
    """Returns `$0.0012`, `$1.23`, `<$0.0001` (a real charge is never shown as zero) or `—`
    (unknown price)."""
    if value is None:
        return "—"
    if value == 0:
        return "$0"
    if 0 < value < 0.00005:
        return "<$0.0001"
    return f"${value:.4f}" if abs(value) < 1 else f"${value:,.2f}"


def size(value: int) -> str:
    """Returns a byte count as `812 B`, `3.4 KB`, `12.0 MB`."""
    amount = float(value)
    for unit in ("B", "KB", "MB"):
        if amount < 1024:
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} GB"


def duration(seconds: float) -> str:
    """Returns `42s`, `3m05s` or `2h03m`."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def clean(value: object, limit: int | None = None, keep: str = "") -> str:
    """Returns `value` as a string safe to draw: control and other unprintable characters
    (escape sequences, bidi overrides) escaped as `\\x1b`, `\\u202e`, except those in `keep`
    (the newlines of a text meant to keep its lines). With `limit`, a huge string is cut to a few
    times `limit` characters first, so the work is bounded."""
    raw = str(value)
    if limit is not None:
        raw = raw[: limit * 4 + 1]
    if not raw.isprintable():
        raw = "".join(c if c.isprintable() or c in keep else _escape(c) for c in raw)
    return raw


def plain(value: object, limit: int | None = None, style: str = "") -> Text:
    """Returns `value` as plain text, never markup, for strings a client sent (model, client,
    session, error text), escaped by `clean`, and the whole cut to `limit` cells with `…`."""
    raw = clean(value, limit)
    text = Text(raw, style=style, no_wrap=limit is not None, end="")
    if limit is not None and text.cell_len > limit:
        text.truncate(limit, overflow="ellipsis")
    return text


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def short_id(value: str | None, keep: int = 8) -> Text:
    """Returns the start of an id (a session, a request), enough to tell ids apart: `3f2a9c1d…`;
    `—` for none."""
    if not value:
        return Text("—", style="dim")
    return plain(value, keep + 1)


def clock_time(unix: float) -> str:
    """Returns local `HH:MM:SS`."""
    return time.strftime("%H:%M:%S", time.localtime(unix))


def bar(used: int, limit: int | None, width: int = 4) -> Text:
    """Returns `██░░ 37/600` (used against limit; `width` 0: no bar, coloured numbers), or
    just `12` with no limit."""
    if not limit:
        return Text(f"{tokens(used)}", style="dim" if used == 0 else "")
    ratio = min(1.0, used / limit)
    filled = round(ratio * width)
    style = "red" if ratio >= 0.9 else "yellow" if ratio >= 0.6 else "green"
    if not width:
        return Text(f"{tokens(used)}/{tokens(limit)}", style=style if ratio >= 0.6 else "")
    out = Text("█" * filled, style=style)
    out.append("░" * (width - filled), style="dim")
    out.append(f" {tokens(used)}/{tokens(limit)}")
    return out


def health(state: str, remaining: float | None, *, short: bool = False) -> Text:
    """Returns the health label; a cooldown shows its countdown (`cooling down 12s`), a key at
    its rpm/tpm limit when the window frees it (`at limit · frees in 12s`; `short`, for 80
    columns: `at limit 12s`)."""
    icon, label, style = HEALTH_STYLES.get(state, ("?", state, ""))
    if state == "cooling_down" and remaining is not None:
        label = f"{label} {duration(remaining)}" if remaining > 0 else f"{label} 0s"
    elif state == "at_limit" and remaining is not None:
        label = f"{label} {'' if short else '· frees in '}{duration(remaining)}"
    elif state == "budget_spent" and remaining is not None:
        label = f"{label} · resets in {duration(remaining)}"
    return Text(f"{icon} {label}", style=style)


CANCELLED = 499
"""The status of a request whose client went away before its answer."""


def right(value: str | Text) -> Text:
    """Returns a number's cell, right-aligned so digits line up."""
    text = value if isinstance(value, Text) else Text(value, end="")
    text.justify = "right"
    return text


def status(code: int | None) -> Text:
    """Returns an HTTP status coloured by class; None is an unfinished request, 499 a request
    its client cancelled."""
    if code is None:
        return Text("…", style="dim")
    if code == CANCELLED:
        return Text("cancel", style="dim")  # `cancelled`, in the room of a status column
    style = "green" if code < 300 else "yellow" if code < 500 and code != 429 else "red"
    if code == 429:
        style = "yellow"
    return Text(str(code), style=style)
