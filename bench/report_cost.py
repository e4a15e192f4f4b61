"""What reporting a finished request costs: the event, the bus, the usage store, the metrics.

    python bench/report_cost.py [--requests 50000]

Feeds the same RequestFinished events through a real Runtime (SQLite usage store in a temp
dir, one never-drained bus subscriber as a stalled dashboard) and prints the CPU µs per
request of each part, the SQLite writer thread included. Compare with the proxy's CPU per
request from bench/run.py to get the share.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from proxy.config.loader import build_config
from proxy.events import RequestFinished
from proxy.runtime import Runtime


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _event(i: int) -> RequestFinished:
    attempt = {"deployment": "g", "group": "g", "status": 200, "reason": "ok", "latency_ms": 11.0}
    return RequestFinished(
        id=f"r{i}", time=time.time(), group="g", deployment="g", provider="openai", status=200,
        latency_ms=12.0, ttft_ms=None, prompt_tokens=20, completion_tokens=30, cost=0.0001,
        cache="miss", attempts=1, fallback=None, stream=False, attempt_log=(attempt,),
        preview="hello",
    )  # fmt: skip


def _per_request(n: int, work: Callable[[], None]) -> float:
    start = _cpu()
    work()
    return (_cpu() - start) / n * 1e6


def main(n: int) -> None:
    model_list = [{"model_name": "g", "litellm_params": {"model": "mock/x"}}]
    config = build_config({"model_list": model_list})
    with tempfile.TemporaryDirectory() as tmp:
        runtime = Runtime(config, usage_db=Path(tmp) / "usage.db")
        runtime.ledger.start()
        runtime.bus.subscribe()  # a stalled dashboard: its queue fills and drops
        events = [_event(i) for i in range(n)]

        def build() -> None:
            for i in range(n):
                _event(i)

        def bus() -> None:
            for e in events:
                runtime.bus.publish(e)

        def usage() -> None:
            for e in events:
                runtime.ledger.record(e)
            runtime.ledger.flush(120)

        def metrics() -> None:
            for e in events:
                runtime.metrics.observe(e)

        def whole() -> None:
            for e in events:
                runtime.activity.finish(e)
            runtime.ledger.flush(120)

        parts = [("building the event", build), ("event bus publish", bus),
                 ("usage store (+ writer)", usage), ("metrics", metrics)]  # fmt: skip
        for name, work in parts:
            print(f"{name:24s}{_per_request(n, work):6.1f} µs")
        events = [_event(i) for i in range(n)]
        print(f"{'Runtime.finish, all':24s}{_per_request(n, whole):6.1f} µs  "
              f"(per request, {n} requests)")  # fmt: skip
        runtime.ledger.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50_000)
    main(parser.parse_args().requests)
