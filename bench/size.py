"""Installed size: a fresh venv, `pip install <repo>` (no test extra), then `du -sm`."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any


def _du_mib(path: Path) -> float:
    out = subprocess.run(["du", "-sm", str(path)], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[0])


def installed_size(repo: Path) -> dict[str, Any]:
    """Build a venv in a temp dir, install the project into it and measure it.

    Returns:
        {"venv_mib": size after install, "empty_venv_mib": size before,
        "largest": {package dir: MiB} for the biggest site-packages entries}.

    Raises:
        RuntimeError: the venv or the install failed.
    """
    with tempfile.TemporaryDirectory(prefix="llmproxy-size-") as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        empty = _du_mib(venv)
        done = subprocess.run(
            [
                str(venv / "bin" / "pip"),
                "install",
                "--quiet",
                "--disable-pip-version-check",
                str(repo),
            ],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"pip install {repo} failed:\n{done.stderr[-3000:]}")
        return {"venv_mib": _du_mib(venv), "empty_venv_mib": empty, "largest": _largest(venv)}


def _largest(venv: Path, top: int = 8) -> dict[str, float]:
    """The biggest entries of the venv's site-packages, in MiB, largest first."""
    site = next(venv.glob("lib/python3*/site-packages"), None)
    if site is None:
        return {}
    out = subprocess.run(
        ["du", "-sk", *map(str, site.iterdir())], capture_output=True, text=True, check=False
    ).stdout
    sizes = [
        (Path(path).name, int(kib) / 1024)
        for kib, path in (line.split("\t", 1) for line in out.splitlines())
    ]
    sizes = [(n, v) for n, v in sizes if not n.endswith((".dist-info", ".pth"))]
    return {name: round(mib, 1) for name, mib in sorted(sizes, key=lambda x: -x[1])[:top]}
