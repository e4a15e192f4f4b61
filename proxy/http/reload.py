"""`POST /llmproxy/reload` (master key): re-read the config and its `.env` and swap the new
config in; 200 with what changed, or 400 naming why the files are invalid (the old config then
keeps serving)."""

from __future__ import annotations

import orjson
from fastapi import Request
from starlette.responses import Response

from proxy.errors import BadRequest
from proxy.runtime import Runtime


class ReloadHandlers:
    """The reload route's handler, served by FastAPI; the route table gives it the master key."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def reload(self, _request: Request) -> Response:
        """POST /llmproxy/reload: the reload's outcome (see `observe/reload.py`).

        Raises:
            BadRequest: the config or `.env` is invalid (code `invalid_config`); nothing changed.
        """
        outcome = await self.runtime.reloader.reload("POST /llmproxy/reload")
        if not outcome.ok:
            raise BadRequest(
                f"The config was not reloaded; the old one keeps serving: {outcome.error}",
                code="invalid_config",
            )
        return Response(orjson.dumps(outcome.as_dict()), media_type="application/json")
