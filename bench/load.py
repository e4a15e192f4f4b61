"""Load generation: one wrk run (pinned to a core) and the parse of what wrk prints.

wrk POSTs the same JSON body with the same headers on every request (bench/wrk/post.lua);
the result carries req/s, p50/p99 and every kind of failure wrk counts.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

LUA = Path(__file__).parent / "wrk" / "post.lua"
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


@dataclass(frozen=True)
class LoadResult:
    """What one measured wrk run saw."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int
    cpu_us_per_request: float | None = None

    @property
    def errors(self) -> int:
        """Non-2xx responses plus socket errors (connect, read, write, timeout)."""
        return self.non_2xx + self.socket_errors

    @property
    def clean(self) -> bool:
        """True when requests completed and none failed."""
        return self.requests > 0 and self.errors == 0

    def as_dict(self) -> dict[str, float | int]:
        """The result as plain JSON-able values.

        Returns:
            A dict of the fields plus `errors`.
        """
        return {**asdict(self), "errors": self.errors}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not match:
        raise ValueError(f"unreadable wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(out: str) -> LoadResult:
    """Read wrk's `--latency` report.

    Returns:
        The parsed result.

    Raises:
        ValueError: the report lacks Requests/sec or the 50%/99% lines.
    """
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    total = re.search(r"(\d+) requests in", out)
    if not (rps and p50 and p99 and total):
        raise ValueError(f"unreadable wrk output:\n{out}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return LoadResult(
        rps=float(rps.group(1)),
        p50_ms=_ms(p50.group(1)),
        p99_ms=_ms(p99.group(1)),
        requests=int(total.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(g) for g in sock.groups()) if sock else 0,
    )


def run_wrk(
    url: str,
    *,
    body_file: Path,
    auth: str,
    connections: int,
    seconds: float,
    core: int,
    save: Path | None = None,
) -> LoadResult:
    """Drive url with wrk (one thread, `connections` keep-alive connections) on one core.

    wrk's own report is written to `save` when given.

    Returns:
        The parsed result.

    Raises:
        RuntimeError: wrk failed or printed nothing readable.
    """
    duration = max(1, round(seconds))
    argv = [
        "taskset",
        "-c",
        str(core),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(LUA),
        url,
    ]
    env = {**os.environ, "BENCH_BODY_FILE": str(body_file), "BENCH_AUTH": auth}
    done = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=duration + 30, check=False
    )
    if save is not None:
        save.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"wrk exited {done.returncode}: {done.stderr or done.stdout}")
    try:
        return parse_wrk(done.stdout)
    except ValueError as exc:
        raise RuntimeError(str(exc)) from exc
