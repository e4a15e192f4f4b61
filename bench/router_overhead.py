"""What the router costs: the same calls with and without it, in one process.

    python bench/router_overhead.py [--requests 20000] [--concurrency 64]

Each call goes either (a) through `proxy.upstream.complete` straight to one deployment - the
plain baseline: no choice, no health bookkeeping, no retry loop - or (b) through
`Router.complete` over a group of two deployments (strategy choice, in-flight, latency and
rpm bookkeeping, the retry and fallback loop). Two measurements:
- `mock`: deployments on the built-in mock provider, so no I/O: the router's own CPU cost per
  request, steady from run to run;
- `nginx`: a real zero-latency upstream (bench/upstream.py), so the share that cost is of a
  whole upstream call (noisier: it includes the network stack).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.upstream import Nginx, ensure_tools
from proxy.config.loader import build_config
from proxy.http.server import tune_gc
from proxy.providers import registry
from proxy.routing.attempt import complete
from proxy.routing.keys import KeyPool
from proxy.routing.router import Router
from proxy.routing.transport import AiohttpClient
from proxy.schema import ChatRequest

BODY = {"model": "g", "messages": [{"role": "user", "content": "Say hello in five words."}]}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _drive(
    call: Callable[[], Awaitable[None]], n: int, concurrency: int
) -> tuple[float, float]:
    sem = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with sem:
            await call()

    await asyncio.gather(*(one() for _ in range(min(n, 2000))))  # warm-up
    cpu0, t0 = _cpu(), time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    wall, cpu = time.perf_counter() - t0, _cpu() - cpu0
    return n / wall, cpu / n * 1e6


async def main(n: int, concurrency: int, base: str | None) -> None:
    """Measures plain vs routed calls on mock deployments (base None) or on nginx."""
    if base is None:
        params = {"model": "mock/bench", "mock_response": "hello"}
    else:
        params = {"model": "openai/bench-model", "api_base": base,
                  "api_key": "sk-bench-upstream-key-000000"}  # fmt: skip
    entry = {"model_name": "g", "litellm_params": params}
    config = build_config({"model_list": [entry, entry]})
    client = AiohttpClient()
    providers = registry.build()
    provider = providers["openai" if base is not None else "mock"]
    dep = config.deployments[0]
    pool = KeyPool(config.deployments, config.router)
    router = Router(config, pool, client, providers)

    def request() -> ChatRequest:
        return ChatRequest(model="g", body=dict(BODY))

    async def plain() -> None:
        await complete(client, provider, request(), dep, 30.0)

    async def routed() -> None:
        req = request()
        await router.complete(req, router.trace(req))

    tune_gc()  # as the server does once it starts serving
    runs: dict[str, list[tuple[float, float]]] = {"plain": [], "router": []}
    for name, call in (("plain", plain), ("router", routed)) * 2:
        rps, cpu = await _drive(call, n, concurrency)
        runs[name].append((rps, cpu))
        print(f"{name:7s} {rps:8.0f} req/s  {cpu:6.1f} µs CPU/req")
    await client.aclose()
    plain_rps, plain_cpu = max(r for r, _ in runs["plain"]), min(c for _, c in runs["plain"])
    router_rps, router_cpu = max(r for r, _ in runs["router"]), min(c for _, c in runs["router"])
    where = "nginx" if base else "mock"
    print(
        f"[{where}] router: +{router_cpu - plain_cpu:.1f} µs CPU per request, "
        f"{100 * (1 - router_rps / plain_rps):.1f}% of throughput (best of two runs each, "
        f"{n} requests at concurrency {concurrency})\n"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    import uvloop

    with tempfile.TemporaryDirectory() as tmp:
        ensure_tools()
        nginx = Nginx(Path(tmp), core=1)
        nginx.start()
        try:
            os.sched_setaffinity(0, {0})  # this process on core 0, nginx on core 1
            uvloop.run(main(args.requests, args.concurrency, None))
            uvloop.run(main(args.requests, args.concurrency, nginx.base("fast")))
        finally:
            nginx.stop()
