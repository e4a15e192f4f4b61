"""The zero-latency upstream: installs nginx, its echo module and wrk, then runs nginx.

nginx runs in the foreground (`daemon off`, one process) from a config rendered into a temp
dir, with its own pid, log and temp paths, on a free 127.0.0.1 port, pinned to one core.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import payloads
import procs

TEMPLATE = Path(__file__).with_name("nginx.conf.tmpl")
ECHO_MODULE = Path("/usr/lib/nginx/modules/ngx_http_echo_module.so")
PACKAGES = ("nginx", "libnginx-mod-http-echo", "wrk")
LOCATIONS = ("fast", "stream", "slow")


def _missing() -> list[str]:
    missing = []
    if not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()):
        missing.append("nginx")
    if not ECHO_MODULE.exists():
        missing.append("libnginx-mod-http-echo")
    if not shutil.which("wrk"):
        missing.append("wrk")
    return missing


def ensure_tools() -> None:
    """Install nginx, the echo module and wrk with apt-get when any is missing.

    Runs `apt-get update` once, only if the first install fails.

    Raises:
        RuntimeError: a package could not be installed, or taskset is missing.
    """
    if not shutil.which("taskset"):
        raise RuntimeError("taskset is missing (Debian package util-linux)")
    missing = _missing()
    if not missing:
        return
    print(f"installing {' '.join(missing)} with apt-get ...", file=sys.stderr)
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=False)
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"apt-get install failed:\n{done.stderr[-2000:]}")
    if _missing():
        raise RuntimeError(f"still missing after apt-get: {', '.join(_missing())}")


def _nginx_quote(text: str) -> str:
    """Escape text for a single-quoted nginx string (no `$`, so no variable expansion)."""
    if "$" in text:
        raise ValueError("nginx would expand '$' in a canned body")
    return text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")


def render_config(tmp: Path, port: int) -> str:
    """The nginx config for a run in `tmp` listening on 127.0.0.1:port.

    Returns:
        The config text.
    """
    echoes = "\n".join(
        f"            echo -n '{_nginx_quote(event)}';" for event in payloads.stream_events()
    )
    echoes = "            echo_read_request_body;\n" + echoes
    text = TEMPLATE.read_text()
    for marker, value in (
        ("@TMP@", str(tmp)),
        ("@PORT@", str(port)),
        ("@ECHO_MODULE@", str(ECHO_MODULE)),
        ("@FAST_BODY@", _nginx_quote(payloads.completion_json())),
        ("@STREAM_ECHOES@", echoes),
    ):
        text = text.replace(marker, value)
    return text


class Nginx:
    """One nginx process serving /fast, /stream and /slow chat completions."""

    def __init__(self, tmp: Path, core: int) -> None:
        self.dir = tmp / "nginx"
        self.core = core
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def base(self, location: str) -> str:
        """The OpenAI-style api_base for one location (`fast`, `stream`, `slow`).

        Returns:
            A URL ending in `/v1`.
        """
        return f"http://127.0.0.1:{self.port}/{location}/v1"

    def start(self) -> None:
        """Write the config and start nginx; return once it answers.

        Raises:
            RuntimeError: nginx rejected its config or did not come up.
        """
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = procs.free_port()
        conf = self.dir / "nginx.conf"
        conf.write_text(render_config(self.dir, self.port))
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        argv = [nginx, "-p", str(self.dir), "-c", str(conf), "-e", str(self.dir / "error.log")]
        check = subprocess.run([*argv, "-t"], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"nginx -t failed:\n{check.stderr}")
        self.proc = procs.spawn(argv, core=self.core, log=self.dir / "stdout.log")
        self._wait_up()

    def _wait_up(self) -> None:
        assert self.proc is not None
        for _ in range(500):
            if procs.http_status(self.port, "/") is not None:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.01)
        log = (self.dir / "error.log").read_text() if (self.dir / "error.log").exists() else ""
        raise RuntimeError(f"nginx did not start on port {self.port}:\n{log[-2000:]}")

    def stop(self) -> None:
        """Stop nginx (its whole process group)."""
        if self.proc is not None:
            procs.stop(self.proc)
            self.proc = None
