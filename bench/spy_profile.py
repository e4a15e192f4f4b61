"""Optional py-spy profile of the proxy under load, summarised by function and by package.

`py-spy record -f raw` writes collapsed stacks ("frame;frame;... count"); this module folds
them into the functions and packages that hold the most samples, on their own (self) and
anywhere on the stack (inclusive).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

_REPO = str(Path(__file__).resolve().parent.parent)
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::-?\d+)?\)$")


def ensure_py_spy() -> str:
    """Find py-spy, installing it with pip when missing.

    Returns:
        The py-spy executable's path.

    Raises:
        RuntimeError: it could not be installed.
    """
    found = shutil.which("py-spy")
    if found:
        return found
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "py-spy"], check=False)
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise RuntimeError("py-spy is not installed and `pip install py-spy` failed")
    return found


def start_record(pid: int, seconds: int, out: Path, core: int) -> subprocess.Popen[bytes]:
    """Start `py-spy record` on pid for `seconds`, writing collapsed stacks to out.

    Returns:
        The py-spy process (wait for it).
    """
    argv = [
        "taskset",
        "-c",
        str(core),
        ensure_py_spy(),
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(seconds),
        "--rate",
        "200",
        "--format",
        "raw",
        "--output",
        str(out),
        "--nonblocking",
    ]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _short(path: str) -> str:
    for marker in ("site-packages/", f"{_REPO}/"):
        path = path.split(marker, 1)[-1]
    return re.sub(r"^.*python3\.\d+/", "", path)


def _package(path: str) -> str:
    """Our own modules by file (`proxy/router.py`), everything else by top-level package."""
    for mine in ("proxy/", "tui/"):
        if path.startswith(mine) or f"/{mine}" in path:
            return mine + path.rsplit(f"{mine}", 1)[1]
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    match = re.search(r"python3\.\d+/(.+)$", path)
    if match:
        path = match.group(1)
    return path.split("/", 1)[0].removesuffix(".py") or "?"


def summarise(raw: Path, top: int = 10) -> dict[str, list[tuple[str, float]]]:
    """Fold py-spy's collapsed stacks.

    Returns:
        Titles mapped to [(name, percent of samples)], largest first: self time by package,
        inclusive time by package, self time by function.
    """
    self_pkg: Counter[str] = Counter()
    incl_pkg: Counter[str] = Counter()
    self_fn: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = []
        for frame in stack.split(";"):
            match = _FRAME.match(frame.strip())
            func, file = (match["func"], match["file"]) if match else (frame, "")
            frames.append((func, _short(file), _package(file)))
        leaf_func, leaf_file, leaf_pkg = frames[-1]
        self_pkg[leaf_pkg] += count
        self_fn[f"{leaf_func} ({leaf_file})"] += count
        for pkg in {pkg for _, _, pkg in frames}:
            incl_pkg[pkg] += count
    if total == 0:
        return {}

    def pct(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, 100.0 * n / total) for name, n in counter.most_common(top)]

    return {
        "self time by package": pct(self_pkg),
        "inclusive time by package": pct(incl_pkg),
        "self time by function": pct(self_fn),
    }
