"""`llmproxy-tui keys {create,list,show,update,block,unblock,delete}`: virtual keys on the local
store (`KeyAdmin.local`) or on a running proxy (`--attach URL`, LiteLLM's `/key/*` routes with
the master key). A key is printed once, when it is created; everywhere else only its redacted
name (`sk-...abcd`) shows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

import httpx
from rich.console import Console
from rich.table import Table
from rich.text import Text

from proxy.errors import ProxyError
from tui.spend_cli import (
    EXIT_OK,
    CliError,
    Store,
    add_store_options,
    answer_json,
    fail,
    http_client,
    open_store,
    parser,
    plain,
    transport_error,
)

PAGE_SIZE = 100
SHOWN = (
    "key_alias", "key_name", "token", "spend", "max_budget", "soft_budget", "budget_duration",
    "budget_reset_at", "models", "rpm_limit", "tpm_limit", "max_parallel_requests", "expires",
    "blocked", "metadata", "created_at", "updated_at", "last_used",
)  # fmt: skip
"""What `show` prints, in this order (never the key itself)."""


class KeyApi(Protocol):
    """The management operations, local or over HTTP, in LiteLLM's JSON shapes."""

    async def call(self, op: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Runs `op` (generate, info, update, delete, list, block, unblock).

        Raises:
            CliError: refused (the proxy's or the store's message) or unreachable.
        """
        ...

    async def aclose(self) -> None: ...


class LocalKeys:
    """The local store, through `proxy.access.admin.KeyAdmin.local`."""

    def __init__(self, store: Store) -> None:
        from proxy.access.admin import KeyAdmin

        assert store.config is not None
        self.admin = KeyAdmin.local(store.config, store.usage_db)

    async def call(self, op: str, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            if op == "info":
                return await self.admin.info(str(payload.get("key") or ""))
            if op == "list":
                return await self.admin.list(payload)
            method = getattr(self.admin, op)
            result: dict[str, Any] = await method(payload)
            return result
        except ProxyError as exc:
            raise CliError(exc.message) from None
        except (OSError, RuntimeError) as exc:  # the store cannot be opened
            raise CliError(f"cannot use the key store: {exc}") from None

    async def aclose(self) -> None:
        await self.admin.aclose()


class RemoteKeys:
    """A running proxy's `/key/*` routes."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.client = http_client(store)

    async def call(self, op: str, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            if op in ("info", "list"):
                params = {
                    k: str(v).lower() if isinstance(v, bool) else v for k, v in payload.items()
                }
                response = await self.client.get(f"/key/{op}", params=params)
            else:
                response = await self.client.post(f"/key/{op}", json=payload)
        except httpx.HTTPError as exc:
            raise transport_error(self.store, exc) from None
        body = answer_json(response)
        if not isinstance(body, dict):
            raise CliError(f"/key/{op}: the proxy's answer is not a JSON object")
        return body

    async def aclose(self) -> None:
        await self.client.aclose()


# --- the command line -------------------------------------------------------------------


def _limits(p: argparse.ArgumentParser) -> None:
    p.add_argument("--alias", help="a name for the key (key_alias)")
    p.add_argument("--models", help="groups it may call, comma-separated (default: all)")
    p.add_argument("--max-budget", type=float, help="USD it may spend per budget window")
    p.add_argument("--budget-duration", help="the budget window: 30s, 1h, 1d, 30d, 1mo")
    p.add_argument("--soft-budget", type=float, help="USD at which an alert is raised")
    p.add_argument("--rpm", type=int, help="requests per minute (rpm_limit)")
    p.add_argument("--tpm", type=int, help="tokens per minute (tpm_limit)")
    p.add_argument("--parallel", type=int, help="requests in flight at once")
    p.add_argument("--duration", help="expires after this long (e.g. 90d)")
    p.add_argument("--metadata", help="a JSON object kept with the key")


def build_parser() -> argparse.ArgumentParser:
    p = parser("llmproxy-tui keys", "Virtual keys: one per person or agent, with budgets.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    create = sub.add_parser("create", help="create a key (printed once)")
    _limits(create)
    create.add_argument("--json", action="store_true", help="print the answer as JSON")
    listing = sub.add_parser("list", help="list the keys (redacted)")
    listing.add_argument("--json", action="store_true", help="print the keys as JSON")
    show = sub.add_parser("show", help="one key's fields and spend")
    show.add_argument("target", metavar="KEY_OR_ALIAS")
    show.add_argument("--json", action="store_true", help="print the fields as JSON")
    update = sub.add_parser("update", help="change a key's fields")
    update.add_argument("target", metavar="KEY_OR_ALIAS")
    _limits(update)
    update.add_argument("--blocked", choices=("true", "false"), help="block or unblock")
    update.add_argument("--json", action="store_true", help="print the fields as JSON")
    for name, text in (("block", "refuse the key's requests"), ("unblock", "serve it again")):
        command = sub.add_parser(name, help=text)
        command.add_argument("target", metavar="KEY_OR_ALIAS")
        command.add_argument("--json", action="store_true", help="print the fields as JSON")
    delete = sub.add_parser("delete", help="delete keys")
    delete.add_argument("target", metavar="KEY_OR_ALIAS", nargs="+")
    for command in sub.choices.values():  # the store options after the command work too
        add_store_options(command, suppress=True)
    return p


def main(argv: Sequence[str]) -> int:
    """Runs `llmproxy-tui keys ...`. Returns: the exit code."""
    args = build_parser().parse_args(list(argv))
    try:
        body = _fields(args) if args.command in ("create", "update") else {}
        store = open_store(args)
        return asyncio.run(_run(store, args, body))
    except CliError as exc:
        return fail(str(exc))


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    """Returns: the LiteLLM body fields the options set. Raises: CliError for --metadata."""
    names = {
        "alias": "key_alias", "max_budget": "max_budget", "budget_duration": "budget_duration",
        "soft_budget": "soft_budget", "rpm": "rpm_limit", "tpm": "tpm_limit",
        "parallel": "max_parallel_requests", "duration": "duration",
    }  # fmt: skip
    body: dict[str, Any] = {
        field: getattr(args, opt) for opt, field in names.items() if getattr(args, opt) is not None
    }
    if args.models is not None:
        body["models"] = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.metadata is not None:
        try:
            metadata = json.loads(args.metadata)
        except ValueError:
            raise CliError('--metadata: not JSON (e.g. \'{"team": "x"}\')') from None
        if not isinstance(metadata, dict):
            raise CliError("--metadata: must be a JSON object")
        body["metadata"] = metadata
    if getattr(args, "blocked", None) is not None:
        body["blocked"] = args.blocked == "true"
    return body


async def _run(store: Store, args: argparse.Namespace, body: dict[str, Any]) -> int:
    api: KeyApi = RemoteKeys(store) if store.attach else LocalKeys(store)
    try:
        return await _command(api, args, body)
    finally:
        await api.aclose()


async def _command(api: KeyApi, args: argparse.Namespace, body: dict[str, Any]) -> int:
    command = args.command
    if command == "create":
        answer = await api.call("generate", body)
        if args.json:
            print(json.dumps(answer, indent=2))
        else:
            _print_created(answer)
        return EXIT_OK
    if command == "list":
        keys = await all_keys(api)
        if args.json:
            print(json.dumps(keys, indent=2))
        else:
            print_table(keys)
        return EXIT_OK
    if command == "delete":
        tokens = [await resolve(api, key) for key in args.target]
        await api.call("delete", {"keys": tokens})
        print(f"deleted {len(tokens)} key{'s' if len(tokens) != 1 else ''}")
        return EXIT_OK
    token = await resolve(api, args.target)
    if command == "show":
        info = (await api.call("info", {"key": token})).get("info") or {}
    elif command == "update":
        if not body:
            raise CliError("update: give at least one field to change (see --help)")
        info = await api.call("update", {**body, "key": token})
    else:  # block, unblock
        info = await api.call(command, {"key": token})
    if getattr(args, "json", False):
        print(json.dumps({k: info.get(k) for k in SHOWN if k in info}, indent=2))
    else:
        print_fields(info)
    return EXIT_OK


async def all_keys(api: KeyApi) -> list[dict[str, Any]]:
    """Returns: every key's fields, page by page."""
    keys: list[dict[str, Any]] = []
    page = 1
    while True:
        answer = await api.call(
            "list", {"page": page, "size": PAGE_SIZE, "return_full_object": True}
        )
        keys += [k for k in answer.get("keys") or [] if isinstance(k, dict)]
        if page >= int(answer.get("total_pages") or 1):
            return keys
        page += 1


async def resolve(api: KeyApi, key_or_alias: str) -> str:
    """Returns: the key (as given, when it is one) or the token of the key with that alias.

    Raises:
        CliError: no key has that alias or token.
    """
    if key_or_alias.startswith("sk-"):
        return key_or_alias
    keys = await all_keys(api)
    for key in keys:
        if key.get("key_alias") == key_or_alias:
            return str(key["token"])
    matches = [k for k in keys if str(k.get("token", "")).startswith(key_or_alias)]
    if key_or_alias and len(matches) == 1:
        return str(matches[0]["token"])
    raise CliError(f"no virtual key has the alias or token {str(plain(key_or_alias, 60))!r}")


def _print_created(answer: dict[str, Any]) -> None:
    alias = answer.get("key_alias")
    print(f"key:   {answer.get('key')}")
    if alias:
        print(f"alias: {plain(alias)}")
    print(f"name:  {answer.get('key_name')}")
    print("This key is shown only once: store it now (keys list shows it redacted).")


def _console() -> Console:
    return Console(width=None if os.isatty(1) else 140, markup=False, highlight=False)


def _when(value: Any) -> str:
    """Returns: an ISO time (or unix time) as `2026-12-02 10:00`, or `-`."""
    if value in (None, ""):
        return "-"
    try:
        if isinstance(value, (int, float)):
            return datetime.fromtimestamp(value).strftime("%Y-%m-%d %H:%M")
        return datetime.fromisoformat(str(value)).strftime("%Y-%m-%d %H:%M")
    except (ValueError, OSError, OverflowError):
        return str(plain(value, 30))


def _budget(key: dict[str, Any]) -> str:
    spend = float(key.get("spend") or 0.0)
    budget = key.get("max_budget")
    return f"${spend:.4f}" + (f" / ${float(budget):.2f}" if budget is not None else "")


def print_table(keys: list[dict[str, Any]]) -> None:
    """Prints the keys as a table (redacted names only)."""
    table = Table(title="Virtual keys", title_justify="left")
    for label in ("alias", "key name", "spend / budget", "resets", "rpm", "blocked", "expires",
                  "last used"):  # fmt: skip
        table.add_column(label, justify="right" if label in ("rpm",) else "left")
    for key in keys:
        resets = _when(key.get("budget_reset_at"))
        if key.get("budget_duration") and resets != "-":
            resets += f" ({plain(key['budget_duration'], 10)})"
        table.add_row(
            plain(key.get("key_alias") or "-", 40),
            plain(key.get("key_name") or "-", 20),
            _budget(key),
            resets,
            str(key.get("rpm_limit") if key.get("rpm_limit") is not None else "-"),
            Text("blocked", style="red") if key.get("blocked") else "no",
            _when(key.get("expires")),
            _when(key.get("last_used")),
        )
    if not keys:
        table.caption = "no virtual keys: llmproxy-tui keys create --alias NAME"
    _console().print(table)


def print_fields(info: dict[str, Any]) -> None:
    """Prints one key's fields, one per line (never the key itself)."""
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for name in SHOWN:
        if name not in info:
            continue
        value = info[name]
        shown = json.dumps(value) if isinstance(value, (dict, list)) else value
        table.add_row(name, plain("-" if shown is None else shown, 400))
    _console().print(table)
