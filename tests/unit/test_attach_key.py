"""`--attach` takes its master key from --key-file, $LLMPROXY_KEY or $LITELLM_MASTER_KEY; --key
still works but warns, since every user of the machine can read it in `ps`."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.errors import ConfigError
from tui.cli import _attach_key, build_parser, main

URL = "http://127.0.0.1:9"


def key_for(*argv: str) -> str | None:
    return _attach_key(build_parser().parse_args(["--attach", URL, *argv]))


def test_key_file_wins_and_is_stripped(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("LLMPROXY_KEY", "sk-from-env-000000000000")
    path = tmp_path / "key"
    path.write_text("sk-from-file-00000000000\n")
    assert key_for("--key-file", str(path)) == "sk-from-file-00000000000"
    assert capsys.readouterr().err == ""


def test_environment_then_litellm_variable(monkeypatch) -> None:
    monkeypatch.delenv("LLMPROXY_KEY", raising=False)
    monkeypatch.setenv("LITELLM_MASTER_KEY", "sk-litellm-000000000000")
    assert key_for() == "sk-litellm-000000000000"
    monkeypatch.setenv("LLMPROXY_KEY", "sk-llmproxy-00000000000")
    assert key_for() == "sk-llmproxy-00000000000"


def test_key_on_the_command_line_warns_without_echoing_it(capsys) -> None:
    assert key_for("--key", "sk-argv-secret-0000000000") == "sk-argv-secret-0000000000"
    err = capsys.readouterr().err
    assert "warning" in err and "--key-file" in err and "LLMPROXY_KEY" in err
    assert "sk-argv-secret" not in err


@pytest.mark.parametrize("content", [None, "", "  \n"])
def test_unreadable_or_empty_key_file_is_exit_2(tmp_path: Path, capsys, content) -> None:
    path = tmp_path / "key"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match="--key-file"):
        key_for("--key-file", str(path))
    assert main(["--attach", URL, "--key-file", str(path)]) == 2
    assert "--key-file" in capsys.readouterr().err


def test_key_and_key_file_together_are_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(["--attach", URL, "--key", "k", "--key-file", "f"])
    assert caught.value.code == 2
