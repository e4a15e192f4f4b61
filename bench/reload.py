"""Config reload under load: wrk drives 64 connections at the `fast` group (nginx upstream)
while the config is edited and reloaded ten times in a row (SIGHUP and POST /llmproxy/reload in
turn). Each reload adds a group and changes the loaded group's deployment (so its requests
move to a new router and a fresh deployment state mid-load). Prints the reload time (signal or
POST to the newly added group answering 200) and the requests served and failed during them.

    python bench/reload.py [--reloads 10] [--connections 64] [--gap 1.0]
"""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import payloads
from load import LoadResult, run_wrk
from proxy_proc import HOST, Proxy
from upstream import LOCATIONS, Nginx, ensure_tools

PROXY_CORE, LOAD_CORE = 0, 1
POLL = 0.002
"""Seconds between two looks for the new group while a reload is under way."""


def write_config(path: Path, nginx: Nginx, round_: int) -> None:
    """The bench config of reload `round_`: the groups fast, stream, slow (fast's timeout
    changed each round, so its deployment is a changed one) and one group `added-<round_>`."""
    lines = ["model_list:"]
    for group in (*LOCATIONS, f"added-{round_}"):
        location = group if group in LOCATIONS else "fast"
        lines += [
            f"  - model_name: {group}",
            "    litellm_params:",
            f"      model: openai/{payloads.UPSTREAM_MODEL}",
            f"      api_base: {nginx.base(location)}",
            f"      api_key: {payloads.UPSTREAM_KEY}",
        ]
        if group == "fast":
            lines.append(f"      timeout: {600 + round_}")
    lines += ["general_settings:", "  master_key: os.environ/LITELLM_MASTER_KEY", ""]
    path.write_text("\n".join(lines))


def post(port: int, path: str, body: str) -> int:
    """POSTs `body` to the proxy with the master key; returns the status (0: no answer)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    headers = {
        "authorization": f"Bearer {payloads.MASTER_KEY}",
        "content-type": "application/json",
    }
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    except OSError:
        return 0
    finally:
        conn.close()


def reload_once(proxy: Proxy, nginx: Nginx, round_: int, how: str) -> float:
    """Edits the config, asks for the reload, waits for the new group to answer.

    Returns:
        Milliseconds from the signal (or the POST) to the first 200 of the new group.
    Raises:
        RuntimeError: the new group did not answer within 10 s.
    """
    assert proxy.proc is not None
    write_config(proxy.config, nginx, round_)
    body = payloads.request_body(f"added-{round_}", stream=False)
    began = time.perf_counter()
    if how == "SIGHUP":
        proxy.proc.send_signal(signal.SIGHUP)
    else:
        status = post(proxy.port, "/llmproxy/reload", "")
        if status != 200:
            raise RuntimeError(f"POST /llmproxy/reload answered {status}")
    while time.perf_counter() - began < 10:
        if post(proxy.port, "/v1/chat/completions", body) == 200:
            return (time.perf_counter() - began) * 1000
        time.sleep(POLL)
    raise RuntimeError(f"added-{round_} never answered after the reload ({how})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reloads", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--gap", type=float, default=1.0, help="seconds between two reloads")
    parser.add_argument("--warmup", type=float, default=2.0, help="load seconds before reloads")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    ensure_tools()
    tmp = Path(tempfile.mkdtemp(prefix="bench-reload-"))
    nginx = Nginx(tmp, core=LOAD_CORE)
    nginx.start()
    proxy = Proxy(tmp, nginx, core=PROXY_CORE, proxy_cmd=None, extra_args="")
    try:
        write_config(proxy.config, nginx, 0)
        proxy.start()
        body_file = tmp / "fast.json"
        body_file.write_text(payloads.request_body("fast", stream=False))
        seconds = args.warmup + args.reloads * (args.gap + 0.5) + 2
        results: list[LoadResult] = []
        load = threading.Thread(
            target=lambda: results.append(
                run_wrk(
                    proxy.url,
                    body_file=body_file,
                    auth=payloads.MASTER_KEY,
                    connections=args.connections,
                    seconds=seconds,
                    core=LOAD_CORE,
                    save=tmp / "wrk.txt",
                )
            )
        )
        load.start()
        time.sleep(args.warmup)
        times: list[tuple[str, float]] = []
        for round_ in range(1, args.reloads + 1):
            how = "SIGHUP" if round_ % 2 else "POST"
            times.append((how, reload_once(proxy, nginx, round_, how)))
            time.sleep(args.gap)
        load.join()
        wrk = results[0]
        log = proxy.log_tail(200_000)
    finally:
        proxy.stop()
        nginx.stop()
    report(times, wrk, log, args)
    return 0 if wrk.clean else 1


def report(
    times: list[tuple[str, float]], wrk: LoadResult, log: str, args: argparse.Namespace
) -> None:
    """Prints (and with --json writes) the reload times and what wrk saw."""
    ms = [t for _, t in times]
    reloaded = log.count("config reloaded (")
    failed_reloads = log.count("config reload (")
    doc = {
        "reloads": len(times),
        "reload_ms": [{"how": how, "ms": round(t, 1)} for how, t in times],
        "reload_ms_median": round(statistics.median(ms), 1),
        "reload_ms_max": round(max(ms), 1),
        "reloads_logged_ok": reloaded,
        "reloads_logged_failed": failed_reloads,
        "connections": args.connections,
        "load": wrk.as_dict(),
    }
    print(f"{len(times)} reloads under wrk -c{args.connections} on the `fast` group")
    for i, (how, t) in enumerate(times, 1):
        print(f"  reload {i:2d} ({how:6s}): new group serving after {t:7.1f} ms")
    print(f"  median {doc['reload_ms_median']} ms, max {doc['reload_ms_max']} ms")
    print(f"  the proxy logged {reloaded} reloads ok, {failed_reloads} failed")
    print(
        f"  requests served {wrk.requests - wrk.errors} of {wrk.requests}: "
        f"{wrk.non_2xx} non-2xx, {wrk.socket_errors} socket errors "
        f"({wrk.rps:.0f} req/s, p50 {wrk.p50_ms:.2f} ms, p99 {wrk.p99_ms:.2f} ms)"
    )
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2))


if __name__ == "__main__":
    sys.exit(main())
