"""`GET /llmproxy/spend?by=key|group|client|session|day&since=30d` (master key): what
`llmproxy-tui spend --attach URL` prints, read from this proxy's usage store."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from fastapi import Request
from starlette.responses import Response

from proxy import durations
from proxy.errors import BadRequest
from proxy.runtime import Runtime
from proxy.store import spend
from proxy.store.usage_postgres import is_postgres_url

DEFAULT_SINCE = "30d"
FLUSH_WAIT_S = 2.0
"""How long a report waits for the rows still pending to be written."""


def parse_query(by: str | None, since: str | None) -> tuple[str, float]:
    """Returns: (the dimension, the window in seconds) of a spend query.

    Raises:
        BadRequest: `by` is not a dimension, or `since` not one of LiteLLM's durations.
    """
    dim = by or "key"
    if dim not in (*spend.DIMENSIONS, "session"):
        raise BadRequest(
            f"'by' must be one of {', '.join((*spend.DIMENSIONS, 'session'))}, got {dim[:40]!r}",
            param="by",
        )
    try:
        window = durations.seconds(since or DEFAULT_SINCE)
    except ValueError as exc:
        raise BadRequest(f"'since': {exc}", param="since") from None
    return dim, window


class SpendHandlers:
    """The spend report, served by FastAPI; the route table gives it the master key."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def spend(self, request: Request) -> Response:
        """GET /llmproxy/spend: `{"by", "since", "now", "rows": [...]}`, rows as
        `spend.SpendRow.as_dict`.

        Raises:
            BadRequest: a bad `by` or `since`.
        """
        dim, window = parse_query(request.query_params.get("by"), request.query_params.get("since"))
        now = time.time()
        rows = await self._rows(dim, now - window)
        document = {
            "by": dim,
            "since": now - window,
            "now": now,
            "rows": [row.as_dict(dim) for row in spend.report(rows, dim, now)],
        }
        return Response(orjson.dumps(document), media_type="application/json")

    async def _rows(self, dim: str, since: float) -> list[tuple[Any, ...]]:
        ledger = self.runtime.ledger
        await asyncio.to_thread(ledger.flush, FLUSH_WAIT_S)  # count what was just served
        url = self.runtime.config.database_url
        if url is not None and is_postgres_url(url.reveal()):
            return await spend.read_postgres(url.reveal(), (dim,), since)
        if ledger.path is None:
            return []
        return await asyncio.to_thread(spend.read_sqlite, ledger.path, (dim,), since) or []
