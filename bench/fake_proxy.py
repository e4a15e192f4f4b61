"""A headless proxy on the project's fake upstream, for the benchmarks that need the fake's
failure modes (hangs, stalls, hang-up detection) rather than nginx's speed."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.conftest import cli_command, free_port  # noqa: E402
from tests.fakes.upstream import FakeUpstream  # noqa: E402

MASTER = "sk-bench-master-0000000000"


@contextlib.contextmanager
def headless_proxy(
    fake: FakeUpstream, prefix: str
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """Starts `llmproxy-tui --no-tui` with one group `g` (openai/gpt-4o on `fake`) and the
    master key MASTER, waits for it to be live, and stops it on exit.

    Yields:
        The process and its port.
    """
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    params = {"model": "openai/gpt-4o", "api_base": fake.openai_base, "api_key": "sk-up-0"}
    config = tmp / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model_list": [{"model_name": "g", "litellm_params": params}],
                "general_settings": {"master_key": MASTER},
            }
        )
    )
    port = free_port()
    cmd = [*cli_command(), "--no-tui", "--config", str(config), "--port", str(port),
           "--usage-db", str(tmp / "usage.db")]  # fmt: skip
    with (tmp / "proxy.log").open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            for _ in range(100):
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health/liveness").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            yield proc, port
        finally:
            proc.terminate()
            proc.wait(30)
