"""The bench's outputs: the markdown table, the target checks, and the JSON record.

Everything shown comes from one `Report`, so bench/results/latest.md and latest.json agree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from load import LoadResult

Target = tuple[str, str, bool | None]


@dataclass
class Row:
    """One scenario: the same load direct to nginx and through the proxy."""

    name: str
    description: str
    direct: LoadResult | None = None
    proxy: LoadResult | None = None

    @property
    def added_p50_ms(self) -> float | None:
        """Proxy p50 minus direct p50, when both ran."""
        if self.direct is None or self.proxy is None:
            return None
        return self.proxy.p50_ms - self.direct.p50_ms


@dataclass
class Report:
    """Everything one bench run measured."""

    meta: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    startup_s: list[float] = field(default_factory=list)
    rss_idle_mib: float | None = None
    rss_after_mib: float | None = None
    size: dict[str, Any] | None = None
    checks: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, Any] | None = None


def _ms(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _cell_rps(res: LoadResult | None) -> str:
    return "-" if res is None else f"{res.rps:,.0f}"


def _cell_lat(res: LoadResult | None) -> str:
    return "-" if res is None else f"{_ms(res.p50_ms)} / {_ms(res.p99_ms)}"


def _cell_cpu(res: LoadResult | None) -> str:
    if res is None or res.cpu_us_per_request is None:
        return "-"
    return f"{res.cpu_us_per_request:,.0f}"


def _cell_err(res: LoadResult | None) -> str:
    if res is None:
        return "-"
    if res.requests == 0:
        return "**no answer**"
    return "0" if res.errors == 0 else f"**{res.errors}** ({res.non_2xx} non-2xx)"


def _busy_note(load: float | None) -> str:
    if load is None or load < 0.5:
        return ""
    return f"; **machine busy before the run (1-min load {load:.2f}): numbers are noisy**"


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def _run_target(label: str, res: LoadResult | None, value: float | None, ok: bool) -> Target:
    if res is None or value is None:
        return (label, "not run", None)
    if not res.clean:
        return (label, f"{value:,.2f}, but the run had errors or no answers", False)
    return (label, f"{value:,.2f}", ok)


def _limit(label: str, value: float | None, limit: float, unit: str) -> Target:
    if value is None:
        return (label, "not run", None)
    return (label, f"{value:,.2f} {unit}".strip(), value <= limit)


def targets(report: Report) -> list[Target]:
    """Each target: what it is, what was measured, and whether it was met (None: not run).

    A load target counts as met only when its proxy run had no errors.

    Returns:
        (target, measured, met) tuples in a fixed order.
    """
    rows = {r.name: r for r in report.rows}

    def proxy(name: str) -> LoadResult | None:
        row = rows.get(name)
        return row.proxy if row else None

    c64, st, slow = proxy("nonstream-c64"), proxy("stream-c16"), proxy("slow50ms-c256")
    c1 = rows.get("nonstream-c1")
    added = c1.added_p50_ms if c1 else None
    ran = [r.proxy for r in report.rows if r.proxy is not None]
    errors = float(sum(r.errors for r in ran)) if ran else None
    start = _median(report.startup_s) if report.startup_s else None
    size = report.size["venv_mib"] if report.size else None
    return [
        _run_target(
            "non-stream c64 ≥ 2,500 req/s",
            c64,
            c64.rps if c64 else None,
            bool(c64 and c64.rps >= 2500),
        ),
        _run_target(
            "non-stream c1 added p50 ≤ 0.5 ms",
            c1.proxy if c1 else None,
            added,
            added is not None and added <= 0.5,
        ),
        _run_target(
            "stream c16 ≥ 1,000 req/s", st, st.rps if st else None, bool(st and st.rps >= 1000)
        ),
        _run_target(
            "50 ms upstream c256 ≥ 2,500 req/s",
            slow,
            slow.rps if slow else None,
            bool(slow and slow.rps >= 2500),
        ),
        _run_target(
            "50 ms upstream c256 p50 ≤ 90 ms",
            slow,
            slow.p50_ms if slow else None,
            bool(slow and slow.p50_ms <= 90),
        ),
        _limit("start to healthy /health ≤ 1 s", start, 1.0, "s"),
        _limit("RSS idle ≤ 60 MiB", report.rss_idle_mib, 60, "MiB"),
        _limit("RSS after load ≤ 120 MiB", report.rss_after_mib, 120, "MiB"),
        _limit("installed venv ≤ 80 MiB", size, 80, "MiB"),
        (
            "no errors through the proxy",
            "not run" if errors is None else f"{errors:.0f}",
            None if errors is None else all(r.clean for r in ran),
        ),
    ]


def markdown(report: Report) -> str:
    """The human-readable result: scenario table, other measurements, target checks.

    Returns:
        Markdown text.
    """
    m = report.meta
    lines = [
        f"# llmproxy-tui bench — {m['date']}",
        "",
        f"proxy: `{m['proxy_cmd']}` on core {m['proxy_core']}; nginx + wrk on core "
        f"{m['load_core']}; {m['duration_s']} s per run after a {m['warmup_s']} s warm-up; "
        f"cpu: {m['cpu']}; git {m['git']}"
        + ("; **stalled /llmproxy/events subscriber attached**" if m.get("stalled") else "")
        + _busy_note(m.get("loadavg_before")),
        "",
        "| scenario | direct req/s | direct p50 / p99 ms | proxy req/s | proxy p50 / p99 ms "
        "| added p50 ms | proxy CPU µs/req | errors direct / proxy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report.rows:
        added = row.added_p50_ms
        lines.append(
            f"| {row.name} | {_cell_rps(row.direct)} | {_cell_lat(row.direct)} "
            f"| {_cell_rps(row.proxy)} | {_cell_lat(row.proxy)} "
            f"| {'-' if added is None else f'{added:+.2f}'} "
            f"| {_cell_cpu(row.proxy)} "
            f"| {_cell_err(row.direct)} / {_cell_err(row.proxy)} |"
        )
    lines += [
        "",
        "Scenarios: " + "; ".join(f"**{r.name}**: {r.description}" for r in report.rows),
        "",
    ]
    if report.startup_s:
        runs = ", ".join(f"{s:.3f}" for s in report.startup_s)
        lines.append(
            f"- start to healthy `/health`: median {_median(report.startup_s):.3f} s (runs: {runs})"
        )
    for label, value in (("idle", report.rss_idle_mib), ("after load", report.rss_after_mib)):
        if value is not None:
            lines.append(f"- RSS {label}: {value:.1f} MiB")
    if report.size:
        s = report.size
        lines.append(
            f"- installed size: {s['venv_mib']:.0f} MiB venv after `pip install .` "
            f"(an empty venv is {s['empty_venv_mib']:.0f} MiB, so the project adds "
            f"{s['venv_mib'] - s['empty_venv_mib']:.0f} MiB)"
        )
        if s.get("largest"):
            lines.append(
                "  - largest in site-packages (MiB): "
                + ", ".join(f"{name} {mib:g}" for name, mib in s["largest"].items())
            )
    for key, value in report.checks.items():
        lines.append(f"- {key}: {value}")
    lines += ["", "| target | measured | met |", "|---|---:|:---:|"]
    for label, shown, ok in targets(report):
        lines.append(f"| {label} | {shown} | {'-' if ok is None else 'yes' if ok else '**NO**'} |")
    if report.profile:
        scenario = report.profile.get("scenario", "?")
        lines += ["", f"py-spy profile of the proxy under {scenario}, share of samples:", ""]
        for title, items in report.profile.items():
            if title == "scenario":
                continue
            lines.append(f"- {title}: " + "; ".join(f"{name} {pct:.0f}%" for name, pct in items))
    return "\n".join(lines) + "\n"


def to_json(report: Report) -> dict[str, Any]:
    """The same run as plain JSON values.

    Returns:
        A dict ready for json.dumps.
    """
    return {
        "meta": report.meta,
        "scenarios": [
            {
                "name": r.name,
                "description": r.description,
                "direct": r.direct.as_dict() if r.direct else None,
                "proxy": r.proxy.as_dict() if r.proxy else None,
                "added_p50_ms": r.added_p50_ms,
            }
            for r in report.rows
        ],
        "startup_s": report.startup_s,
        "startup_median_s": _median(report.startup_s) if report.startup_s else None,
        "rss_idle_mib": report.rss_idle_mib,
        "rss_after_mib": report.rss_after_mib,
        "size": report.size,
        "checks": report.checks,
        "profile": report.profile,
        "targets": [{"target": t, "measured": v, "met": ok} for t, v, ok in targets(report)],
    }


def write(report: Report, out_dir: Path) -> Path:
    """Write latest.md and latest.json into out_dir.

    Returns:
        The markdown file's path.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / "latest.md"
    md.write_text(markdown(report))
    (out_dir / "latest.json").write_text(json.dumps(to_json(report), indent=2) + "\n")
    return md
