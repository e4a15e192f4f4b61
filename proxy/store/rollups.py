"""Usage aggregates: the counters of one slice of requests (`Sums`), nearest-rank percentiles,
and the roll-up of (group, deployment, day, client) slices into the `usage` object of the state
document.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from proxy.events import RequestFinished

OTHER = "(other)"
"""The overflow bucket: every name beyond a NameCap's cap is counted under it."""
MAX_NAMES = 500
"""Distinct group (or client) names kept in the usage totals and the metric labels."""
MAX_NAME_CHARS = 200
"""A longer name (a wildcard group takes any) is cut to this many characters."""


class NameCap:
    """A bounded set of names: the configured ones and the first `cap` others seen are kept,
    any later one becomes OTHER, so a client inventing names cannot grow memory. Thread-safe.
    """

    def __init__(self, keep: Iterable[str] = (), cap: int = MAX_NAMES) -> None:
        # name -> the one str object kept for it: every row of the aggregates shares it, not
        # one copy per request parsed from its body.
        self._keep = {name: name for name in keep}
        self._seen: dict[str, str] = {}
        self._lock = threading.Lock()
        self.cap = cap

    def __call__(self, name: str) -> str:
        """Returns: `name` (cut to MAX_NAME_CHARS) while there is room for it, else OTHER."""
        name = name[:MAX_NAME_CHARS]
        kept = self._keep.get(name) or self._seen.get(name)
        if kept is not None:
            return kept
        with self._lock:
            if len(self._seen) >= self.cap:
                return OTHER
            return self._seen.setdefault(name, name)


@dataclass
class Sums:
    """Counters of one slice of requests (a ROW of docs/internals.md without percentiles)."""

    requests: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    cost_unknown: int = 0
    errors: int = 0
    cache_hits: int = 0

    def add(self, other: Sums) -> None:
        self.requests += other.requests
        self.tokens_in += other.tokens_in
        self.tokens_out += other.tokens_out
        self.cost += other.cost
        self.cost_unknown += other.cost_unknown
        self.errors += other.errors
        self.cache_hits += other.cache_hits

    @classmethod
    def of(cls, ev: RequestFinished) -> Sums:
        ok = ev.status < 400
        return cls(1, ev.prompt_tokens, ev.completion_tokens, ev.cost or 0.0,
                   int(ok and ev.cost is None), int(not ok), int(ev.cache == "hit"))  # fmt: skip


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile. Returns: None for an empty list."""
    if not sorted_values:
        return None
    rank = max(1, -(-round(q * 100) * len(sorted_values) // 100))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def _row(sums: Sums, latencies: list[float]) -> dict[str, Any]:
    latencies.sort()
    return {**sums.__dict__, "p50_ms": percentile(latencies, 0.50),
            "p95_ms": percentile(latencies, 0.95)}  # fmt: skip


SliceKey = tuple[str, str | None, str, str]  # (group, deployment, UTC day, client)
LatencySample = tuple[str, str | None, str, str, float]


def rollup(
    sums: Iterable[tuple[SliceKey, Sums]],
    latencies: list[LatencySample],
    today: str,
) -> dict[str, Any]:
    """Rolls slices up into the `usage` object of docs/internals.md (without spend_series).

    Every request is in exactly one row of each `by_*` list, so each list adds up to `totals`
    (the `*_today` lists to `today`); `by_deployment*` leave out requests no deployment
    served.
    """
    scopes: dict[tuple[Any, ...], Sums] = {}
    lat: dict[tuple[Any, ...], list[float]] = {}

    def scope_keys(grp: str, dep: str | None, day: str, client: str) -> list[tuple[Any, ...]]:
        keys: list[tuple[Any, ...]] = [("totals",), ("group", grp), ("client", client)]
        if dep is not None:
            keys.append(("deployment", dep, grp))
        if day == today:
            keys += [("today",), ("group_today", grp), ("client_today", client)]
            if dep is not None:
                keys.append(("deployment_today", dep, grp))
        return keys

    for (grp, dep, day, client), part in sums:
        for key in scope_keys(grp, dep, day, client):
            scopes.setdefault(key, Sums()).add(part)
    # Samples are grouped by slice first and each slice's run sorted once: a scope's list is
    # then a concatenation of sorted runs, which sort() merges instead of sorting anew.
    by_slice: dict[tuple[Any, ...], list[float]] = {}
    for sample in latencies:
        slice_key = sample[:4]
        runs = by_slice.get(slice_key)
        if runs is None:
            by_slice[slice_key] = [sample[4]]
        else:
            runs.append(sample[4])
    for (grp, dep, day, client), values in by_slice.items():
        values.sort()
        for key in scope_keys(grp, dep, day, client):
            lat.setdefault(key, []).extend(values)

    def row(key: tuple[Any, ...], **extra: Any) -> dict[str, Any]:
        return {**extra, **_row(scopes.get(key, Sums()), lat.get(key, []))}

    def listed(kind: str) -> list[tuple[Any, ...]]:
        return sorted(k for k in scopes if k[0] == kind)

    return {
        "totals": row(("totals",)),
        "today": row(("today",)),
        "by_group": [row(k, group=k[1]) for k in listed("group")],
        "by_group_today": [row(k, group=k[1]) for k in listed("group_today")],
        "by_deployment": [row(k, deployment=k[1], group=k[2]) for k in listed("deployment")],
        "by_deployment_today": [
            row(k, deployment=k[1], group=k[2]) for k in listed("deployment_today")
        ],
        "by_client": [row(k, client=k[1]) for k in listed("client")],
        "by_client_today": [row(k, client=k[1]) for k in listed("client_today")],
    }
