"""`KeyAdmin`: LiteLLM's virtual key management (`/key/generate`, `/key/info`, `/key/update`,
`/key/delete`, `/key/list`, `/key/block`, `/key/unblock`) with LiteLLM's request and response
fields, for the HTTP routes and for the command line (`KeyAdmin.local`, no proxy running).

A generated key is shown once, in the answer of `generate`; the store keeps its SHA-256 and a
redacted name only. Every store call runs in a thread.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from proxy import durations
from proxy.access.book import VirtualKeys
from proxy.config.types import Config
from proxy.errors import BadRequest, ProxyError, clip
from proxy.store.virtual_keys import (
    KeyExistsError,
    KeyRow,
    KeyStore,
    hash_key,
    redacted_name,
    store_for,
)

KEY_BYTES = 24
"""Random bytes of a generated key (`sk-` + 32 urlsafe characters)."""
MAX_ALIAS = 200
MAX_MODELS = 200
MAX_METADATA = 16 * 1024
"""Characters of a key's metadata, as JSON."""
DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 10, 100
ECHOED = ("user_id", "team_id", "organization_id", "tags", "aliases", "config")
"""LiteLLM fields accepted (so scripts written for it work) and echoed back, not enforced."""


class KeyAdmin:
    """The management operations on the key store (and on a running book, when given)."""

    def __init__(
        self,
        store: KeyStore,
        book: VirtualKeys | None,
        config: Config,
        *,
        clock: Callable[[], float] = time.time,
        owns_store: bool = False,
    ) -> None:
        """Args:
        store: where keys are kept.
        book: the running proxy's book, updated at once by every change (None: the
            command line; a running proxy on the same store sees changes within a second).
        config: the proxy's config (its master key may not become a virtual key).
        clock: wall time.
        owns_store: `aclose` closes the store.
        """
        self.store = store
        self.book = book
        self.config = config
        self._clock = clock
        self._owns = owns_store

    @classmethod
    def local(cls, config: Config, usage_db: Path | None) -> KeyAdmin:
        """Returns: an admin on the store of `config` (PostgreSQL with `database_url`, else
        the SQLite file `usage_db`), for the command line; close it with `aclose()`."""
        url = config.database_url.reveal() if config.database_url else None
        return cls(store_for(url, usage_db), None, config, owns_store=True)

    async def aclose(self) -> None:
        """Closes the store if this admin opened it."""
        if self._owns:
            await asyncio.to_thread(self.store.close)

    # ---- operations ----
    async def generate(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /key/generate: a new key.

        Returns:
            LiteLLM's answer: `key` (shown this once), `key_name`, `token` (its hash) and
            the key's fields.

        Raises:
            BadRequest: a field is wrong (named), or the alias or custom key is taken.
        """
        body = _object(body)
        now = self._clock()
        key = body.get("key")
        if key is None:
            key = "sk-" + secrets.token_urlsafe(KEY_BYTES)
        elif not isinstance(key, str) or not key.startswith("sk-") or len(key) < 8:
            raise BadRequest(
                "'key' (a custom key) must be a string starting with 'sk-', 8 characters or more.",
                param="key",
            )
        master = self.config.master_key
        if master is not None and master.matches(key):
            raise BadRequest("'key' may not be the master key.", param="key")
        fields = _fields(body, now, creating=True)
        row = KeyRow(
            token=hash_key(key),
            key_name=redacted_name(key),
            created_at=now,
            updated_at=now,
            **fields,
        )
        if row.key_alias is not None:
            await self._alias_free(row.key_alias, None)
        try:
            await asyncio.to_thread(self.store.insert, row)
        except KeyExistsError:
            raise BadRequest("'key': that key already exists.", param="key") from None
        if self.book is not None:
            self.book.put(row)
        answer = {**_echo(body), **self._describe(row), "key": key}
        answer["duration"] = body.get("duration")
        return answer

    async def info(self, key: str | None) -> dict[str, Any]:
        """GET /key/info?key=...: a key's fields and spend.

        Args:
            key: the key itself (`sk-...`) or its token (hash).

        Raises:
            BadRequest: no key given. ProxyError: 404, no such key.
        """
        row = await self._find(key, "key")
        return {"key": key, "info": self._describe(row)}

    async def update(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /key/update: changes the fields given (`duration` restarts the expiry from
        now; a new `budget_duration` starts a new window).

        Returns:
            The key's fields after the change, with `key` as given.

        Raises:
            BadRequest: a field is wrong. ProxyError: 404, no such key.
        """
        body = _object(body)
        row = await self._find(body.get("key"), "key")
        now = self._clock()
        changes = _fields(body, now, creating=False)
        if "key_alias" in changes and changes["key_alias"] is not None:
            await self._alias_free(changes["key_alias"], row.token)
        if "budget_duration" in changes:
            duration = changes["budget_duration"]
            changes["budget_reset_at"] = (
                None if duration is None else durations.window_end(duration, now)
            )
        changes["updated_at"] = now
        if not await asyncio.to_thread(self.store.update, row.token, changes):
            raise _not_found(body.get("key"))
        updated = row.with_fields(**changes)
        if "spend" not in changes:
            updated = updated.with_fields(spend=self._spend(updated)[0])
        if self.book is not None:
            self.book.put(updated, spend_set="spend" in changes)
        return {**_echo(body), **self._describe(updated), "key": body.get("key")}

    async def delete(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /key/delete: `{"keys": [...]}` (keys or tokens) and/or `{"key_aliases": [...]}`.

        Returns:
            `{"deleted_keys": [...]}`, as given.

        Raises:
            BadRequest: neither list given. ProxyError: 404, one of them is unknown (nothing
            is deleted then).
        """
        body = _object(body)
        keys = _strings(body, "keys")
        aliases = _strings(body, "key_aliases")
        if not keys and not aliases:
            raise BadRequest("Give 'keys' (a list of keys) or 'key_aliases'.", param="keys")
        rows = await asyncio.to_thread(self.store.load)
        by_token = {r.token: r for r in rows}
        by_alias = {r.key_alias: r for r in rows if r.key_alias}
        tokens = []
        for key in keys:
            token = token_of(key)
            if token not in by_token:
                raise _not_found(key)
            tokens.append(token)
        for alias in aliases:
            if alias not in by_alias:
                raise ProxyError(
                    f"No key has the alias '{clip(alias)}'.",
                    status=404,
                    type="not_found_error",
                    param="key_aliases",
                    code="key_not_found",
                )
            tokens.append(by_alias[alias].token)
        await asyncio.to_thread(self.store.delete, tokens)
        if self.book is not None:
            self.book.remove(tokens)
        return {"deleted_keys": [*keys, *aliases]}

    async def list(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """GET /key/list: `page` (from 1), `size` (1 to 100), `key_alias`,
        `return_full_object`.

        Returns:
            `{"keys": [...], "total_count", "current_page", "total_pages"}`: tokens, or the
            keys' fields with `return_full_object=true`.

        Raises:
            BadRequest: `page` or `size` is not a positive number.
        """
        page = _positive_int(params.get("page"), "page", 1)
        size = min(_positive_int(params.get("size"), "size", DEFAULT_PAGE_SIZE), MAX_PAGE_SIZE)
        rows = sorted(await asyncio.to_thread(self.store.load), key=lambda r: r.created_at)
        alias = params.get("key_alias")
        if alias:
            rows = [r for r in rows if r.key_alias == alias]
        full = str(params.get("return_full_object", "")).lower() in ("true", "1", "yes")
        chunk = rows[(page - 1) * size : page * size]
        return {
            "keys": [self._describe(r) if full else r.token for r in chunk],
            "total_count": len(rows),
            "current_page": page,
            "total_pages": max(1, math.ceil(len(rows) / size)),
        }

    async def block(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /key/block `{"key": ...}`. Returns: the key's fields. Raises: 404."""
        return await self._set_blocked(body, True)

    async def unblock(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /key/unblock `{"key": ...}`. Returns: the key's fields. Raises: 404."""
        return await self._set_blocked(body, False)

    # ---- helpers ----
    async def _set_blocked(self, body: dict[str, Any], blocked: bool) -> dict[str, Any]:
        body = _object(body)
        row = await self._find(body.get("key"), "key")
        now = self._clock()
        await asyncio.to_thread(
            self.store.update, row.token, {"blocked": blocked, "updated_at": now}
        )
        updated = row.with_fields(blocked=blocked, updated_at=now)
        updated = updated.with_fields(spend=self._spend(updated)[0])
        if self.book is not None:
            self.book.put(updated)
        return self._describe(updated)

    async def _find(self, key: object, param: str) -> KeyRow:
        if not isinstance(key, str) or not key.strip():
            raise BadRequest(f"'{param}' is required: the key (sk-...) or its token.", param=param)
        row = await asyncio.to_thread(self.store.get, token_of(key.strip()))
        if row is None:
            raise _not_found(key)
        return row

    async def _alias_free(self, alias: str, token: str | None) -> None:
        rows = await asyncio.to_thread(self.store.load)
        if any(r.key_alias == alias and r.token != token for r in rows):
            raise BadRequest(
                f"'key_alias': another key is already named '{clip(alias)}'.", param="key_alias"
            )

    def _spend(self, row: KeyRow) -> tuple[float, float | None]:
        live = self.book.live_spend(row.token) if self.book is not None else None
        return live if live is not None else (row.spend, row.budget_reset_at)

    def _describe(self, row: KeyRow) -> dict[str, Any]:
        """Returns: a key's fields in LiteLLM's names (times as ISO 8601, UTC)."""
        spend, reset_at = self._spend(row)
        return {
            "token": row.token,
            "key_name": row.key_name,
            "key_alias": row.key_alias,
            "spend": spend,
            "max_budget": row.max_budget,
            "soft_budget": row.soft_budget,
            "budget_duration": row.budget_duration,
            "budget_reset_at": _iso(reset_at),
            "models": list(row.models),
            "rpm_limit": row.rpm_limit,
            "tpm_limit": row.tpm_limit,
            "max_parallel_requests": row.max_parallel_requests,
            "expires": _iso(row.expires),
            "metadata": dict(row.metadata),
            "blocked": row.blocked,
            "created_at": _iso(row.created_at),
            "updated_at": _iso(row.updated_at),
            "last_used": _iso(row.last_used),
        }


def _object(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object.")
    return body


def token_of(key: str) -> str:
    """Returns: the token of a key given as itself (`sk-...`) or as its token already."""
    is_token = len(key) == 64 and all(c in "0123456789abcdef" for c in key)
    return key if is_token else hash_key(key)


def _not_found(key: object) -> ProxyError:
    shown = redacted_name(key) if isinstance(key, str) else "?"
    return ProxyError(
        f"No such key ({shown}).",
        status=404,
        type="not_found_error",
        param="key",
        code="key_not_found",
    )


def _fields(body: Mapping[str, Any], now: float, *, creating: bool) -> dict[str, Any]:
    """Returns: the KeyRow fields `body` sets, checked (only those given when updating).

    Raises:
        BadRequest: a field of the wrong type or value, named.
    """
    out: dict[str, Any] = {}
    if "key_alias" in body:
        alias = body["key_alias"]
        if alias is not None and (not isinstance(alias, str) or not 0 < len(alias) <= MAX_ALIAS):
            raise BadRequest(f"'key_alias' must be a string of 1 to {MAX_ALIAS} characters.",
                             param="key_alias")  # fmt: skip
        out["key_alias"] = alias
    if "models" in body:
        models = body["models"]
        if models is None:
            models = []
        if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
            raise BadRequest("'models' must be a list of model names.", param="models")
        if len(models) > MAX_MODELS:
            raise BadRequest(f"'models' takes at most {MAX_MODELS} names.", param="models")
        out["models"] = tuple(models)
    for name in ("max_budget", "soft_budget", "spend"):
        if name in body:
            value = body[name]
            if name == "spend" and value is None:
                value = 0.0
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value < 0
            ):
                raise BadRequest(f"'{name}' must be a number of USD, 0 or more.", param=name)
            out[name] = None if value is None else float(value)
    for name in ("rpm_limit", "tpm_limit", "max_parallel_requests"):
        if name in body:
            value = body[name]
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):
                raise BadRequest(f"'{name}' must be a whole number, 0 or more.", param=name)
            out[name] = value
    if "budget_duration" in body:
        duration = body["budget_duration"]
        if duration is not None:
            duration = _duration(duration, "budget_duration")
        out["budget_duration"] = duration
        if creating:
            out["budget_reset_at"] = (
                None if duration is None else durations.window_end(duration, now)
            )
    if "duration" in body:
        duration = body["duration"]
        out["expires"] = (
            None if duration is None else durations.window_end(_duration(duration, "duration"), now)
        )
    if "metadata" in body:
        metadata = body["metadata"]
        if metadata is None:
            metadata = {}
        if not isinstance(metadata, dict):
            raise BadRequest("'metadata' must be an object.", param="metadata")
        if len(repr(metadata)) > MAX_METADATA:
            raise BadRequest(f"'metadata' is larger than {MAX_METADATA} characters.",
                             param="metadata")  # fmt: skip
        out["metadata"] = metadata
    if "blocked" in body:
        blocked = body["blocked"]
        if blocked is not None and not isinstance(blocked, bool):
            raise BadRequest("'blocked' must be true or false.", param="blocked")
        out["blocked"] = bool(blocked)
    return out


def _duration(value: object, name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise BadRequest(f"'{name}' must be a duration such as 30s, 1h, 1d, 30d or 1mo.",
                         param=name)  # fmt: skip
    try:
        durations.parse(value)
    except durations.DurationError as exc:
        raise BadRequest(f"'{name}': {exc}", param=name) from None
    return str(value)


def _strings(body: Mapping[str, Any], name: str) -> list[str]:
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise BadRequest(f"'{name}' must be a list of strings.", param=name)
    return value


def _positive_int(value: object, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    text = str(value).strip()
    if not text.isdigit() or int(text) < 1:
        raise BadRequest(f"'{name}' must be a whole number, 1 or more.", param=name)
    return int(text)


def _echo(body: Mapping[str, Any]) -> dict[str, Any]:
    return {name: body[name] for name in ECHOED if name in body}


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat()
