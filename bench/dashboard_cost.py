"""What the in-process dashboard costs the proxy: req/s and CPU per request, headless vs dashboard.

    python bench/dashboard_cost.py [--rounds 5] [--stream] [--size 120x40] [--duration 8]

Starts one nginx zero-latency upstream (core 1) and the same proxy twice, on core 0, with the
same config of 9 deployments (9 upstream keys in three groups, so the Keys pane is busy):

- headless: `taskset -c 0 llmproxy-tui --no-tui --config CFG --host 127.0.0.1 --port P1 ...`
- dashboard: the same command without `--no-tui`, inside a private tmux server
  (`tmux -L NAME new-session -d -x 120 -y 40 "taskset -c 0 llmproxy-tui ..."`, status line off,
  so the dashboard has the whole window).

Both are alive the whole time; each round (default 5, the order alternating) runs
`taskset -c 1 wrk -t1 -c64 -d8s` once against each, a non-stream chat completion (`--stream`: a
streamed one of about 20 chunks), and reads the proxy process's utime + stime from
/proc/<pid>/stat before the run and `--settle` seconds after it (so the dashboard's catching up
on the run's events is counted). Both proxies share core 0, so the one not under load is paused
with SIGSTOP during the other's run (the dashboard keeps redrawing when idle; `--no-pause`
leaves it running) and resumed after. It prints the medians per mode, the dashboard's req/s as % of
headless (target: at least 90 %) and its CPU per request as % over headless, and the CPU that
each process uses while idle (`--idle` seconds without load, before and after the rounds).
The numbers go to bench/results/dashboard_cost.json, the dashboard's last screen to
bench/results/dashboard_cost-screen.txt. Every process it starts is stopped by its PID (the
tmux server with `tmux -L NAME kill-server`) on success, on error and on Ctrl-C.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType

import payloads
import procs
from load import run_wrk
from run import check_answer
from upstream import Nginx, ensure_tools

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
HOST = "127.0.0.1"
PROXY_CORE, LOAD_CORE = 0, 1
TARGET_PCT = 90.0
# 9 deployments (one upstream key each) in three groups; the load goes to `fast` or `stream`.
GROUPS = {"fast": 4, "stream": 3, "slow": 2}
MODES = ("headless", "dashboard")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line.

    Returns:
        The parsed options (`size` as a (columns, rows) tuple).
    """
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--rounds", type=int, default=5, help="rounds, each mode once per round (5)")
    p.add_argument("--duration", type=int, default=8, help="seconds of wrk per run (8)")
    p.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per mode, once (2)")
    p.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    p.add_argument("--stream", action="store_true", help="streamed chat completions")
    p.add_argument("--size", default="120x40", help="the dashboard's terminal, COLSxROWS (120x40)")
    p.add_argument("--idle", type=float, default=10.0, help="seconds of idle CPU sampling (10)")
    p.add_argument(
        "--settle", type=float, default=1.0, help="seconds after each run before reading CPU (1)"
    )
    p.add_argument(
        "--no-pause",
        dest="pause",
        action="store_false",
        help="leave the other proxy running (not SIGSTOPped) during each measured run",
    )
    p.add_argument("--out", type=Path, default=BENCH / "results", help="results directory")
    args = p.parse_args(argv)
    try:
        cols, rows = (int(n) for n in args.size.lower().split("x"))
    except ValueError:
        p.error(f"--size must look like 120x40, not {args.size!r}")
    if cols < 20 or rows < 10:
        p.error("--size is too small for the dashboard")
    if args.rounds < 1 or args.duration < 1:
        p.error("--rounds and --duration must be at least 1")
    args.size = (cols, rows)
    return args


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _log(msg: str) -> None:
    print(f"[dashboard_cost {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def write_config(path: Path, nginx: Nginx) -> None:
    """The LiteLLM-format config both proxies use: 9 deployments in 3 groups, no cache."""
    lines = ["model_list:"]
    n = 0
    for group, count in GROUPS.items():
        for _ in range(count):
            n += 1
            lines += [
                f"  - model_name: {group}",
                "    litellm_params:",
                f"      model: openai/{payloads.UPSTREAM_MODEL}",
                f"      api_base: {nginx.base(group)}",
                f"      api_key: sk-bench-upstream-key-{n:06d}",
            ]
    lines += ["general_settings:", "  master_key: os.environ/LITELLM_MASTER_KEY", ""]
    path.write_text("\n".join(lines))


def _exe() -> str:
    exe = shutil.which("llmproxy-tui")
    if exe is None:
        raise RuntimeError("llmproxy-tui is not on PATH: run `pip install -e .` first")
    return exe


def _proxy_args(config: Path, port: int, usage_db: Path) -> list[str]:
    return [
        "--config",
        str(config),
        "--host",
        HOST,
        "--port",
        str(port),
        "--usage-db",
        str(usage_db),
    ]


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _alive(pid: int, marker: str) -> bool:
    """True while pid runs a command line containing `marker` (guards against PID reuse)."""
    return any(marker in part for part in _cmdline(pid))


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            with suppress(OSError):
                todo += [int(c) for c in (task / "children").read_text().split()]
    return out


def _kill_pid(pid: int, marker: str, grace: float = 10.0) -> None:
    """SIGTERM pid (only while it still runs `marker`), then SIGKILL after `grace` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not _alive(pid, marker):
            return
        with suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _alive(pid, marker):
            time.sleep(0.05)


def _wait_health(port: int, dead: Callable[[], bool], timeout: float = 30.0) -> float:
    """Poll GET /health until 200; `dead()` says the process is gone.

    Returns:
        Seconds until healthy.

    Raises:
        RuntimeError: the process exited or /health did not answer 200 in time.
    """
    began = time.perf_counter()
    while time.perf_counter() - began < timeout:
        if procs.http_status(port, "/health", timeout=0.5) == 200:
            return time.perf_counter() - began
        if dead():
            raise RuntimeError(f"the proxy on port {port} exited before /health answered")
        time.sleep(0.02)
    raise RuntimeError(f"no 200 from /health on port {port} within {timeout:.0f} s")


class Headless:
    """`llmproxy-tui --no-tui` pinned to core 0, in its own process group."""

    def __init__(self, tmp: Path, config: Path) -> None:
        self.tmp, self.config = tmp, config
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tmp / "a.log"

    @property
    def pid(self) -> int:
        """The proxy's PID."""
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> float:
        """Start it and wait for /health.

        Returns:
            Seconds to healthy.

        Raises:
            RuntimeError: it did not come up (with its log tail).
        """
        self.port = procs.free_port()
        argv = [_exe(), "--no-tui", *_proxy_args(self.config, self.port, self.tmp / "a.db")]
        env = {k: v for k, v in os.environ.items() if k != "LLMPROXY_CONFIG"}
        env["LITELLM_MASTER_KEY"] = payloads.MASTER_KEY
        self.proc = procs.spawn(argv, core=PROXY_CORE, log=self.log, env=env, cwd=self.tmp)
        proc = self.proc
        try:
            return _wait_health(self.port, lambda: proc.poll() is not None)
        except RuntimeError as exc:
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"headless: {exc}\n--- log tail ---\n{tail}") from exc

    def stop(self) -> None:
        """SIGTERM its process group, then SIGKILL."""
        if self.proc is not None:
            procs.stop(self.proc, grace=10.0)
            self.proc = None


class Dashboard:
    """`llmproxy-tui` with its dashboard, in a private tmux server (`tmux -L NAME`)."""

    def __init__(self, tmp: Path, config: Path, size: tuple[int, int]) -> None:
        self.tmp, self.config, self.size = tmp, config, size
        self.socket = f"llmproxy-dashcost-{os.getpid()}"
        self.port = 0
        self.proxy_pid = 0
        self.server_pid = 0
        self.pane_pid = 0
        self.started = False

    def tmux(self, *args: str, check: bool = True) -> str:
        """Run one tmux command against the private server.

        Returns:
            Its stdout.

        Raises:
            RuntimeError: tmux failed (when `check`).
        """
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args],
            capture_output=True,
            text=True,
            timeout=15,
            check=False,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args[:1])} failed: {done.stderr.strip()}")
        return done.stdout

    @property
    def pid(self) -> int:
        """The proxy's PID (the dashboard's process, inside the tmux pane)."""
        return self.proxy_pid

    def start(self) -> float:
        """Start the tmux server with the dashboard in its one pane; wait for /health.

        Returns:
            Seconds to healthy.

        Raises:
            RuntimeError: tmux or the proxy did not come up (with the pane's text).
        """
        if not shutil.which("tmux"):
            raise RuntimeError("tmux is missing (Debian package tmux)")
        self.port = procs.free_port()
        conf = self.tmp / "tmux.conf"
        # remain-on-exit: a dashboard that dies leaves its last screen to report.
        conf.write_text("set -g status off\nset -g remain-on-exit on\nset -g history-limit 200\n")
        argv = ["taskset", "-c", str(PROXY_CORE), _exe()]
        argv += _proxy_args(self.config, self.port, self.tmp / "b.db")
        cols, rows = self.size
        began = time.perf_counter()
        self.started = True
        self.tmux(
            "-f", str(conf), "new-session", "-d", "-s", "dash",
            "-x", str(cols), "-y", str(rows), "-c", str(self.tmp),
            "-e", f"LITELLM_MASTER_KEY={payloads.MASTER_KEY}",
            # Not the pane's own process (a shell runs it, then exits): tmux sends SIGCONT to a
            # pane process that stops, which would undo the pause during the headless runs.
            shlex.join(argv) + "; exit $?",
        )  # fmt: skip
        self.server_pid = int(self.tmux("display-message", "-p", "#{pid}").strip())
        pane_pid = int(self.tmux("list-panes", "-t", "dash", "-F", "#{pane_pid}").split()[0])
        self.pane_pid = pane_pid
        marker = str(self.port)
        while not self.proxy_pid and time.perf_counter() - began < 10:
            for pid in _descendants(pane_pid):
                line = _cmdline(pid)
                if any("llmproxy-tui" in part for part in line) and marker in line:
                    self.proxy_pid = pid
                    break
            else:
                if self._pane_dead():
                    break
                time.sleep(0.02)
        try:
            if not self.proxy_pid:
                raise RuntimeError("found no llmproxy-tui process in the tmux pane")
            _wait_health(self.port, self._pane_dead)
        except RuntimeError as exc:
            raise RuntimeError(f"dashboard: {exc}\n--- pane ---\n{self.screen()}") from exc
        return time.perf_counter() - began

    def _pane_dead(self) -> bool:
        out = self.tmux("list-panes", "-t", "dash", "-F", "#{pane_dead}", check=False)
        return out.strip() != "0"

    def screen(self) -> str:
        """The pane's text as it is now (empty when tmux is gone).

        Returns:
            The visible screen.
        """
        return self.tmux("capture-pane", "-p", "-t", "dash", check=False)

    def stop(self) -> None:
        """`tmux -L NAME kill-server` (SIGHUP to the dashboard), then make sure both are gone."""
        if not self.started:
            return
        self.started = False
        self.tmux("kill-server", check=False)
        if self.proxy_pid:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and _alive(self.proxy_pid, "llmproxy-tui"):
                time.sleep(0.05)
            _kill_pid(self.proxy_pid, "llmproxy-tui")
        if self.pane_pid:  # the shell that runs the proxy (its command line names it)
            _kill_pid(self.pane_pid, "llmproxy-tui", grace=3.0)
        if self.server_pid:
            _kill_pid(self.server_pid, "tmux", grace=3.0)
        with suppress(OSError):  # the socket file of the private server
            (Path(f"/tmp/tmux-{os.getuid()}") / self.socket).unlink()


@dataclass
class Run:
    """One measured wrk run against one mode."""

    mode: str
    round: int
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    cpu_s: float
    cpu_us_per_request: float
    other_paused: bool


def measure(
    proxy: Headless | Dashboard, body: Path, args: argparse.Namespace, rnd: int, paused: bool
) -> Run:
    """One wrk run against proxy, with its CPU time read before and `settle` s after.

    Returns:
        The run.
    """
    mode = "headless" if isinstance(proxy, Headless) else "dashboard"
    cpu0 = procs.tree_cpu_seconds(proxy.pid)
    res = run_wrk(
        f"http://{HOST}:{proxy.port}/v1/chat/completions",
        body_file=body,
        auth=payloads.MASTER_KEY,
        connections=args.connections,
        seconds=args.duration,
        core=LOAD_CORE,
        save=args.out / f"wrk-dashboard_cost-{mode}.txt",
    )
    time.sleep(args.settle)
    used = procs.tree_cpu_seconds(proxy.pid) - cpu0
    run = Run(
        mode,
        rnd,
        res.rps,
        res.p50_ms,
        res.p99_ms,
        res.requests,
        res.errors,
        used,
        used / res.requests * 1e6 if res.requests else float("nan"),
        paused,
    )
    _log(
        f"round {rnd} {mode:9s}: {run.rps:,.0f} req/s, p50 {run.p50_ms:.2f} ms, "
        f"{run.cpu_us_per_request:,.0f} µs CPU/request, errors {run.errors}"
        + ("" if paused else " (the other proxy was running)")
    )
    return run


def idle_cpu(
    proxies: dict[str, Headless | Dashboard], seconds: float
) -> dict[str, float | list[float]]:
    """Both processes' CPU over the same `seconds` with no load, sampled every second.

    Returns:
        Per mode, CPU milliseconds per second of wall time (10 = 1 % of a core), and under
        `MODE per second` the same for each second.
    """
    first = {m: procs.tree_cpu_seconds(p.pid) for m, p in proxies.items()}
    last = dict(first)
    series: dict[str, list[float]] = {m: [] for m in proxies}
    began = time.perf_counter()
    while (left := seconds - (time.perf_counter() - began)) > 0:
        time.sleep(min(1.0, left))
        for m, p in proxies.items():
            now = procs.tree_cpu_seconds(p.pid)
            series[m].append(round((now - last[m]) * 1000, 1))
            last[m] = now
    wall = time.perf_counter() - began
    out: dict[str, float | list[float]] = {}
    for m in proxies:
        out[m] = (last[m] - first[m]) / wall * 1000
        out[f"{m} per second"] = series[m]
    return out


def _log_idle(when: str, values: dict[str, float | list[float]]) -> None:
    _log(
        f"{when}: "
        + ", ".join(f"{m} {values[m]:.1f} ms CPU/s" for m in MODES)
        + f" (dashboard per second: {values['dashboard per second']})"
    )


class Pauser:
    """Stops (SIGSTOP) and resumes (SIGCONT) the proxy that is not under load, so that it takes
    nothing from core 0 while the other one is measured (both proxies share that core)."""

    def __init__(self) -> None:
        self.stopped: set[int] = set()

    def pause(self, pid: int) -> bool:
        """Stop pid (while it runs llmproxy-tui).

        Returns:
            True once /proc shows it stopped (within 1 s).
        """
        if not _alive(pid, "llmproxy-tui"):
            return False
        os.kill(pid, signal.SIGSTOP)
        self.stopped.add(pid)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            with suppress(OSError):
                if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T":
                    time.sleep(0.1)  # check that nothing resumed it
                    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                    return state == "T"
            time.sleep(0.01)
        return False

    def resume_all(self) -> None:
        """SIGCONT every paused pid that still runs llmproxy-tui."""
        for pid in sorted(self.stopped):
            if _alive(pid, "llmproxy-tui"):
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
        self.stopped.clear()


def _med(runs: list[Run], field: str) -> float:
    return statistics.median(float(getattr(r, field)) for r in runs)


def summarise(runs: list[Run]) -> dict[str, float | int | bool]:
    """Medians per mode and the dashboard against headless.

    Returns:
        The summary (flat, JSON-able).
    """
    by = {m: [r for r in runs if r.mode == m] for m in MODES}
    out: dict[str, float | int | bool] = {}
    for m in MODES:
        out[f"{m}_rps"] = _med(by[m], "rps")
        out[f"{m}_cpu_us"] = _med(by[m], "cpu_us_per_request")
        out[f"{m}_p50_ms"] = _med(by[m], "p50_ms")
        out[f"{m}_errors"] = sum(r.errors for r in by[m])
    out["rps_pct"] = 100 * out["dashboard_rps"] / out["headless_rps"]
    out["cpu_over_pct"] = 100 * (out["dashboard_cpu_us"] / out["headless_cpu_us"] - 1)
    paired = zip(by["headless"], by["dashboard"], strict=True)
    out["rps_pct_paired"] = statistics.median(100 * d.rps / h.rps for h, d in paired)
    out["met"] = out["rps_pct"] >= TARGET_PCT
    return out


def markdown(
    s: dict[str, float | int | bool],
    idle: dict[str, dict[str, float | list[float]]],
    meta: dict[str, object],
) -> str:
    """The report.

    Returns:
        Markdown text.
    """
    kind = "streamed (~20 chunks)" if meta["stream"] else "non-stream"
    lines = [
        f"## The dashboard's cost ({meta['date']}, {meta['git']})",
        "",
        f"{meta['rounds']} round{'' if meta['rounds'] == 1 else 's'} of "
        f"wrk -t1 -c{meta['connections']} -d{meta['duration_s']}s, "
        f"{kind} chat completions, proxy on core {PROXY_CORE}, nginx and wrk on core "
        f"{LOAD_CORE}; dashboard in tmux {meta['size']}; config of 9 deployments in 3 groups; "
        + (
            "the proxy not under load was stopped (SIGSTOP) during each run. "
            if meta["other_paused"]
            else "the proxy not under load kept running. "
        )
        + f"CPU read {meta['settle_s']} s after each run. "
        f"Load average {meta['loadavg_before']} before, {meta['loadavg_after']} after.",
        "",
        "| mode | req/s (median) | p50 ms | proxy CPU µs/req (median) | errors |",
        "|---|---:|---:|---:|---:|",
    ]
    for m in MODES:
        lines.append(
            f"| {m} | {s[f'{m}_rps']:,.0f} | {s[f'{m}_p50_ms']:.2f} | "
            f"{s[f'{m}_cpu_us']:,.0f} | {s[f'{m}_errors']} |"
        )
    verdict = "met" if s["met"] else "**missed**"
    lines += [
        "",
        "| dashboard vs headless | value |",
        "|---|---:|",
        f"| req/s, % of headless (ratio of medians) | {s['rps_pct']:.1f} % |",
        f"| req/s, % of headless (median of per-round ratios) | {s['rps_pct_paired']:.1f} % |",
        f"| CPU per request, % over headless | {s['cpu_over_pct']:+.1f} % |",
        f"| target: dashboard ≥ {TARGET_PCT:.0f} % of headless req/s | {verdict} |",
        "",
        "| idle, no load | headless CPU | dashboard CPU |",
        "|---|---:|---:|",
    ]
    for when, values in idle.items():
        head, dash = values["headless"], values["dashboard"]
        assert isinstance(head, float) and isinstance(dash, float)
        lines.append(
            f"| {when} ({meta['idle_s']:.0f} s) | {head:.1f} ms/s ({head / 10:.2f} % of a core) "
            f"| {dash:.1f} ms/s ({dash / 10:.2f} % of a core) |"
        )
    if s["headless_errors"] or s["dashboard_errors"]:
        lines += ["", "**Some runs had errors: the numbers above are not clean.**"]
    return "\n".join(lines)


def _meta(args: argparse.Namespace) -> dict[str, object]:
    git = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "proxy", "tui"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "git": (git or "(no commit)") + (" + uncommitted proxy/tui changes" if dirty else ""),
        "rounds": args.rounds,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "connections": args.connections,
        "stream": args.stream,
        "size": "x".join(map(str, args.size)),
        "idle_s": args.idle,
        "settle_s": args.settle,
        "other_paused": args.pause,
        "loadavg_before": Path("/proc/loadavg").read_text().split()[0],
    }


def bench(args: argparse.Namespace, tmp: Path, stack: ExitStack) -> dict[str, object]:
    """Start everything (stopped by `stack`), run the rounds.

    Returns:
        The results (meta, runs, summary, idle).
    """
    meta = _meta(args)
    nginx = Nginx(tmp, core=LOAD_CORE)
    stack.callback(nginx.stop)
    nginx.start()
    _log(f"nginx on {HOST}:{nginx.port} (core {LOAD_CORE})")
    group = "stream" if args.stream else "fast"
    direct = payloads.request_body(payloads.UPSTREAM_MODEL, stream=args.stream)
    check_answer(
        f"{nginx.base(group)}/chat/completions", direct, payloads.UPSTREAM_KEY, args.stream
    )
    config = tmp / "config.yaml"
    write_config(config, nginx)
    body = tmp / "body.json"
    body.write_text(payloads.request_body(group, stream=args.stream))

    headless = Headless(tmp, config)
    stack.callback(headless.stop)
    _log(f"headless healthy after {headless.start():.2f} s (port {headless.port})")
    dashboard = Dashboard(tmp, config, args.size)
    stack.callback(dashboard.stop)
    _log(
        f"dashboard healthy after {dashboard.start():.2f} s (port {dashboard.port}, "
        f"pid {dashboard.pid}, tmux -L {dashboard.socket})"
    )
    proxies: dict[str, Headless | Dashboard] = {"headless": headless, "dashboard": dashboard}
    for m, p in proxies.items():
        url = f"http://{HOST}:{p.port}/v1/chat/completions"
        _log(
            f"{m} answers: {check_answer(url, body.read_text(), payloads.MASTER_KEY, args.stream)}"
        )

    time.sleep(2)
    idle = {"idle before load": idle_cpu(proxies, args.idle)}
    _log_idle("idle before load", idle["idle before load"])
    for m, p in proxies.items():  # warm-up, not counted
        run_wrk(
            f"http://{HOST}:{p.port}/v1/chat/completions",
            body_file=body,
            auth=payloads.MASTER_KEY,
            connections=args.connections,
            seconds=args.warmup,
            core=LOAD_CORE,
        )
        _log(f"{m} warmed up ({args.warmup} s)")
    pauser = Pauser()
    stack.callback(pauser.resume_all)  # before the stops (an ExitStack unwinds backwards)
    runs: list[Run] = []
    for rnd in range(args.rounds):
        order = MODES if rnd % 2 == 0 else MODES[::-1]
        for m in order:
            paused = False
            if args.pause:
                other = "dashboard" if m == "headless" else "headless"
                paused = pauser.pause(proxies[other].pid)
                if not paused:
                    _log(f"could not pause the {other} proxy: it runs during this run")
            runs.append(measure(proxies[m], body, args, rnd, paused))
            if pauser.stopped:
                pauser.resume_all()
                time.sleep(0.5)  # what a resumed process catches up on falls in no window
    (args.out / "dashboard_cost-screen.txt").write_text(dashboard.screen())
    time.sleep(2)
    idle["idle after load"] = idle_cpu(proxies, args.idle)
    _log_idle("idle after load", idle["idle after load"])
    for m, p in proxies.items():
        if not _alive(p.pid, "llmproxy-tui"):
            raise RuntimeError(f"the {m} proxy died during the runs")
    meta["loadavg_after"] = Path("/proc/loadavg").read_text().split()[0]
    return {
        "meta": meta,
        "runs": [asdict(r) for r in runs],
        "summary": summarise(runs),
        "idle_cpu_ms_per_s": idle,
    }


def main(argv: list[str] | None = None) -> int:
    """Run it, print the table, write bench/results/dashboard_cost.json.

    Returns:
        0 when it ran (target met or not), 1 when a step failed, 130 on Ctrl-C.
    """
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, _raise_interrupt)
    try:
        ensure_tools()
        with (
            tempfile.TemporaryDirectory(prefix="llmproxy-dashcost-") as tmp,
            ExitStack() as stack,
        ):
            result = bench(args, Path(tmp), stack)
    except KeyboardInterrupt:
        _log("interrupted; everything started was stopped")
        return 130
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        _log(f"failed: {exc}")
        return 1
    out = args.out / "dashboard_cost.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    meta, summary, idle = result["meta"], result["summary"], result["idle_cpu_ms_per_s"]
    assert isinstance(meta, dict) and isinstance(summary, dict) and isinstance(idle, dict)
    print(markdown(summary, idle, meta))
    _log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
