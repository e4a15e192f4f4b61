"""Exact-match response cache: the key over the answer-changing request fields, an in-memory
LRU store bounded by entries and bytes with per-entry TTL, and hit/miss/savings statistics.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

import orjson

from proxy.config.settings import CacheParams
from proxy.schema import ChatRequest, Usage

# Body fields that never change the answer: streaming is replayed from the whole answer, and
# the rest are bookkeeping. Everything else in the body is part of the key (see `key`).
EXCLUDED_FIELDS = frozenset(
    {"stream", "stream_options", "user", "metadata", "store", "cache", "api_key", "api_base",
     "base_url", "model"}
)  # fmt: skip
# The fields known to change the answer. They are in the key by name; unknown top-level fields
# are added too, because a field we do not know may well change the answer, and a needless
# miss is cheaper than a wrong hit.
ANSWER_FIELDS = (
    "messages", "tools", "tool_choice", "parallel_tool_calls", "functions", "function_call",
    "temperature", "top_p", "top_k", "max_tokens", "max_completion_tokens", "stop",
    "response_format", "seed", "n", "presence_penalty", "frequency_penalty", "logit_bias",
    "logprobs", "top_logprobs", "reasoning_effort", "reasoning", "thinking", "modalities",
    "audio", "prediction", "web_search_options", "verbosity", "service_tier",
    "input", "prompt", "suffix", "echo", "best_of", "dimensions", "encoding_format",
)  # fmt: skip
_HISTORY_MINUTES = 30


@dataclass(frozen=True)
class CachedAnswer:
    """One cached answer, in the non-stream form; streams are replayed from it."""

    body: bytes
    """The whole answer as an OpenAI `chat.completion` JSON."""
    usage: Usage | None
    cost: float | None
    """What it cost when first made (None: price unknown)."""
    deployment: str
    provider: str
    preview: str
    finish: str | None = None
    """Why the answer ended (OpenAI's finish_reason); None when unknown (an entry stored
    before it was kept)."""


@dataclass
class _Entry:
    answer: CachedAnswer
    expires: float
    size: int


def entry_size(key: str, answer: CachedAnswer) -> int:
    """Returns: the bytes an entry is charged against `max_bytes` (body, preview, key)."""
    return len(answer.body) + len(answer.preview.encode()) + len(key)


class _LocalStore:
    """LRU over an OrderedDict, bounded by entries and bytes. Callers hold the lock."""

    kind = "local"

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self._data: OrderedDict[str, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str, now: float) -> CachedAnswer | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry.expires <= now:
            self._remove(key)
            return None
        self._data.move_to_end(key)
        return entry.answer

    def put(self, key: str, answer: CachedAnswer, expires: float) -> None:
        size = entry_size(key, answer)
        if key in self._data:
            self._remove(key)
        if size > self.max_bytes:
            return
        # An exact-size copy: orjson's bytes keep a 4 KiB block each, so 10,000 small answers
        # held 40 MiB while charged 5 MiB against max_bytes.
        answer = replace(answer, body=bytes(memoryview(answer.body)))
        self._data[key] = _Entry(answer, expires, size)
        self.bytes += size
        while len(self._data) > self.max_entries or self.bytes > self.max_bytes:
            self._remove(next(iter(self._data)))

    def clear(self) -> int:
        count = len(self._data)
        self._data.clear()
        self.bytes = 0
        return count

    def _remove(self, key: str) -> None:
        self.bytes -= self._data.pop(key).size


class SharedStore(Protocol):
    """A store shared by several instances (Redis): async, its own bounds and timeouts."""

    kind: str

    async def get(self, key: str) -> CachedAnswer | None: ...
    async def put(self, key: str, answer: CachedAnswer, ttl: float) -> None: ...
    async def clear(self) -> int: ...
    async def close(self) -> None: ...
    def status(self) -> dict[str, Any]: ...


class ResponseCache:
    """The response cache the router consults. Thread-safe; async so Redis can share it."""

    def __init__(
        self,
        params: CacheParams,
        *,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], float] = time.time,
        shared: SharedStore | None = None,
    ) -> None:
        self.params = params
        self.shared = shared
        """When set (cache_params.type redis), entries live there instead of in memory."""
        self.clock = clock
        """Monotonic seconds for TTLs. A documented seam: tests may replace it."""
        self.now = now
        """Wall-clock seconds for the per-minute history. Tests may replace it."""
        self._store = _LocalStore(params.max_entries, params.max_bytes)
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.bypassed = 0
        self.tokens_saved = 0
        self.cost_saved = 0.0
        # [minute_ts, hits, misses], oldest first; the last 30 wall-clock minutes at most.
        self._minutes: deque[list[int]] = deque(maxlen=_HISTORY_MINUTES)

    @staticmethod
    def key(req: ChatRequest) -> str:
        """The cache key of a request: sha256 over its kind, group and answer-changing fields.

        Returns:
            64 hex characters.
        """
        fields = {name: req.body[name] for name in ANSWER_FIELDS if name in req.body}
        for name, value in req.body.items():
            if name not in EXCLUDED_FIELDS and name not in fields:
                fields[name] = value
        doc = {"kind": req.kind, "model": req.model, "body": fields}
        try:
            data = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
        except orjson.JSONEncodeError:  # e.g. an integer beyond 64 bits: still a stable key
            data = json.dumps(doc, sort_keys=True, default=repr).encode()
        return hashlib.sha256(data).hexdigest()

    async def get(self, key: str) -> CachedAnswer | None:
        """Looks `key` up, counting a hit or a miss; an expired entry is a miss and is removed.

        Returns:
            The cached answer, or None.
        """
        if self.shared is not None:
            answer = await self.shared.get(key)
        with self._lock:
            if self.shared is None:
                answer = self._store.get(key, self.clock())
            self._count(hit=answer is not None)
            if answer is not None:
                if answer.usage is not None:
                    self.tokens_saved += answer.usage.prompt_tokens + answer.usage.completion_tokens
                self.cost_saved += answer.cost or 0.0
        return answer

    async def put(self, key: str, answer: CachedAnswer, ttl: float | None = None) -> None:
        """Stores `answer` for `ttl` seconds (None: the configured ttl), evicting the least
        recently used entries beyond the bounds. An entry larger than max_bytes, or a ttl <= 0,
        is not stored."""
        ttl = self.params.ttl if ttl is None else ttl
        if ttl <= 0:
            return
        if self.shared is not None:
            await self.shared.put(key, answer, ttl)
            return
        with self._lock:
            self._store.put(key, answer, self.clock() + ttl)

    def record_bypass(self) -> None:
        """Counts a request that skipped the cache (no-cache); not a miss."""
        with self._lock:
            self.bypassed += 1

    def clear(self) -> int:
        """Removes every in-memory entry. Returns: how many were removed."""
        with self._lock:
            return self._store.clear()

    async def aclear(self) -> int:
        """Removes every entry, in the shared store too. Returns: how many were removed."""
        cleared = self.clear()
        if self.shared is not None:
            cleared += await self.shared.clear()
        return cleared

    def snapshot(self) -> dict[str, Any]:
        """Returns: the `cache` object of `GET /llmproxy/state` (docs/internals.md)."""
        with self._lock:
            lookups = self.hits + self.misses
            history = self._history()
            recent = history[-5:]
            hits_5m = sum(row[1] for row in recent)
            lookups_5m = hits_5m + sum(row[2] for row in recent)
            return {
                "enabled": True,
                "type": self._store.kind if self.shared is None else self.shared.kind,
                "entries": len(self._store),
                "bytes": self._store.bytes,
                "max_entries": self._store.max_entries,
                "max_bytes": self._store.max_bytes,
                "hits": self.hits,
                "misses": self.misses,
                "hit_rate": self.hits / lookups if lookups else None,
                "hit_rate_5m": hits_5m / lookups_5m if lookups_5m else None,
                "tokens_saved": self.tokens_saved,
                "cost_saved": self.cost_saved,
                "history": history,
            }

    def _count(self, *, hit: bool) -> None:
        minute = int(self.now() // 60 * 60)
        if not self._minutes or self._minutes[-1][0] != minute:
            self._minutes.append([minute, 0, 0])
        row = self._minutes[-1]
        if hit:
            self.hits += 1
            row[1] += 1
        else:
            self.misses += 1
            row[2] += 1

    def _history(self) -> list[list[int]]:
        """The last 30 minutes, oldest first, minutes without lookups as zeros."""
        current = int(self.now() // 60 * 60)
        seen = {row[0]: row for row in self._minutes}
        minutes = range(current - 60 * (_HISTORY_MINUTES - 1), current + 1, 60)
        return [list(seen.get(m, [m, 0, 0])) for m in minutes]
