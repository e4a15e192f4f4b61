"""`llmproxy-tui spend [--by key|group|client|day] [--since 7d] [--json|--csv]`: what was spent
today, in the last 7 and 30 days, per virtual key, group, client or day, read from the local
usage store (SQLite read-only, or PostgreSQL) or from a running proxy (`--attach URL`).

Also the options and errors `keys` shares: where the store is, how to reach a running proxy.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import sqlite3
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import httpx
from rich.console import Console
from rich.table import Table
from rich.text import Text

from proxy import durations
from proxy.config.types import Config
from proxy.errors import ConfigError
from proxy.store import spend

EXIT_OK, EXIT_USAGE = 0, 2
HTTP_TIMEOUT = 15.0


class CliError(Exception):
    """A failure shown as one line (`llmproxy-tui: ...`) with exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    """Returns: a parser whose usage errors exit 2, with the store and --attach options."""
    p = _Parser(prog=prog, description=description)
    add_store_options(p)
    return p


def add_store_options(p: argparse.ArgumentParser, *, suppress: bool = False) -> None:
    """Adds --config, --env-file, --usage-db, --attach, --key and --key-file to `p`.

    Args:
        suppress: no defaults (a subcommand's copy, which must not reset what the options
            before the subcommand set).
    """
    extra: dict[str, Any] = {"default": argparse.SUPPRESS} if suppress else {}
    p.add_argument(
        "--config", help="LiteLLM config.yaml (the server's lookup when omitted)", **extra
    )
    p.add_argument(
        "--env-file", help=".env to load (default: beside the config, else ./.env)", **extra
    )
    p.add_argument("--usage-db", help="SQLite usage store (default ~/.llmproxy/usage.db)", **extra)
    p.add_argument("--attach", metavar="URL", help="work on a running proxy instead", **extra)
    key = p.add_mutually_exclusive_group()
    key.add_argument("--key", help="master key for --attach (default $LLMPROXY_KEY)", **extra)
    key.add_argument("--key-file", help="read the master key for --attach from this file", **extra)


@dataclass(frozen=True)
class Store:
    """Where a command reads and writes: a running proxy, or the local store of a config."""

    attach: str | None = None
    master_key: str | None = None
    config: Config | None = None
    usage_db: Path | None = None


def open_store(args: argparse.Namespace) -> Store:
    """Returns: the running proxy of --attach, else the config and usage file.

    Raises:
        CliError: the config or --key-file cannot be read.
    """
    from tui import cli

    try:
        if args.attach:
            key = cli._attach_key(args)
            return Store(attach=str(args.attach).rstrip("/"), master_key=key)
        config = cli._load(args)
    except ConfigError as exc:
        raise CliError(f"config error: {exc}") from None
    return Store(config=config, usage_db=cli._usage_db(args))


def http_client(store: Store) -> httpx.AsyncClient:
    """Returns: a client for the proxy of --attach, sending its master key."""
    headers = {"authorization": f"Bearer {store.master_key}"} if store.master_key else {}
    return httpx.AsyncClient(base_url=store.attach or "", headers=headers, timeout=HTTP_TIMEOUT)


def answer_json(response: httpx.Response) -> Any:
    """Returns: the JSON of a 2xx answer.

    Raises:
        CliError: any other status, with the proxy's error message (never the key).
    """
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.is_success and body is not None:
        return body
    message = ""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            message = str(error.get("message") or "")
        elif isinstance(body.get("detail"), str):
            message = body["detail"]
    if response.status_code == 401:
        message = message or "missing or wrong master key"
        message += " (set $LLMPROXY_KEY or --key-file to the proxy's master key)"
    raise CliError(f"the proxy answered {response.status_code}: {message[:300]}")


def transport_error(store: Store, exc: httpx.HTTPError) -> CliError:
    """Returns: the one-line error for a proxy that cannot be reached."""
    return CliError(f"cannot reach {store.attach}: {type(exc).__name__}")


def fail(message: str) -> int:
    """Prints `llmproxy-tui: message` to stderr. Returns: the exit code 2."""
    print(f"llmproxy-tui: {message}", file=sys.stderr)
    return EXIT_USAGE


# --- spend ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = parser("llmproxy-tui spend", "What was spent today, in 7 and 30 days, and in total.")
    p.add_argument("--by", choices=spend.DIMENSIONS, default="key", help="rows per (key)")
    p.add_argument("--since", default="30d", help="oldest requests counted (30d; 7d, 90d, 1h)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the rows as JSON")
    out.add_argument("--csv", action="store_true", help="print the rows as CSV")
    return p


def main(argv: Sequence[str]) -> int:
    """Runs `llmproxy-tui spend`. Returns: the exit code."""
    args = build_parser().parse_args(list(argv))
    try:
        window = durations.seconds(args.since)
    except ValueError as exc:
        return fail(f"--since: {exc}")
    try:
        store = open_store(args)
        rows = asyncio.run(fetch_rows(store, args.by, window))
    except CliError as exc:
        return fail(str(exc))
    print_rows(rows, args.by, as_json=args.json, as_csv=args.csv)
    return EXIT_OK


async def fetch_rows(store: Store, by: str, window: float) -> list[dict[str, Any]]:
    """Returns: the report's rows (`SpendRow.as_dict`).

    Raises:
        CliError: the store or the proxy cannot be read.
    """
    if store.attach:
        async with http_client(store) as client:
            try:
                response = await client.get(
                    "/llmproxy/spend", params={"by": by, "since": f"{max(1, round(window))}s"}
                )
            except httpx.HTTPError as exc:
                raise transport_error(store, exc) from None
        document = answer_json(response)
        return list(document.get("rows") or [])
    now = time.time()
    return [
        row.as_dict(by) for row in spend.report(await local_rows(store, by, now - window), by, now)
    ]


async def local_rows(store: Store, by: str, since: float) -> list[tuple[Any, ...]]:
    """Returns: the per-day sums of the local store (see `spend.read_sqlite`).

    Raises:
        CliError: the store cannot be read.
    """
    assert store.config is not None
    url = store.config.database_url
    if url is not None and url.reveal().startswith(("postgresql://", "postgres://")):
        try:
            return await spend.read_postgres(url.reveal(), (by,), since)
        except ImportError:
            raise CliError(
                "database_url is PostgreSQL: pip install 'llmproxy-tui[scale]'"
            ) from None
        except Exception as exc:  # asyncpg's errors and OSError: one line, no traceback
            raise CliError(f"cannot read the usage database: {type(exc).__name__}: {exc}") from None
    path = store.usage_db
    assert path is not None
    try:
        rows = await asyncio.to_thread(spend.read_sqlite, path, (by,), since)
    except sqlite3.Error as exc:
        raise CliError(f"cannot read the usage store {path}: {exc}") from None
    return rows or []


def plain(value: Any, limit: int = 120) -> Text:
    """Returns: a client- or operator-chosen string as plain text (never markup), its control
    characters escaped and cut to `limit`."""
    text = "" if value is None else str(value)
    text = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text[:limit])
    return Text(text)


def _money(value: float) -> str:
    return f"${value:,.4f}"


def print_rows(
    rows: list[dict[str, Any]], by: str, *, as_json: bool = False, as_csv: bool = False
) -> None:
    """Prints the rows as a table, JSON or CSV on stdout."""
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    columns = [by, "requests", "tokens_in", "tokens_out", "today", "last_7d", "last_30d", "total"]
    if as_csv:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        sys.stdout.write(out.getvalue())
        return
    table = Table(title=f"Spend by {by} (USD)", title_justify="left")
    table.add_column(by, overflow="fold")
    for label in ("requests", "tokens in", "tokens out"):
        table.add_column(label, justify="right")
    money = ["total"] if by == "day" else ["today", "7 days", "30 days", "total"]
    for label in money:
        table.add_column(label, justify="right")
    for row in rows:
        cells: list[Text | str] = [plain(row.get(by, ""))]
        cells += [f"{int(row.get(k) or 0):,}" for k in ("requests", "tokens_in", "tokens_out")]
        keys = ["total"] if by == "day" else ["today", "last_7d", "last_30d", "total"]
        cells += [_money(float(row.get(k) or 0.0)) for k in keys]
        table.add_row(*cells)
    if not rows:
        table.caption = "no requests in this window"
    width = None if os.isatty(1) else 120
    Console(width=width, markup=False, highlight=False).print(table)
