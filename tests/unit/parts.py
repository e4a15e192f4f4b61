"""Builds the proxy's parts (KeyPool, Router, Pipeline) from a LiteLLM config dict, wired to a
fake clock and the scripted upstream, the way `proxy.runtime.Runtime` wires the real ones.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from typing import Any

import pytest

from proxy.config.loader import build_config
from proxy.config.types import Config, Deployment
from proxy.errors import ProxyError
from proxy.events import EventBus, RequestFinished
from proxy.pipeline import Answer, Pipeline
from proxy.providers import registry
from proxy.routing.keys import KeyPool
from proxy.routing.router import Router, Trace
from proxy.schema import CacheControl, ChatRequest, ChatResponse, Usage
from proxy.store.cache import ResponseCache
from proxy.store.pricing import PriceTable
from tests.unit.scripted import ScriptedUpstream

HELLO = "Hello there"
_ids = itertools.count(1)


def openai_dep(group: str, dep_id: str, **params: Any) -> dict[str, Any]:
    """A model_list entry for an OpenAI deployment answering on host `<dep_id>.test`."""
    info = params.pop("model_info", {})
    return {
        "model_name": group,
        "litellm_params": {
            "model": "openai/gpt-4o-mini",
            "api_key": f"sk-test-{dep_id}-0123456789abcdef",
            "api_base": f"http://{dep_id}.test/v1",
            **params,
        },
        "model_info": {"id": dep_id, **info},
    }


def anthropic_dep(group: str, dep_id: str, **params: Any) -> dict[str, Any]:
    return {
        "model_name": group,
        "litellm_params": {
            "model": "anthropic/claude-sonnet-4-5",
            "api_key": f"sk-ant-test-{dep_id}-0123456789",
            "api_base": f"http://{dep_id}.test",
            **params,
        },
        "model_info": {"id": dep_id},
    }


def mock_dep(group: str, dep_id: str, reply: str = "Hi there", **params: Any) -> dict[str, Any]:
    return {
        "model_name": group,
        "litellm_params": {"model": "mock/echo", "mock_response": reply, **params},
        "model_info": {"id": dep_id},
    }


def chat(
    model: str = "gpt", text: str = HELLO, *, stream: bool = False, **body: Any
) -> ChatRequest:
    """A parsed client request, as the chat endpoint hands it to the pipeline."""
    doc = {"model": model, "messages": [{"role": "user", "content": text}], **body}
    if stream:
        doc["stream"] = True
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    return ChatRequest(
        model, doc, stream=stream, include_usage=include_usage, request_id=f"req-{next(_ids)}"
    )


@dataclass
class Parts:
    config: Config
    pool: KeyPool
    router: Router
    pipeline: Pipeline
    cache: ResponseCache | None
    upstream: ScriptedUpstream
    reports: list[RequestFinished] = field(default_factory=list)

    def dep(self, dep_id: str) -> Deployment:
        return next(d for d in self.config.deployments if d.id == dep_id)

    def deps(self, group: str = "gpt") -> list[Deployment]:
        return self.router.resolve(group)

    def state(self, dep_id: str) -> dict[str, Any]:
        """The deployment's row of the state document (KeyPool.snapshot)."""
        return next(row for row in self.pool.snapshot() if row["id"] == dep_id)

    def usable(self, dep_id: str, group: str = "gpt") -> bool:
        """Whether the pool would hand out `dep_id` now, all else excluded."""
        others = {d.id for d in self.deps(group) if d.id != dep_id}
        return self.pool.choose(self.deps(group), others) is not None

    async def complete(self, req: ChatRequest) -> tuple[ChatResponse, Deployment, Trace]:
        trace = self.router.trace(req)
        resp, dep = await self.router.complete(req, trace)
        return resp, dep, trace

    async def failure(self, req: ChatRequest) -> tuple[ProxyError, Trace]:
        """Runs `req` through the router, expecting it to fail; returns the error."""
        trace = self.router.trace(req)
        with pytest.raises(ProxyError) as info:
            await self.router.complete(req, trace)
        return info.value, trace

    async def handle(self, req: ChatRequest, ctl: CacheControl | None = None) -> Answer:
        return await self.pipeline.handle(req, ctl or CacheControl())


def build(doc: dict[str, Any], upstream: ScriptedUpstream, clock: Any, *, seed: int = 7) -> Parts:
    """Builds the parts for config `doc` on `clock` (callable, `.wall`, `.sleep`)."""
    config = build_config(doc)
    prices = PriceTable()
    bus = EventBus()

    def unit_price(dep: Deployment) -> float | None:
        return prices.cost(dep, Usage(1_000_000, 1_000_000, 2_000_000))

    pool = KeyPool(
        config.deployments,
        config.router,
        bus,
        price=unit_price,
        clock=clock,
        wall=clock.wall,
        rng=random.Random(seed),
    )
    router = Router(
        config,
        pool,
        upstream,
        registry.build(),
        clock=clock,
        sleep=clock.sleep,
        rng=random.Random(seed + 1),
    )
    cache = None
    if config.cache is not None:
        cache = ResponseCache(config.cache, clock=clock, now=clock.wall)
    reports: list[RequestFinished] = []
    pipeline = Pipeline(router, cache, prices, bus, reports.append, clock=clock, wall=clock.wall)
    return Parts(config, pool, router, pipeline, cache, upstream, reports)
