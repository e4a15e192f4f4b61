"""`llmproxy-tui`: parse the command line, load the config, then run headless or with the dashboard.

Textual is imported only when the dashboard is wanted, so `--no-tui` stays light. Exit codes:
0 clean stop, 2 config or usage error (one readable message, also an address that cannot be
used), 3 the port is taken.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib.metadata
import logging
import os
import signal
import sys
from pathlib import Path
from typing import NoReturn

from proxy.config.loader import find_config
from proxy.config.source import ConfigSource
from proxy.config.types import Config
from proxy.errors import ConfigError
from proxy.observe.log_format import PrivateRotatingFileHandler, SafeFormatter
from proxy.store.usage_sqlite import PRIVATE_DIR

EXIT_OK, EXIT_CONFIG, EXIT_PORT = 0, 2, 3
log = logging.getLogger("llmproxy")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_CONFIG, f"llmproxy-tui: error: {message}\n")


def _port(text: str) -> int:
    """Returns the port number. Raises: argparse.ArgumentTypeError outside 0-65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535, got {port}")
    return port


def _version() -> str:
    try:
        return importlib.metadata.version("llmproxy-tui")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="llmproxy-tui",
        description="A fast LLM proxy (LiteLLM config compatible) with a terminal dashboard.",
        epilog="also: `llmproxy-tui keys --help` (virtual keys), `llmproxy-tui spend --help` "
        "(spend by key, group, client or day)",
    )
    p.add_argument(
        "--config",
        help="LiteLLM config.yaml (default: $LLMPROXY_CONFIG, "
        "./config.yaml, ~/.litellm/config.yaml, else the built-in demo)",
    )
    p.add_argument("--env-file", help=".env to load (default: beside the config, else ./.env)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    p.add_argument("--port", type=_port, default=4000, help="port to listen on (4000)")
    p.add_argument("--no-tui", action="store_true", help="headless server; logs to stderr")
    p.add_argument("--debug", action="store_true", help="log the request flow (never keys)")
    p.add_argument("--log-file", help="also write the log to this file (rotated at 10 MiB, 5 kept)")
    p.add_argument("--version", action="version", version=f"llmproxy-tui {_version()}")
    p.add_argument("--usage-db", help="SQLite usage store (default ~/.llmproxy/usage.db)")
    p.add_argument(
        "--attach", metavar="URL", help="show the dashboard of a proxy running elsewhere (headless)"
    )
    key = p.add_mutually_exclusive_group()
    key.add_argument(
        "--key",
        help="master key for --attach (shows in ps: prefer $LLMPROXY_KEY or --key-file; "
        "default $LLMPROXY_KEY, $LITELLM_MASTER_KEY)",
    )
    key.add_argument("--key-file", help="read the master key for --attach from this file")
    p.add_argument(
        "--check",
        action="store_true",
        help="validate the config, print the resolved groups and deployments, and exit",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if (sub := _subcommand(argv)) is not None:  # `keys ...`, `spend ...`
        at, name = sub
        rest = argv[:at] + argv[at + 1 :]
        if name == "keys":
            from tui import keys_cli

            return keys_cli.main(rest)
        from tui import spend_cli

        return spend_cli.main(rest)
    args = build_parser().parse_args(argv)
    if args.attach:
        from tui.launch import run_attach

        try:
            key = _attach_key(args)
        except ConfigError as exc:
            print(f"llmproxy-tui: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        return run_attach(args.attach, key)
    try:
        config = _load(args)
    except ConfigError as exc:
        print(f"llmproxy-tui: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.check:
        from tui.check import print_check

        print_check(config)
        return EXIT_OK
    from proxy.http.server import is_loopback

    if not is_loopback(args.host) and config.master_key is None:
        print(
            f"llmproxy-tui: refusing to listen on {args.host} without a master key: set "
            "general_settings.master_key (e.g. os.environ/LITELLM_MASTER_KEY) or use "
            "--host 127.0.0.1",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    return _serve(args, config)


SUBCOMMANDS = ("keys", "spend")
_VALUED = {"--config", "--env-file", "--host", "--port", "--log-file", "--usage-db", "--attach",
           "--key", "--key-file"}  # fmt: skip


def _subcommand(argv: list[str]) -> tuple[int, str] | None:
    """Returns: (where, name) of a `keys` / `spend` subcommand in argv, after any global
    options, or None."""
    skip = False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
        elif arg.startswith("-"):
            skip = arg in _VALUED
        else:
            return (i, arg) if arg in SUBCOMMANDS else None
    return None


def _attach_key(args: argparse.Namespace) -> str | None:
    """Returns: the master key for --attach: --key-file, --key, $LLMPROXY_KEY, or
    $LITELLM_MASTER_KEY. --key is honoured with a warning: any user can read it in `ps`.

    Raises:
        ConfigError: --key-file cannot be read or is empty.
    """
    if args.key_file:
        path = Path(args.key_file).expanduser()
        try:
            key = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or "not a text file"
            raise ConfigError(f"--key-file {path}: cannot read it ({reason})") from None
        if not key:
            raise ConfigError(f"--key-file {path}: the file is empty")
        return key
    if args.key:
        print(
            "llmproxy-tui: warning: --key shows the master key to every user of this machine "
            "(ps, /proc); use $LLMPROXY_KEY or --key-file instead",
            file=sys.stderr,
        )
        return str(args.key)
    return os.environ.get("LLMPROXY_KEY") or os.environ.get("LITELLM_MASTER_KEY")


def _load(args: argparse.Namespace) -> Config:
    path, demo = find_config(args.config)
    if not demo and not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    # The source remembers which variables its .env set, so a reload may change those.
    args.config_source = source = ConfigSource(path, args.env_file, demo=demo)
    return source.load()


def _usage_db(args: argparse.Namespace) -> Path:
    if args.usage_db:
        return Path(args.usage_db).expanduser()
    home = Path.home() / ".llmproxy"
    with contextlib.suppress(OSError):  # else the usage store reports why it cannot open
        home.mkdir(mode=PRIVATE_DIR, exist_ok=True)
        if home.stat().st_mode & 0o077:
            home.chmod(PRIVATE_DIR)  # an older release made it 0755
    return home / "usage.db"


def _serve(args: argparse.Namespace, config: Config) -> int:
    from proxy.http.server import ProxyServer
    from proxy.runtime import Runtime

    try:
        _setup_logging(args, stream=args.no_tui)
    except OSError as exc:
        print(
            f"llmproxy-tui: cannot open --log-file {args.log_file}: {exc.strerror}", file=sys.stderr
        )
        return EXIT_CONFIG
    try:
        runtime = Runtime(config, usage_db=_usage_db(args), source=args.config_source)
    except ConfigError as exc:  # e.g. a setting whose optional package is not installed
        print(f"llmproxy-tui: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    server = ProxyServer(runtime, args.host, args.port)
    if args.no_tui:
        # Log records also go on the event bus, so --attach clients see them in their Log pane.
        from proxy.events import BusLogHandler

        logging.getLogger().addHandler(BusLogHandler(runtime.bus))
        return _run_headless(server, config)
    from tui.launch import run_local

    # The dashboard's proxy serves off the main thread, so SIGHUP is caught here for it.
    signal.signal(signal.SIGHUP, lambda *_: _on_sighup(server))
    label = "built-in demo config" if config.demo else str(config.path)
    return run_local(runtime, server, config_label=label, demo=config.demo)


def _on_sighup(server: object) -> None:
    """The dashboard's SIGHUP: a reload of its proxy, unless the terminal hung up (closed
    window, lost ssh session): then it ends the process, as SIGHUP always did."""
    from proxy.http.server import ProxyServer

    assert isinstance(server, ProxyServer)
    try:
        os.tcgetpgrp(sys.__stdin__.fileno() if sys.__stdin__ else 0)
    except (OSError, ValueError):  # EIO: the terminal is gone
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGHUP)
        return
    server.reload_soon("SIGHUP")


def _run_headless(server: object, config: Config) -> int:
    from proxy.http.server import ProxyServer

    assert isinstance(server, ProxyServer)
    for warning in config.warnings:
        log.warning("config: %s", warning)
    if config.demo:
        log.warning("no config found: running the built-in demo config (mock models, no keys)")
    # uvicorn re-raises the signal it caught once it has shut down; these handlers make that a
    # no-op so a SIGTERM/SIGINT stop ends with exit 0 after the graceful shutdown.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    server.run()
    error = server.bind_error
    if error is not None:
        print(
            f"llmproxy-tui: cannot listen on {server.host}:{server.port}: "
            f"{error.strerror or error}",
            file=sys.stderr,
        )
        return EXIT_PORT if error.errno == errno.EADDRINUSE else EXIT_CONFIG
    return EXIT_OK


def _setup_logging(args: argparse.Namespace, *, stream: bool) -> None:
    handlers: list[logging.Handler] = []
    if stream:
        handlers.append(logging.StreamHandler(sys.stderr))
    if args.log_file:
        path = Path(args.log_file).expanduser()
        handlers.append(PrivateRotatingFileHandler(str(path)))  # 0600, rotated by size
    fmt = SafeFormatter()
    root = logging.getLogger()
    for handler in handlers:
        handler.setFormatter(fmt)
        root.addHandler(handler)
    root.setLevel(logging.DEBUG if args.debug else logging.INFO)
    for noisy in ("httpx", "httpcore", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
