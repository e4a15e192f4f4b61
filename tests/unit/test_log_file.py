"""`--log-file` rotates by size, every generation owner-only; `--version` says what is installed."""

from __future__ import annotations

import importlib.metadata
import logging
import stat
from pathlib import Path

import pytest

from proxy.observe.log_format import PrivateRotatingFileHandler
from tui.cli import main


def test_the_log_rotates_by_size_and_keeps_a_few_private_files(tmp_path: Path) -> None:
    path = tmp_path / "proxy.log"
    handler = PrivateRotatingFileHandler(str(path), max_bytes=400, backups=2)
    log = logging.Logger("rotation-test")
    log.addHandler(handler)
    try:
        for i in range(60):
            log.warning("line %03d %s", i, "x" * 40)
    finally:
        handler.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["proxy.log", "proxy.log.1", "proxy.log.2"]  # no more than the backups
    for name in files:
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
        assert (tmp_path / name).stat().st_size <= 400 + 60
    assert "line 059" in path.read_text()  # the newest lines are in the live file


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == (
        f"llmproxy-tui {importlib.metadata.version('llmproxy-tui')}"
    )
