"""How the dashboard writes numbers: latencies, tokens, dollars, sizes, durations and bars."""

from __future__ import annotations

import time

from rich.text import Text

HEALTH_STYLES: dict[str, tuple[str, str, str]] = {
    "ok": ("●", "ok", "green"),
    "cooling_down": ("◔", "cooling down", "yellow"),
    "failing": ("✖", "failing", "red"),
    "key_rejected": ("✖", "key rejected", "red"),
    "disabled": ("○", "disabled", "dim"),
    "key_missing": ("○", "disabled: key missing", "dim"),
}


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
    """Returns `$0.0012`, `$1.23` or `—` (unknown price)."""
    if value is None:
        return "—"
    if value == 0:
        return "$0"
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


def plain(value: object, limit: int | None = None, style: str = "") -> Text:
    """Returns `value` as plain text, never markup, for strings a client sent (model, client,
    session, error text): control and other unprintable characters (escape sequences, bidi
    overrides) shown escaped as `\\x1b`, `\\u202e`, and the whole cut to `limit` cells with `…`."""
    raw = str(value)
    if limit is not None:
        raw = raw[: limit * 4 + 1]  # cut a huge string before the per-character work
    if not raw.isprintable():
        raw = "".join(c if c.isprintable() else _escape(c) for c in raw)
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


def bar(used: int, limit: int | None, width: int = 6) -> Text:
    """Returns `███░░░ 12/60` (used against limit), or just `12` with no limit."""
    if not limit:
        return Text(f"{used}", style="dim" if used == 0 else "")
    ratio = min(1.0, used / limit)
    filled = round(ratio * width)
    style = "red" if ratio >= 0.9 else "yellow" if ratio >= 0.6 else "green"
    out = Text("█" * filled, style=style)
    out.append("░" * (width - filled), style="dim")
    out.append(f" {tokens(used)}/{tokens(limit)}")
    return out


def health(state: str, remaining: float | None) -> Text:
    """Returns the health label; a cooldown shows its countdown (`cooling down 12s`)."""
    icon, label, style = HEALTH_STYLES.get(state, ("?", state, ""))
    if state == "cooling_down" and remaining is not None:
        label = f"{label} {duration(remaining)}" if remaining > 0 else f"{label} 0s"
    return Text(f"{icon} {label}", style=style)


def status(code: int | None) -> Text:
    """Returns an HTTP status coloured by class; None is an unfinished request."""
    if code is None:
        return Text("…", style="dim")
    style = "green" if code < 300 else "yellow" if code < 500 and code != 429 else "red"
    if code == 429:
        style = "yellow"
    return Text(str(code), style=style)
