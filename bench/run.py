"""The llmproxy-tui benchmark: `python bench/run.py` (see bench/README.md).

Starts nginx as a zero-latency upstream and the proxy on its own core, drives both with wrk
from the other core, and writes a markdown table and JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import http.client
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

import httpx
import payloads
import procs
import report
import size
import spy_profile
from load import LoadResult, run_wrk
from proxy_proc import Proxy, StalledSubscriber
from upstream import Nginx, ensure_tools

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PROXY_CORE, LOAD_CORE = 0, 1


@dataclass(frozen=True)
class Scenario:
    """One load shape, run direct to nginx and through the proxy."""

    name: str
    group: str
    connections: int
    stream: bool
    description: str


SCENARIOS = (
    Scenario(
        "nonstream-c1",
        "fast",
        1,
        False,
        "non-streaming chat completion, 1 connection (latency added by the proxy)",
    ),
    Scenario(
        "nonstream-c64",
        "fast",
        64,
        False,
        "non-streaming chat completion, 64 connections (throughput)",
    ),
    Scenario(
        "stream-c16",
        "stream",
        16,
        True,
        f"streaming, {payloads.STREAM_CHUNKS} chunks + [DONE] per answer, 16 connections",
    ),
    Scenario(
        "slow50ms-c256",
        "slow",
        256,
        False,
        "upstream answers after 50 ms, 256 connections (many requests in flight)",
    ),
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see bench/README.md).

    Returns:
        The parsed options.
    """
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    p.add_argument(
        "--quick",
        action="store_true",
        help="3 s runs, 1 s warm-up, one start sample, no size check",
    )
    p.add_argument(
        "--proxy-cmd",
        help="command to benchmark instead of llmproxy-tui "
        "(may use {config} {host} {port} {usage_db})",
    )
    p.add_argument("--extra-proxy-args", default="", help="appended to the proxy command")
    p.add_argument(
        "--only", help="comma-separated scenarios: " + ", ".join(s.name for s in SCENARIOS)
    )
    p.add_argument("--skip-size", action="store_true", help="skip the installed-size check")
    p.add_argument("--direct-only", action="store_true", help="only nginx, no proxy")
    p.add_argument(
        "--stalled-subscriber",
        action="store_true",
        help="keep a never-reading /llmproxy/events client open during the load",
    )
    p.add_argument(
        "--profile",
        nargs="?",
        const="nonstream-c64",
        metavar="SCENARIO",
        help="after the runs, py-spy the proxy under one more run of SCENARIO "
        "(default nonstream-c64)",
    )
    p.add_argument(
        "--virtual-key",
        action="store_true",
        help="send the proxy runs with a virtual key (a budget and an rpm limit it never "
        "reaches, made through /key/generate) instead of the master key",
    )
    p.add_argument("--starts", type=int, default=3, help="start-up samples (median shown)")
    p.add_argument("--out", type=Path, default=BENCH / "results", help="results directory")
    args = p.parse_args(argv)
    args.warmup = 2
    if args.quick:
        args.duration, args.warmup, args.starts, args.skip_size = 3, 1, 1, True
    names = {s.name for s in SCENARIOS}
    if args.profile and args.profile not in names:
        p.error(f"unknown scenario for --profile: {args.profile}")
    if args.only:
        unknown = set(args.only.split(",")) - names
        if unknown:
            p.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    return args


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _post(url: str, body: str, auth: str) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        conn.request(
            "POST",
            parts.path,
            body.encode(),
            {"Content-Type": "application/json", "Authorization": f"Bearer {auth}"},
        )
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def check_answer(url: str, body: str, auth: str, stream: bool) -> str:
    """POST once and check the answer is a real chat completion (or a full SSE stream).

    Returns:
        A one-line description (status, chunks, cache header).

    Raises:
        RuntimeError: the answer is not a 200 of the right shape.
    """
    status, headers, data = _post(url, body, auth)
    if status != 200:
        raise RuntimeError(f"POST {url} answered {status}: {data[:500]!r}")
    if stream:
        text = data.decode()
        chunks = text.count("data: {")
        if not text.rstrip().endswith("data: [DONE]") or chunks < 2:
            raise RuntimeError(f"POST {url}: not a complete SSE stream: {text[-300:]!r}")
        shape = f"{chunks} chunks + [DONE]"
    else:
        answer = json.loads(data)
        if not answer["choices"][0]["message"]["content"] or "usage" not in answer:
            raise RuntimeError(f"POST {url}: answer lacks content or usage: {answer}")
        shape = "chat.completion with usage"
    cache = headers.get("x-llmproxy-cache")
    return f"200, {shape}" + (f", x-llmproxy-cache: {cache}" if cache else "")


def measure(
    url: str,
    bodies: Path,
    auth: str,
    sc: Scenario,
    args: argparse.Namespace,
    label: str,
    cpu_pid: int | None = None,
) -> LoadResult:
    """A warm-up run, then the measured wrk run; `label` is `direct` or `proxy`.

    With cpu_pid, the CPU time that process used per answered request is recorded too
    (from /proc, so it depends little on other load on the machine).

    Returns:
        The measured run's result.
    """
    cpu_before = 0.0
    for seconds in (args.warmup, args.duration):
        if cpu_pid is not None:
            cpu_before = procs.tree_cpu_seconds(cpu_pid)
        res = run_wrk(
            url,
            body_file=bodies / f"{sc.name}-{label}.json",
            auth=auth,
            connections=sc.connections,
            seconds=seconds,
            core=LOAD_CORE,
            save=args.out / f"wrk-{sc.name}-{label}.txt",
        )
    if cpu_pid is not None and res.requests:
        used = procs.tree_cpu_seconds(cpu_pid) - cpu_before
        res = dataclasses.replace(res, cpu_us_per_request=used / res.requests * 1e6)
    cpu = f", {res.cpu_us_per_request:.0f} µs CPU/request" if res.cpu_us_per_request else ""
    _log(
        f"{sc.name} {label}: {res.rps:,.0f} req/s, p50 {res.p50_ms:.2f} ms, "
        f"p99 {res.p99_ms:.2f} ms, errors {res.errors}{cpu}"
    )
    return res


def _meta(args: argparse.Namespace) -> dict[str, object]:
    git = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "git": git or "(no commit)",
        "cpu": cpu,
        "proxy_cmd": args.proxy_cmd or "llmproxy-tui",
        "extra_proxy_args": args.extra_proxy_args,
        "proxy_core": PROXY_CORE,
        "load_core": LOAD_CORE,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "stalled": args.stalled_subscriber,
        "loadavg_before": float(Path("/proc/loadavg").read_text().split()[0]),
    }


def _virtual_key(url: str) -> str:
    """Returns a new virtual key with limits the load never reaches (so every check and the
    budget reservation run on each request)."""
    body = {"key_alias": "bench", "max_budget": 1_000_000, "rpm_limit": 10_000_000}
    headers = {"Authorization": f"Bearer {payloads.MASTER_KEY}"}
    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}"
    answer = httpx.post(f"{base}/key/generate", json=body, headers=headers, timeout=10)
    answer.raise_for_status()
    return str(answer.json()["key"])


def run_profile(proxy: Proxy, bodies: Path, args: argparse.Namespace, rep: report.Report) -> None:
    """One more run of args.profile with py-spy recording the proxy (numbers not reported)."""
    assert proxy.proc is not None
    sc = next(s for s in SCENARIOS if s.name == args.profile)
    raw = args.out / f"profile-{sc.name}.txt"
    spy = spy_profile.start_record(proxy.proc.pid, args.duration, raw, LOAD_CORE)
    try:
        run_wrk(
            proxy.url,
            body_file=bodies / f"{sc.name}-proxy.json",
            auth=payloads.MASTER_KEY,
            connections=sc.connections,
            seconds=args.duration + 1,
            core=LOAD_CORE,
        )
        _, err = spy.communicate(timeout=args.duration + 60)
    finally:
        if spy.poll() is None:
            spy.kill()
            spy.wait()
    if not raw.exists():
        _log(f"py-spy wrote nothing: {err.decode(errors='replace')[-500:]}")
        return
    rep.profile = {"scenario": sc.name, **spy_profile.summarise(raw)}
    _log(f"py-spy stacks in {raw}")


def _keep_log(src: Path, dest: Path) -> None:
    if src.exists():
        shutil.copyfile(src, dest)


def _write_bodies(tmp: Path) -> Path:
    """One request body per scenario and target (direct: upstream model; proxy: the group)."""
    bodies = tmp / "bodies"
    bodies.mkdir()
    for sc in SCENARIOS:
        direct = payloads.request_body(payloads.UPSTREAM_MODEL, stream=sc.stream)
        (bodies / f"{sc.name}-direct.json").write_text(direct)
        (bodies / f"{sc.name}-proxy.json").write_text(
            payloads.request_body(sc.group, stream=sc.stream)
        )
    return bodies


def _start_proxy(
    args: argparse.Namespace, tmp: Path, nginx: Nginx, stack: ExitStack, rep: report.Report
) -> Proxy:
    """Start the proxy args.starts times (timing each), leave the last one running."""
    proxy = Proxy(
        tmp, nginx, core=PROXY_CORE, proxy_cmd=args.proxy_cmd, extra_args=args.extra_proxy_args
    )
    args.out.mkdir(parents=True, exist_ok=True)
    stack.callback(_keep_log, proxy.log, args.out / "proxy.log")  # runs after proxy.stop
    stack.callback(proxy.stop)
    for i in range(args.starts):
        if i:
            proxy.stop()
        rep.startup_s.append(proxy.start())
        _log(f"proxy healthy after {rep.startup_s[-1]:.3f} s (port {proxy.port})")
    time.sleep(2)
    rep.rss_idle_mib = proxy.rss_mib()
    return proxy


def bench(args: argparse.Namespace, tmp: Path, stack: ExitStack, rep: report.Report) -> None:
    """Run every selected measurement into rep (processes are stopped by `stack`)."""
    nginx = Nginx(tmp, core=LOAD_CORE)
    stack.callback(nginx.stop)
    nginx.start()
    _log(f"nginx on 127.0.0.1:{nginx.port} (core {LOAD_CORE})")
    bodies = _write_bodies(tmp)
    for sc in SCENARIOS:
        body = (bodies / f"{sc.name}-direct.json").read_text()
        check_answer(
            f"{nginx.base(sc.group)}/chat/completions", body, payloads.UPSTREAM_KEY, sc.stream
        )
    proxy = None if args.direct_only else _start_proxy(args, tmp, nginx, stack, rep)
    sub: StalledSubscriber | None = None
    client_key = payloads.MASTER_KEY
    if proxy is not None:
        if args.virtual_key:
            client_key = _virtual_key(proxy.url)
            rep.checks["client key"] = "a virtual key (budget $1,000,000, rpm_limit 10,000,000)"
        for sc in SCENARIOS:
            body = (bodies / f"{sc.name}-proxy.json").read_text()
            rep.checks[f"proxy answer ({sc.group})"] = check_answer(
                proxy.url, body, client_key, sc.stream
            )
        if args.stalled_subscriber:
            sub = StalledSubscriber(proxy.port)
            stack.callback(sub.close)
            sub.open()
            rep.checks["stalled subscriber"] = "connected to /llmproxy/events, never reading"
    for sc in SCENARIOS:
        if args.only and sc.name not in args.only.split(","):
            continue
        row = report.Row(sc.name, sc.description)
        rep.rows.append(row)
        direct_url = f"{nginx.base(sc.group)}/chat/completions"
        row.direct = measure(direct_url, bodies, payloads.UPSTREAM_KEY, sc, args, "direct")
        if proxy is not None:
            pid = proxy.proc.pid if proxy.proc else None
            row.proxy = measure(proxy.url, bodies, client_key, sc, args, "proxy", pid)
    if proxy is not None:
        rep.rss_after_mib = proxy.rss_mib()
        if args.profile:
            run_profile(proxy, bodies, args, rep)
        if sub is not None:
            sub.close()
        proxy.stop()
        rep.checks["proxy exit codes on SIGTERM"] = ", ".join(map(str, proxy.exit_codes))


def main(argv: list[str] | None = None) -> int:
    """Run the bench, print the table, write bench/results/latest.md and latest.json.

    Returns:
        The process exit code (0 ok, 1 a step failed, 130 interrupted).
    """
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, _raise_interrupt)
    rep = report.Report(meta=_meta(args))
    code = 0
    try:
        ensure_tools()
        with tempfile.TemporaryDirectory(prefix="llmproxy-bench-") as tmp, ExitStack() as stack:
            bench(args, Path(tmp), stack, rep)
        if not args.skip_size:
            _log("measuring the installed size (fresh venv, pip install .) ...")
            rep.size = size.installed_size(REPO)
    except KeyboardInterrupt:
        _log("interrupted; everything started was stopped")
        return 130
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        _log(f"failed: {exc}")
        rep.checks["FAILED"] = str(exc).splitlines()[0][:300]
        code = 1
    if code and not rep.rows and not rep.startup_s:
        return code
    md = report.write(rep, args.out)
    print(report.markdown(rep))
    _log(f"wrote {md} and {md.with_suffix('.json')}")
    return code


if __name__ == "__main__":
    sys.exit(main())
