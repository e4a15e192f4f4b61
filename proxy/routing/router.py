"""Router: group name -> ordered deployments; retries inside a group, then fallback groups.

For each attempt the KeyPool picks a usable deployment (for a request naming an agent
session, the one that served it in this group while usable: `sessions.py`); a retryable
failure moves to another deployment at once and waits (exponential backoff with jitter, at
least `retry_after`, honoring Retry-After) only when none is left. When a group is exhausted
its fallbacks run in order (chained, never looping); a context-length error switches to
`context_window_fallbacks`.
If all fail, `AllTargetsFailed` lists every attempt by deployment id. A pinned request
(`ChatRequest.pin`) skips all of this: one attempt on that deployment, whatever its health.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from proxy.backoff import Backoff
from proxy.config.types import Config, Deployment
from proxy.errors import (
    AllTargetsFailed,
    Attempt,
    BadRequest,
    ContextWindowExceeded,
    UnknownModel,
    UpstreamError,
    clip,
)
from proxy.providers.base import Provider
from proxy.routing.attempt import OpenStream, complete, open_stream
from proxy.routing.google_auth import WIRES as TOKEN_WIRES
from proxy.routing.google_auth import GoogleTokens
from proxy.routing.keys import DeploymentState, KeyPool
from proxy.routing.policies import spent
from proxy.routing.sessions import SessionMap
from proxy.routing.transport import TransportError, UpstreamClient
from proxy.schema import PIN_HEADER, ChatRequest, ChatResponse, Usage

T = TypeVar("T")
MAX_GROUPS = 6
"""At most this many groups (the asked one and its fallbacks) serve one request."""
LIMIT_WAIT = 1.0
"""How long a request waits for rpm/tpm capacity before it gets 429."""
MAX_RETRY_WAIT = 10.0
WAKE_SLACK = 0.25
"""A wait that ends this close to the hint is finished rather than given up."""
BACKOFF_BASE = 0.25
COUNT_TOKENS_TIMEOUT = 5.0
"""A count_tokens call to the upstream that takes longer is answered with an estimate."""
MAX_PIN_ECHO = 64
"""Characters of an unknown pinned deployment id echoed in the 400."""


@dataclass
class Trace:
    """What happened to one request so far: attempts, timing, and the group that served."""

    request_id: str
    group: str
    started: float
    deadline: float | None
    attempts: list[Attempt] = field(default_factory=list)
    fallback: str | None = None
    rate_limited: bool = True
    retry_after: float | None = None
    current: Deployment | None = None
    """The deployment of the latest attempt (what a request cancelled mid-attempt is billed to)."""

    def remaining(self, clock: Callable[[], float]) -> float:
        return float("inf") if self.deadline is None else self.deadline - clock()


class _GroupExhaustedError(Exception):
    def __init__(self, last: UpstreamError | None) -> None:
        super().__init__("group exhausted")
        self.last = last


class Router:
    """Resolves groups and runs the retry and fallback loop around upstream attempts."""

    def __init__(
        self,
        config: Config,
        pool: KeyPool,
        client: UpstreamClient,
        providers: dict[str, Provider],
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.pool = pool
        self._client = client
        self._providers = providers
        self._tokens = GoogleTokens()
        """Access tokens of the deployments that need one (`vertex_ai/`)."""
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._exact = config.groups
        self._wild = sorted(
            ((g[:-1], d) for g, d in self._exact.items() if g.endswith("*")),
            key=lambda item: -len(item[0]),
        )
        self._native_only: dict[tuple[str, str], bool] = {}
        timeout = config.litellm.request_timeout or config.router.timeout
        self._overall = timeout

    # ---- groups ----
    def resolve(self, model: str) -> list[Deployment]:
        """Returns the deployments serving `model` (exact group first, then wildcards).

        Raises:
            UnknownModel: no group has that name.
        """
        deps = self._exact.get(model)
        if deps is None:
            deps = next((d for prefix, d in self._wild if model.startswith(prefix)), None)
        if deps is None:
            raise UnknownModel(model)
        return deps

    def trace(self, req: ChatRequest) -> Trace:
        now = self._clock()
        return Trace(
            req.request_id, req.model, now, None if self._overall is None else now + self._overall
        )

    # ---- the loop ----
    async def complete(self, req: ChatRequest, trace: Trace) -> tuple[ChatResponse, Deployment]:
        """Answers a non-stream request.

        Raises:
            ProxyError: the request is bad, or every deployment and fallback failed.
        """

        async def attempt(st: DeploymentState, budget: float) -> tuple[ChatResponse, Deployment]:
            provider = self._provider(st.dep)
            if st.dep.wire in TOKEN_WIRES:  # an access token fetched first (Vertex AI)
                resp = await self._tokens.run(
                    st.dep, budget, lambda dep: complete(self._client, provider, req, dep, budget)
                )
            else:
                resp = await complete(self._client, provider, req, st.dep, budget)
            if resp.usage is not None:
                self.pool.add_tokens(st, resp.usage.total_tokens)
            return resp, st.dep

        return await self._run(req, trace, attempt, stream=False)

    async def open_stream(self, req: ChatRequest, trace: Trace) -> OpenStream:
        """Opens a stream on the first deployment whose first chunk arrives.

        Raises:
            ProxyError: as complete(); nothing has been sent to the client yet.
        """

        async def attempt(st: DeploymentState, budget: float) -> OpenStream:
            provider = self._provider(st.dep)
            if st.dep.wire in TOKEN_WIRES:
                opened = await self._tokens.run(
                    st.dep,
                    budget,
                    lambda dep: open_stream(self._client, provider, req, dep, budget),
                )
            else:
                opened = await open_stream(self._client, provider, req, st.dep, budget)
            opened.on_end = partial(self._end_stream, st)
            return opened

        return await self._run(req, trace, attempt, stream=True)

    def _end_stream(
        self, st: DeploymentState, error: UpstreamError | None, usage: Usage | None
    ) -> None:
        """A stream's in-flight slot is held from its first chunk until here."""
        if error is not None:
            self.pool.fail(st, error)
        else:
            self.pool.release(st)
        if usage is not None:
            self.pool.add_tokens(st, usage.total_tokens)

    def native_only(self, model: str, wire: str) -> bool:
        """Whether every deployment that could serve `model` (no fallbacks, no token limits to
        check) takes a `wire` client's body as sent, so no neutral translation is needed."""
        key = (model, wire)
        known = self._native_only.get(key)
        if known is None:
            known = self._native_only[key] = self._all_native(model, wire)
        return known

    def _all_native(self, model: str, wire: str) -> bool:
        try:
            deps = self.resolve(model)
        except UnknownModel:
            return False
        if self.config.fallbacks.get(model) or self.config.context_window_fallbacks.get(model):
            return False
        return all(
            getattr(self._providers.get(dep.wire), "native_wire", None) == wire
            and dep.max_input_tokens is None
            for dep in deps
        )

    async def count_tokens(
        self, model: str, body: Mapping[str, Any], headers: Mapping[str, str]
    ) -> bytes | None:
        """Asks a usable deployment of `model`'s group whose provider counts tokens (Anthropic's
        `count_tokens`, which is free) for the exact count of a Messages body.

        Returns:
            The upstream's `{"input_tokens": N}` bytes, or None when no deployment can count
            or the one asked failed (the caller then estimates).

        Raises:
            UnknownModel: no group has that name.
        """
        for dep in self.resolve(model):
            provider = self._providers.get(dep.wire)
            build = getattr(provider, "count_tokens_request", None)
            if build is None or dep.key is None or not self.pool.ready(dep.id):
                continue
            try:
                async with asyncio.timeout(COUNT_TOKENS_TIMEOUT):
                    response = await self._client.send(build(body, headers, dep))
            except (TimeoutError, TransportError):
                return None
            return response.content if response.status_code == 200 else None
        return None

    def _provider(self, dep: Deployment) -> Provider:
        provider = self._providers.get(dep.wire)
        if provider is None:
            from proxy.errors import NotImplementedByProvider

            raise NotImplementedByProvider(
                f"deployment {dep.id}: the {dep.provider} provider is not available"
            )
        return provider

    async def _run(
        self,
        req: ChatRequest,
        trace: Trace,
        attempt: Callable[[DeploymentState, float], Awaitable[T]],
        *,
        stream: bool,
    ) -> T:
        if req.pin is not None:
            return await self._run_pinned(req, trace, attempt, stream)
        queue = [req.model]
        visited = {req.model}
        last: UpstreamError | None = None
        while queue and len(visited) <= MAX_GROUPS:
            group = queue.pop(0)
            try:
                deps = self.resolve(group)
                result = await self._run_group(group, deps, req, trace, attempt, stream)
            except UpstreamError as err:  # not retryable: the request's own fault
                if not err.context_window:
                    raise
                nexts = [
                    g
                    for g in self.config.context_window_fallbacks.get(group, ())
                    if g not in visited
                ]
                if not nexts:
                    raise ContextWindowExceeded(err.message) from None
                queue, last = nexts, err
                visited.update(nexts)
                continue
            except _GroupExhaustedError as exhausted:
                last = exhausted.last or last
                nexts = [g for g in self.config.fallbacks.get(group, ()) if g not in visited]
                queue.extend(nexts)
                visited.update(nexts)
                continue
            if group != req.model:
                trace.fallback = group
            return result
        raise _final_error(req.model, trace, last, self._budget_note(trace, visited))

    def _budget_note(self, trace: Trace, groups: set[str]) -> str | None:
        """Why nothing was tried, when every deployment of the groups has a spent budget."""
        if trace.attempts or self.pool.budgets is None:
            return None
        deps: set[str] = set()
        for group in groups:
            with contextlib.suppress(UnknownModel):
                deps.update(d.id for d in self.resolve(group) if not d.disabled_reason)
        return self.pool.budgets.note(sorted(deps))

    async def _run_group(
        self,
        group: str,
        deps: Sequence[Deployment],
        req: ChatRequest,
        trace: Trace,
        attempt: Callable[[DeploymentState, float], Awaitable[T]],
        stream: bool,
    ) -> T:
        retries = self.config.num_retries
        tried: set[str] = set()
        # Not retried in this request: a deployment that timed out, or used its max_retries.
        barred: set[str] = set()
        per_dep: dict[str, int] = {}
        kinds: dict[str, int] = {}  # failures per error kind, for retry_policy
        last: UpstreamError | None = None
        backoff = Backoff(BACKOFF_BASE, float("inf"), jitter=self._rng)
        attempts = 0
        prefer: str | None = None
        if req.session is not None and (sessions := self.pool.sessions) is not None:
            prefer = await sessions.lookup(group, req.session, self.pool.ready)
            attempt = _remembering(attempt, sessions, group, req.session)
        while attempts <= retries:
            st = self.pool.choose(deps, tried | barred, prefer)
            if st is None:
                st = await self._wait_for_capacity(
                    deps, trace, last, backoff, tried, barred, prefer
                )
                if st is None:
                    break
            dep = st.dep
            if self._too_long(req, dep):
                raise _too_long_error(dep)
            remaining = trace.remaining(self._clock)
            if remaining <= 0:
                break
            if dep.rpm is not None or dep.tpm is not None:
                wait = await self.pool.shared.reserve(dep.id, dep.rpm, dep.tpm)
                if wait is not None:  # the cluster's window is full: choose again
                    self.pool.hold(st, wait)
                    continue
            attempts += 1
            per_dep[dep.id] = per_dep.get(dep.id, 0) + 1
            timeout = min(dep.stream_timeout if stream else dep.timeout, remaining)
            try:
                return await self._try(st, group, trace, attempt, timeout, stream)
            except UpstreamError as err:
                if not err.retryable:
                    raise
                _note_failure(trace, err)
                last = err
                tried.add(dep.id)
                if spent(self.config.router.retry_policy, err, kinds):
                    break  # retry_policy: no more tries after this kind of error
                budget = retries if dep.max_retries is None else dep.max_retries
                if err.status == 504 or per_dep[dep.id] > budget:
                    barred.add(dep.id)
        raise _GroupExhaustedError(last)

    async def _try(
        self,
        st: DeploymentState,
        group: str,
        trace: Trace,
        attempt: Callable[[DeploymentState, float], Awaitable[T]],
        limit: float,
        stream: bool,
    ) -> T:
        """One attempt on `st` within `limit` seconds, recorded in `trace` and in its health.

        An upstream error counts against the deployment and is raised for the caller to
        retry or not; anything else (a cancelled client, a bug) only frees its slot.
        """
        dep = st.dep
        self.pool.begin(st)
        trace.current = dep
        started = self._clock()
        try:
            result = await attempt(st, limit)
        except UpstreamError as err:
            elapsed = (self._clock() - started) * 1000
            trace.attempts.append(Attempt(dep.id, group, err.status, _reason(err), elapsed))
            self.pool.fail(st, err)
            raise
        except BaseException as exc:
            self.pool.release(st)  # never a failure of the deployment: no cooldown
            if isinstance(exc, asyncio.CancelledError):
                elapsed = (self._clock() - started) * 1000
                trace.attempts.append(Attempt(dep.id, group, 499, "cancelled", elapsed))
            raise
        elapsed = (self._clock() - started) * 1000
        trace.attempts.append(Attempt(dep.id, group, 200, "ok", elapsed))
        self.pool.succeed(st, elapsed, release=not stream)
        return result

    async def _run_pinned(
        self,
        req: ChatRequest,
        trace: Trace,
        attempt: Callable[[DeploymentState, float], Awaitable[T]],
        stream: bool,
    ) -> T:
        """One attempt on the pinned deployment (`req.pin`): no other, no fallback, no retry.

        Cooling down, at a limit, rejected or disabled by the operator, it is tried all the
        same: the operator asked for that key's own answer. Its outcome counts in its health.

        Raises:
            BadRequest: the pin is not a deployment of the requested group.
            ProxyError: the deployment's error, as `_run` raises it, or `AllTargetsFailed`
                naming that attempt (or, for a deployment the config disabled, why).
        """
        pin = req.pin
        dep = next((d for d in self.resolve(req.model) if d.id == pin), None)
        st = None if dep is None else self.pool.states.get(dep.id)
        if dep is None or st is None:
            raise _unknown_pin(req.model, pin or "")
        if dep.disabled_reason:  # the config left it nothing to try with (an unset key)
            why = f"the pinned deployment {dep.id} is disabled: {dep.disabled_reason}"
            raise AllTargetsFailed(req.model, [], unusable=why)
        if dep.rpm is not None or dep.tpm is not None:
            await self.pool.shared.reserve(dep.id, dep.rpm, dep.tpm)  # counted, never refused
        timeout = min(dep.stream_timeout if stream else dep.timeout, trace.remaining(self._clock))
        try:
            return await self._try(st, req.model, trace, attempt, timeout, stream)
        except UpstreamError as err:
            if err.retryable:
                _note_failure(trace, err)
                raise _final_error(req.model, trace, err) from None
            if err.context_window:
                raise ContextWindowExceeded(err.message) from None
            raise

    async def _wait_for_capacity(
        self,
        deps: Sequence[Deployment],
        trace: Trace,
        last: UpstreamError | None,
        backoff: Backoff,
        tried: set[str],
        barred: set[str],
        prefer: str | None = None,
    ) -> DeploymentState | None:
        """Waits when no deployment is usable now but one will be soon; None to give up."""
        deps = [d for d in deps if d.id not in barred]
        if not deps:
            return None
        hint = self.pool.wait_hint(deps)
        if hint is not None:
            trace.retry_after = hint if trace.retry_after is None else min(hint, trace.retry_after)
        limited = self.pool.rate_limited(deps)
        remaining = trace.remaining(self._clock)
        if last is None:
            # Nothing tried yet: only rpm/tpm limits (or a 429 cooldown) about to lift are
            # worth a short wait; cooling or disabled deployments are not.
            if not limited:
                trace.rate_limited = False
                return None
            if hint is None or hint > LIMIT_WAIT or hint >= remaining:
                return None
            wait = hint
        else:
            wait = backoff.next()
            wait = max(wait, self.config.router.retry_after, last.retry_after or 0.0, hint or 0.0)
            if wait > MAX_RETRY_WAIT or wait >= remaining:
                return None
        await self._sleep(wait)
        tried.clear()
        st = self.pool.choose(deps, barred, prefer)
        late = self.pool.wait_hint(deps) if st is None else None
        if late is not None and late <= WAKE_SLACK:
            # The loop's timer woke a moment before the cooldown or window ended (uvloop keeps
            # a cached clock): wait out the rest instead of failing a request that waited.
            await self._sleep(late + 0.001)
            st = self.pool.choose(deps, barred, prefer)
        return st

    @staticmethod
    def _too_long(req: ChatRequest, dep: Deployment) -> bool:
        if dep.max_input_tokens is None:
            return False
        return estimate_prompt_tokens(req) > dep.max_input_tokens


def _remembering(
    attempt: Callable[[DeploymentState, float], Awaitable[T]],
    sessions: SessionMap,
    group: str,
    session: str,
) -> Callable[[DeploymentState, float], Awaitable[T]]:
    """Wraps `attempt` so the deployment that serves the session is where it stays."""

    async def remembered(st: DeploymentState, budget: float) -> T:
        result = await attempt(st, budget)
        sessions.remember(group, session, st.dep.id)
        return result

    return remembered


def _note_failure(trace: Trace, err: UpstreamError) -> None:
    """Keeps what the final error needs: whether all were rate limited, and the soonest wait."""
    if err.status != 429:
        trace.rate_limited = False
    elif err.retry_after is not None:
        soonest = trace.retry_after
        trace.retry_after = err.retry_after if soonest is None else min(soonest, err.retry_after)


def _unknown_pin(group: str, pin: str) -> BadRequest:
    """The 400 of a pin naming no deployment of `group` (the id escaped and cut short)."""
    shown = ascii(pin[:MAX_PIN_ECHO]) + (
        f" (of {len(pin):,} characters)" if len(pin) > MAX_PIN_ECHO else ""
    )
    return BadRequest(
        f"The {PIN_HEADER} header names {shown}, which is not a deployment of the model group "
        f"'{clip(group)}'.",
        param=PIN_HEADER,
        code="unknown_deployment",
    )


def _too_long_error(dep: Deployment) -> UpstreamError:
    return UpstreamError(
        f"the prompt exceeds {dep.id}'s max_input_tokens ({dep.max_input_tokens})",
        provider=dep.provider,
        key_id=dep.id,
        status=400,
        retryable=False,
        context_window=True,
        code="context_length_exceeded",
    )


def _final_error(
    group: str, trace: Trace, last: UpstreamError | None, unusable: str | None = None
) -> AllTargetsFailed:
    """Returns the contract's exhaustion error for `trace`."""
    return AllTargetsFailed(
        group,
        trace.attempts,
        last=last,
        rate_limited=trace.rate_limited,
        retry_after=trace.retry_after,
        unusable=unusable,
    )


def estimate_prompt_tokens(req: ChatRequest) -> int:
    """A rough count (4 characters a token) for limits and for streams without usage."""
    chars = 0
    for message in req.body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            chars += sum(len(str(p.get("text", ""))) for p in content if isinstance(p, dict))
    return max(1, chars // 4)


def _reason(err: UpstreamError) -> str:
    if err.status == 429:
        return "rate limited"
    if err.key_rejected:
        return "key rejected"
    if err.status == 504:
        return "timeout"
    if err.code == "upstream_too_large":
        return "answer too large"
    if err.code == "upstream_connection":
        return err.message.split(": ", 1)[-1]
    return (err.type or "error").replace("_", " ")
