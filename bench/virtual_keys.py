"""What a virtual key costs on the hot path: the proxy's CPU per request with the master key
and with a virtual key that has a budget and an rpm limit, through the whole front door.

    python bench/virtual_keys.py [--requests 20000] [--concurrency 64] [--rounds 3]

The proxy is the real one (`create_app` around a `Runtime`, its usage ledger writing SQLite
in its thread, the virtual keys re-read from the same file every second) called straight
through ASGI, one process pinned to one core, on a mock deployment, so no socket or upstream
I/O dilutes the figure: a virtual key's share of a whole request over the network is smaller.
Each round drives the same chat completion with the master key, then with the virtual key
(the lookup by SHA-256, the 401/403 checks, the budget and rpm checks, the reservation of the
estimated cost and its settlement), alternating so that other load on the machine falls on
both alike. CPU per request is from getrusage (all threads of the process); the figures are
the best round of each and the median of the per-round differences, printed in % of a
master-key request (target: under 5%).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from proxy.config.loader import build_config
from proxy.http.app import create_app
from proxy.http.server import tune_gc
from proxy.runtime import Runtime

MASTER_KEY = "sk-bench-master-key-0123456789"
BODY = orjson.dumps(
    {"model": "g", "messages": [{"role": "user", "content": "Say hello in five words."}]}
)
PRICES = {"input_cost_per_token": 0.0000025, "output_cost_per_token": 0.00001}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def caller(app: Any, key: str) -> Callable[[], Awaitable[None]]:
    """Returns: one POST /v1/chat/completions through the ASGI app with `key`."""
    headers = [
        (b"host", b"127.0.0.1"),
        (b"authorization", f"Bearer {key}".encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(BODY)).encode()),
        (b"user-agent", b"bench"),
    ]

    async def call() -> None:
        scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions",
                 "headers": headers, "query_string": b"", "client": ("127.0.0.1", 1)}  # fmt: skip
        sent = False
        status = 0

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.sleep(3600)  # no disconnect while the answer is written
            sent = True
            return {"type": "http.request", "body": BODY, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(scope, receive, send)
        if status != 200:
            raise RuntimeError(f"status {status}")

    return call


async def drive(call: Callable[[], Awaitable[None]], n: int, concurrency: int) -> float:
    """Returns: µs of CPU per request over `n` calls at `concurrency`."""
    sem = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with sem:
            await call()

    await asyncio.gather(*(one() for _ in range(min(n, 2000))))  # warm-up
    cpu0 = _cpu()
    await asyncio.gather(*(one() for _ in range(n)))
    return (_cpu() - cpu0) / n * 1e6


async def main(n: int, concurrency: int, rounds: int, db: Path) -> None:
    entry = {
        "model_name": "g",
        "litellm_params": {"model": "mock/bench", "mock_response": "hello"},
        "model_info": PRICES,
    }
    config = build_config({"model_list": [entry], "general_settings": {"master_key": MASTER_KEY}})
    runtime = Runtime(config, usage_db=db)
    app = create_app(runtime)
    await runtime.start()
    assert runtime.key_admin is not None
    made = await runtime.key_admin.generate(
        {"key_alias": "bench", "max_budget": 1e9, "budget_duration": "30d", "rpm_limit": 10**9}
    )
    master, virtual = caller(app, MASTER_KEY), caller(app, made["key"])
    tune_gc()  # as the server does once it starts serving
    runs: dict[str, list[float]] = {"master": [], "virtual": []}
    try:
        for _ in range(rounds):
            for name, call in (("master", master), ("virtual", virtual)):
                cpu = await drive(call, n, concurrency)
                runs[name].append(cpu)
                print(f"{name:8s} {cpu:6.1f} µs CPU/request")
    finally:
        await runtime.close()
    best_master, best_virtual = min(runs["master"]), min(runs["virtual"])
    delta = best_virtual - best_master
    paired = statistics.median(v - m for m, v in zip(runs["master"], runs["virtual"], strict=True))
    print(
        f"\nmaster key  {best_master:6.1f} µs CPU per request\n"
        f"virtual key {best_virtual:6.1f} µs CPU per request (budget + rpm limit)\n"
        f"difference  {delta:+6.1f} µs = {100 * delta / best_master:+.1f}% of a request (best of "
        f"each); median of the rounds' differences {paired:+.1f} µs = "
        f"{100 * paired / best_master:+.1f}%\n"
        f"({rounds} rounds, {n} requests each at concurrency {concurrency}, through ASGI "
        "without sockets)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    import uvloop

    with tempfile.TemporaryDirectory() as tmp:
        os.sched_setaffinity(0, {0})
        started = time.monotonic()
        uvloop.run(main(args.requests, args.concurrency, args.rounds, Path(tmp) / "usage.db"))
        print(f"({time.monotonic() - started:.0f} s)")
