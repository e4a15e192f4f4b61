"""LiteLLM's virtual key management routes (`/key/generate`, `/key/info`, `/key/update`,
`/key/delete`, `/key/list`, `/key/block`, `/key/unblock`), served by FastAPI with the master
key (the route table says so); `/key/info` also answers a virtual key about itself.

The work is `proxy.access.admin.KeyAdmin`'s; these handlers read the body or the query and
write its answer. Without a master key virtual keys are not served: every route answers 400.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from proxy.access import MASTER, Caller
from proxy.access.admin import KeyAdmin, token_of
from proxy.errors import BadRequest, ProxyError
from proxy.runtime import Runtime

NEEDS_MASTER_KEY = "virtual keys need general_settings.master_key"


class KeyHandlers:
    """The /key/* handlers, around one runtime."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def generate(self, request: Request) -> Response:
        """POST /key/generate."""
        return await self._body_op(request, lambda admin: admin.generate)

    async def update(self, request: Request) -> Response:
        """POST /key/update."""
        return await self._body_op(request, lambda admin: admin.update)

    async def delete(self, request: Request) -> Response:
        """POST /key/delete."""
        return await self._body_op(request, lambda admin: admin.delete)

    async def block(self, request: Request) -> Response:
        """POST /key/block."""
        return await self._body_op(request, lambda admin: admin.block)

    async def unblock(self, request: Request) -> Response:
        """POST /key/unblock."""
        return await self._body_op(request, lambda admin: admin.unblock)

    async def list(self, request: Request) -> Response:
        """GET /key/list."""
        admin = self._admin()
        return _json(await admin.list(dict(request.query_params)))

    async def info(self, request: Request) -> Response:
        """GET /key/info?key=...: the master key asks about any key; a virtual key about
        itself only (without `key`, its own).

        Raises:
            ProxyError: 403, a virtual key asking about another key.
        """
        admin = self._admin()
        caller: Caller = getattr(request.state, "caller", MASTER)
        key = request.query_params.get("key")
        if not caller.master:
            if key is None:
                key = caller.token
            elif token_of(key) != caller.token:
                raise ProxyError(
                    "A virtual key may ask /key/info about itself only.",
                    status=403,
                    type="permission_error",
                    code="master_key_required",
                )
        return _json(await admin.info(key))

    def _admin(self) -> KeyAdmin:
        admin = self.runtime.key_admin
        if admin is None:
            raise BadRequest(
                f"Virtual keys are not served: {NEEDS_MASTER_KEY}.", code="no_master_key"
            )
        return admin

    async def _body_op(
        self,
        request: Request,
        op: Callable[[KeyAdmin], Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]],
    ) -> Response:
        admin = self._admin()
        raw = await request.body()
        try:
            body = orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError:
            raise BadRequest("The body must be a JSON object.") from None
        if not isinstance(body, dict):
            raise BadRequest("The body must be a JSON object.")
        return _json(await op(admin)(body))


def _json(doc: dict[str, Any]) -> Response:
    return Response(orjson.dumps(doc), media_type="application/json")
