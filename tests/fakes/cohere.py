"""FakeCohere: Cohere's OpenAI Compatibility API (`/compatibility/v1/...`) on 127.0.0.1.

The fake OpenAI upstream's answers, steps and key checks under Cohere's path, plus what the
Compatibility API refuses that OpenAI takes: `stream_options` (a 400 in Cohere's error shape,
`{"id", "message"}`).
"""

from __future__ import annotations

import asyncio
import json

from tests.fakes.http11 import Answer, Request, write_answer
from tests.fakes.upstream import FakeUpstream

PREFIX = "/compatibility/v1"


class FakeCohere(FakeUpstream):
    """Cohere's Compatibility API; `requests` record paths as OpenAI's (`/v1/...`)."""

    @property
    def cohere_base(self) -> str:
        """Returns: the Compatibility API's base URL on this fake."""
        return self.url + PREFIX

    async def _respond(
        self, req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        if not req.path.startswith(PREFIX + "/"):
            body = {"id": "fake-0001", "message": f"route not found: {req.path}"}
            return await write_answer(writer, _error(404, body), keep_alive=req.keep_alive)
        doc = req.json()
        if isinstance(doc, dict) and "stream_options" in doc:
            body = {
                "id": "fake-0002",
                "message": "invalid request: stream_options is not supported",
            }
            return await write_answer(writer, _error(400, body), keep_alive=req.keep_alive)
        req.path = "/v1" + req.path[len(PREFIX) :]
        return await super()._respond(req, reader, writer)


def _error(status: int, body: dict[str, str]) -> Answer:
    return Answer(status, {"content-type": "application/json"}, json.dumps(body).encode())
