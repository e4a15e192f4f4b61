"""Start-up time of `llmproxy-tui --no-tui` with a 100-deployment config mixing every provider
prefix the catalog knows, from exec to the first 200 of `GET /health` (target: under 1 s), and
which heavy extras (botocore, google.auth, opentelemetry) each config makes it import.

    python bench/startup.py [--runs 5] [--json PATH]

Configs: `all` (every prefix, bedrock with dummy aws_* keys, vertex_ai with a dummy service
account JSON, azure, cohere, gemini, the OpenAI-compatible vendors, mock), `no-cloud` (the
same 100 without bedrock and vertex_ai), `all+otel` (`all` with `callbacks: [otel]`) and the
built-in `demo`. Each is started `--runs` times (the median is reported), then once more under
`python -X importtime` to read which heavy packages were imported and what they cost. Nothing
is sent upstream: the deployments point at unreachable or made-up endpoints.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import procs

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from proxy.config.catalog import PROVIDERS  # noqa: E402

DEPLOYMENTS = 100
HEAVY = ("botocore", "google.auth", "opentelemetry.sdk", "proxy.observe.otel")
"""The heavy extras' packages, which only a config using them should import. (The
`opentelemetry` API alone is imported by every start: FastAPI >= 0.16x depends on it.)
`proxy.observe.otel` imports the SDK and the OTLP exporter: its cost is theirs."""
PHASES = """
import json, sys, time
t0 = time.perf_counter()
import tui.cli
from proxy.config.loader import load_config
from proxy.http.server import ProxyServer
from proxy.runtime import Runtime
t1 = time.perf_counter()
config = load_config(sys.argv[1]) if len(sys.argv) > 1 else load_config(
    tui.cli.find_config(None)[0], demo=True)
t2 = time.perf_counter()
Runtime(config)
t3 = time.perf_counter()
print(json.dumps({"imports": t1 - t0, "load_config": t2 - t1, "runtime": t3 - t2}))
"""
"""In one process: importing the CLI and server, loading the config, building the Runtime."""
CLOUD = ("bedrock", "vertex_ai")
DEAD = "http://127.0.0.1:9"
"""An address nothing listens on (the discard port): no request leaves during the bench."""


def service_account(path: Path) -> Path:
    """A dummy service-account JSON (never used to fetch a token: no request is sent)."""
    doc = {
        "type": "service_account",
        "project_id": "bench-project",
        "private_key_id": "0" * 40,
        "private_key": "-----BEGIN PRIVATE KEY-----\nMIIBVAIBADANBg==\n-----END PRIVATE KEY-----\n",
        "client_email": "bench@bench-project.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": f"{DEAD}/token",
    }
    path.write_text(json.dumps(doc))
    return path


def params_for(prefix: str, i: int, credentials: Path) -> dict[str, Any]:
    """`litellm_params` of one deployment of `prefix` that loads as served (not disabled)."""
    model = {
        "anthropic": "claude-sonnet-4-20250514",
        "gemini": "gemini-2.5-flash",
        "vertex_ai": "gemini-2.5-flash",
        "bedrock": "anthropic.claude-3-5-sonnet-20240620-v1:0",
        "azure": "my-gpt-4o-deployment",
        "azure_ai": "my-llama-deployment",
        "cohere": "command-r-plus",
        "cohere_chat": "command-r-plus",
    }.get(prefix, f"bench-model-{i}")
    out: dict[str, Any] = {"model": f"{prefix}/{model}", "api_key": f"sk-bench-{i:04d}-abcdef"}
    if prefix == "mock":
        out = {"model": f"mock/{model}", "mock_response": "hello"}
    elif prefix == "bedrock":
        out = {
            "model": f"bedrock/{model}",
            "aws_access_key_id": "AKIABENCHBENCHBENCH0",
            "aws_secret_access_key": "bench/secret/key/0000000000000000000000",
            "aws_region_name": "us-east-1",
        }
    elif prefix == "vertex_ai":
        out = {
            "model": f"vertex_ai/{model}",
            "vertex_project": "bench-project",
            "vertex_location": "us-central1",
            "vertex_credentials": str(credentials),
        }
    elif prefix in ("azure", "azure_ai"):
        out["api_base"] = f"https://bench-{i}.openai.azure.com"
        out["api_version"] = "2024-10-21"
    elif PROVIDERS[prefix].needs_base:
        out["api_base"] = f"{DEAD}/v1"
    return out


def write_config(path: Path, prefixes: list[str], credentials: Path, extra: str = "") -> Path:
    """`DEPLOYMENTS` model_list entries cycling over `prefixes` (each appears at least once)."""
    entries = [
        {
            "model_name": f"{prefixes[i % len(prefixes)]}-{i}",
            "litellm_params": params_for(prefixes[i % len(prefixes)], i, credentials),
        }
        for i in range(DEPLOYMENTS)
    ]
    doc: dict[str, Any] = {"model_list": entries}
    if extra:
        doc["litellm_settings"] = {"callbacks": [extra]}
    path.write_text(json.dumps(doc, indent=1))  # JSON is YAML
    return path


def launcher() -> list[str]:
    """The installed `llmproxy-tui` script beside this interpreter, else `python -m tui.cli`."""
    script = Path(sys.executable).with_name("llmproxy-tui")
    return [str(script)] if script.exists() else [sys.executable, "-m", "tui.cli"]


def start_once(argv: list[str], tmp: Path, env: dict[str, str], log: Path) -> tuple[float, float]:
    """Starts the proxy, times exec -> first 200 of GET /health, stops it.

    Returns:
        (wall seconds, CPU seconds the proxy used until then: less sensitive to a busy box).
    """
    port = procs.free_port()
    full = [*argv, "--no-tui", "--port", str(port), "--usage-db", str(tmp / f"u{port}.db")]
    start = time.perf_counter()
    proc = procs.spawn(full, core=None, log=log, env=env, cwd=tmp)
    try:
        procs.wait_healthy(proc, port, "/health", timeout=30, poll=0.005)
        wall = time.perf_counter() - start
        return wall, procs.tree_cpu_seconds(proc.pid)
    finally:
        procs.stop(proc)


def heavy_imports(log: Path) -> dict[str, float | None]:
    """Reads a `-X importtime` log: per heavy extra, the cumulative ms of its modules imported
    from outside it (None: never imported); `all` is every import's total."""
    lines = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            _, total, name = line[len("import time:") :].split("|")
            if total.strip().isdigit():
                lines.append((len(name) - len(name.lstrip()), int(total) / 1000, name.strip()))
    # importtime prints a module after what it imported, one level deeper: read it backwards,
    # so each line's importer is the nearest line above it on the stack with a smaller depth.
    out: dict[str, float] = {}
    stack: list[tuple[int, str]] = []
    for depth, ms, name in reversed(lines):
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parent = stack[-1][1] if stack else ""
        if not parent:
            out["all"] = out.get("all", 0.0) + ms
        for extra in HEAVY:
            if _within(name, extra) and not _within(parent, extra):
                out[extra] = out.get(extra, 0.0) + ms
        stack.append((depth, name))
    return {k: round(out[k], 1) if k in out else None for k in (*HEAVY, "all")}


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def measure(name: str, config: Path | None, runs: int, tmp: Path, env: dict[str, str]) -> dict:
    args = ["--config", str(config)] if config else []
    log = tmp / f"{name}.log"
    times = [start_once([*launcher(), *args], tmp, env, log) for _ in range(runs)]
    itime = tmp / f"{name}.importtime.log"
    start_once([sys.executable, "-X", "importtime", "-m", "tui.cli", *args], tmp, env, itime)
    split = subprocess.run(
        [sys.executable, "-c", PHASES, *args[1:]],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp,
        check=True,
        timeout=60,
    )
    return {
        "config": name,
        "phases_s": {k: round(v, 3) for k, v in json.loads(split.stdout).items()},
        "median_s": round(statistics.median(t for t, _ in times), 3),
        "median_cpu_s": round(statistics.median(c for _, c in times), 3),
        "runs_s": [round(t, 3) for t, _ in times],
        "imports_ms": heavy_imports(itime),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    every = sorted(PROVIDERS)
    with tempfile.TemporaryDirectory(prefix="llmproxy-startup-") as name:
        tmp = Path(name)
        creds = service_account(tmp / "sa.json")
        configs: list[tuple[str, Path | None]] = [
            ("all", write_config(tmp / "all.yaml", every, creds)),
            (
                "no-cloud",
                write_config(tmp / "no-cloud.yaml", [p for p in every if p not in CLOUD], creds),
            ),
            ("all+otel", write_config(tmp / "otel.yaml", every, creds, extra="otel")),
            ("demo", None),
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMPROXY_", "LITELLM_"))}
        env |= {
            "CLOUDFLARE_ACCOUNT_ID": "bench-account",
            "OTEL_EXPORTER_OTLP_ENDPOINT": DEAD,
            "HOME": str(tmp),  # no ~/.litellm/config.yaml, no ~/.aws files
            "PYTHONPATH": str(ROOT),
        }
        results = [measure(n, path, args.runs, tmp, env) for n, path in configs]
    print(
        f"{len(every)} provider prefixes; {DEPLOYMENTS} deployments per config; launcher "
        f"{' '.join(launcher())}; median of {args.runs} runs, exec -> 200 from GET /health\n"
    )
    print(
        "| config | median wall | median CPU | runs, wall (s) | imports, load, Runtime (s) "
        "| all imports* | botocore* | google.auth* | opentelemetry.sdk* | proxy.observe.otel* |"
    )
    print("|---|---:|---:|---|---|---:|---:|---:|---:|---:|")
    for r in results:
        ms = r["imports_ms"]
        heavy = ["no" if ms[k] is None else f"{ms[k]:g} ms" for k in HEAVY]
        runs = ", ".join(f"{t:.3f}" for t in r["runs_s"])
        phases = ", ".join(f"{v:.3f}" for v in r["phases_s"].values())
        print(
            f"| {r['config']} | {r['median_s']:.3f} s | {r['median_cpu_s']:.3f} s | {runs} "
            f"| {phases} | {ms['all']:g} ms | {' | '.join(heavy)} |"
        )
    print("\n* from one more start under `python -X importtime` (which inflates times): the")
    print("  cumulative import time of each package, from outside it; no: never imported.")
    load = os.getloadavg()
    print(f"\nload average during the run: {load[0]:.2f} (on {os.cpu_count()} cores)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
