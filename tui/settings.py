"""The dashboard's own settings (the theme chosen with `T`), kept between runs in a small JSON
file: `$LLMPROXY_TUI_CONFIG_DIR/settings.json`, else `$XDG_CONFIG_HOME/llmproxy-tui/`, else
`~/.config/llmproxy-tui/`; the file is created 0600, its directory 0700. Reading and writing
are blocking: the app reads the file once, before its event loop runs (the launcher builds it
first), and writes it in a thread."""

from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

CONFIG_DIR_ENV = "LLMPROXY_TUI_CONFIG_DIR"
"""Where the settings file lives (tests point it at a temporary directory)."""
FILE_NAME = "settings.json"
MAX_BYTES = 64 * 1024
"""A settings file larger than this is not ours: it is ignored."""


@dataclass(frozen=True)
class Settings:
    """What the dashboard remembers."""

    theme: str | None = None
    """The Textual theme last chosen; None: the default."""


def settings_path() -> Path:
    """Returns the settings file's path (see the module's docstring)."""
    base = os.environ.get(CONFIG_DIR_ENV)
    if base:
        return Path(base) / FILE_NAME
    xdg = os.environ.get("XDG_CONFIG_HOME")
    root = Path(xdg) if xdg else Path.home() / ".config"
    return root / "llmproxy-tui" / FILE_NAME


def load(path: Path) -> Settings:
    """Returns the settings in `path`; the defaults when it is missing, unreadable or not ours.

    Args:
        path: the settings file.
    Returns:
        The settings (never raises for a bad file: a dashboard must start anyway).
    """
    try:
        if path.stat().st_size > MAX_BYTES:
            return Settings()
        doc = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return Settings()
    if not isinstance(doc, dict):
        return Settings()
    theme = doc.get("theme")
    return Settings(theme=theme if isinstance(theme, str) and len(theme) <= 64 else None)


def save(path: Path, settings: Settings) -> None:
    """Writes `settings` to `path` (0600, replaced atomically; its directory made 0700).

    Args:
        path: the settings file.
        settings: what to keep.
    Raises:
        OSError: the file or its directory cannot be written.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), 0o600)  # an old partial file may have had other modes
            out.write(orjson.dumps(asdict(settings), option=orjson.OPT_INDENT_2))
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
