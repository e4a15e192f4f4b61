"""How log lines are written (stderr, `--log-file`): client values cut, control characters
escaped, so no client string can forge a log line or reach the operator's terminal as an escape
sequence.

A record is one line at column 0; anything of it on further lines (a traceback) is indented, so
a newline in a client value can never start a line that looks like a record of its own.
"""

from __future__ import annotations

import io
import logging
import logging.handlers
import os
import re
from typing import Any

MAX_VALUE_CHARS = 4096
"""A string argument of a log call longer than this is cut in its middle (its head and tail
stay: a model name's start, a traceback's exception line)."""
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# C0 and C1 controls but newline, DEL, line/paragraph separators, zero-width and bidi controls.
_UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")


def escape(text: str) -> str:
    """Returns: `text` with every control character (newline aside) as `\\xNN` or `\\uNNNN`."""
    return _UNSAFE.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def cut(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    """Returns: `text`, or its head and tail around a `…[N chars cut]…` mark when longer."""
    if len(text) <= limit:
        return text
    head, tail = limit // 2, limit // 4
    return f"{text[:head]}…[{len(text) - head - tail} chars cut]…{text[-tail:]}"


def fold(text: str) -> str:
    """Returns: `text` with every line after the first indented (two spaces unless it already
    starts with whitespace), so only a new record starts at column 0."""
    if "\n" not in text:
        return text
    first, *rest = text.split("\n")
    return "\n".join([first, *(ln if ln[:1] in (" ", "\t") else "  " + ln for ln in rest)])


class SafeFormatter(logging.Formatter):
    """The log format of every handler the CLI installs: values cut, controls escaped, folded."""

    def __init__(self, fmt: str = FORMAT) -> None:
        super().__init__(fmt)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        return escape(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging's name
        return escape(super().formatException(ei))

    def format(self, record: logging.LogRecord) -> str:
        if record.args:  # a copy: other handlers (the Log pane) see the record as logged
            record = logging.makeLogRecord({**record.__dict__, "args": _cut_args(record.args)})
        return fold(super().format(record))


def _cut_args(args: Any) -> Any:
    if isinstance(args, tuple):
        return tuple(cut(a) if isinstance(a, str) else a for a in args)
    if isinstance(args, dict):
        return {k: cut(v) if isinstance(v, str) else v for k, v in args.items()}
    return args


LOG_FILE_BYTES = 10 * 1024 * 1024
"""`--log-file` rotates at this size..."""
LOG_FILE_BACKUPS = 5
"""...keeping this many older files (`.1` the newest), so it never fills the disk."""


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A size-rotated log file whose every generation is created readable by its owner only
    (the log names clients, models and deployments)."""

    def __init__(
        self, path: str, *, max_bytes: int = LOG_FILE_BYTES, backups: int = LOG_FILE_BACKUPS
    ) -> None:
        super().__init__(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")

    def _open(self) -> io.TextIOWrapper:
        fd = os.open(self.baseFilename, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
        return open(fd, "a", encoding=self.encoding)  # noqa: SIM115 - the handler closes it
