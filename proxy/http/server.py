"""Serving: uvicorn around the app, on a socket we bind ourselves (so a taken port is exit 3).

`ProxyServer.run()` serves on its own event loop (headless in the main thread, or in the
dashboard's thread worker); `stop()` may be called from any thread. On stop the proxy refuses
new requests (503), finishes in-flight ones within GRACE seconds, then flushes usage. Client
connections are bounded by `connections.py` (timeouts, head size, a cap).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import ipaddress
import logging
import signal
import socket
import threading
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

import uvicorn

from proxy.http.app import create_app
from proxy.http.connections import (
    ClientLimits,
    bounded_protocol,
    default_max_connections,
    raise_open_file_limit,
)
from proxy.http.routes import Route
from proxy.runtime import Runtime

log = logging.getLogger("llmproxy")
T = TypeVar("T")
GC_THRESHOLD = 7000
"""Allocations between young-generation collections (Python's default is 700)."""
GRACE = 20
"""Seconds in-flight requests get to finish on shutdown."""
END_BEFORE = 2.0
"""Seconds before GRACE runs out that requests still in flight are ended (a stream with an error
event in its format), so each is answered and has its usage row before the store is flushed."""


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, owner: ProxyServer) -> None:
        super().__init__(config)
        self._owner = owner

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.should_exit:
            self._owner.started.set()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._owner.runtime.draining = True  # event streams end, new requests get 503
        grace = self.config.timeout_graceful_shutdown or 0
        late = max(grace - END_BEFORE, grace / 2)
        ending = asyncio.get_running_loop().call_later(late, self._owner.end_requests)
        try:
            await super().shutdown(sockets)
        finally:
            ending.cancel()


class ProxyServer:
    """One listening proxy around a Runtime."""

    def __init__(
        self,
        runtime: Runtime,
        host: str,
        port: int,
        *,
        routes: Sequence[Route] | None = None,
        grace: int = GRACE,
    ) -> None:
        """Builds the app and the uvicorn server; nothing listens until `serve()`.

        Args:
            runtime: what the proxy serves.
            host: the address to listen on.
            port: the port; 0 picks a free one, set once bound.
            routes: the route table, when not `app.route_table(runtime)`.
            grace: seconds in-flight requests get to finish on shutdown.
        """
        self.runtime = runtime
        self.host = host
        self.port = port
        self.started = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.bind_error: OSError | None = None
        self.app = create_app(runtime, routes, listen_host=host)
        settings = runtime.config
        raise_open_file_limit()  # before the default cap is derived from it
        limits = ClientLimits(
            read_timeout=settings.client_read_timeout,
            idle_timeout=settings.client_idle_timeout,
            max_connections=settings.max_client_connections or default_max_connections(),
        )
        self.limits = limits
        """The bounds on client connections (read and idle timeouts, head size, the cap)."""
        config = uvicorn.Config(
            self.app,
            host=host,
            port=port,
            loop="auto",
            http=bounded_protocol(limits, self.app.render),
            lifespan="on",
            log_config=None,
            access_log=False,
            proxy_headers=False,  # no X-Forwarded-* parsing: it cost ~3% per request
            server_header=False,
            timeout_graceful_shutdown=grace,
        )
        self._server = _Server(config, self)

    def bind(self) -> socket.socket:
        """Binds the listening socket.

        Raises:
            OSError: the address is taken or cannot be used.
        """
        family = socket.AF_INET6 if _is_v6(self.host) else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        sock.set_inheritable(True)
        self.port = sock.getsockname()[1]
        return sock

    async def serve(self) -> None:
        """Serves until stop(); sets `bind_error` and returns if the port is taken."""
        self.loop = asyncio.get_running_loop()
        try:
            sock = self.bind()
        except OSError as exc:
            self.bind_error = exc
            self.started.set()
            return
        self.runtime.listen = f"http://{_url_host(self.host)}:{self.port}"
        tune_gc()
        config = self.runtime.config
        log.info(
            "listening on %s (%s: %d groups, %d deployments)",
            self.runtime.listen,
            "built-in demo config" if config.demo else config.path or "config",
            len(config.groups),
            len(config.deployments),
        )
        hup = _on_sighup(self.loop, self.reload_soon)
        try:
            await self._server.serve(sockets=[sock])
        finally:
            if hup:
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            sock.close()
            if not self.started.is_set():
                self.started.set()

    def run(self) -> None:
        """Serves on a new event loop in the calling thread (uvloop when available)."""
        try:
            import uvloop

            runner: Any = uvloop.run
        except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
            runner = asyncio.run
        runner(self.serve())

    def end_requests(self) -> None:
        """Ends the requests still in flight at the end of the drain (see END_BEFORE)."""
        pipeline = self.runtime.pipeline
        count = pipeline.end_requests() if pipeline is not None else 0
        if count:
            log.warning("shutting down: ended %d requests still in flight", count)

    def reload_soon(self, trigger: str = "SIGHUP") -> None:
        """Starts a config reload on the proxy's loop; safe from any thread (a signal handler)."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.runtime.reloader.trigger, trigger)

    def stop(self) -> None:
        """Asks the server to stop; safe from any thread."""
        self._server.should_exit = True

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Runs a coroutine on the proxy's loop (from another thread)."""
        if self.loop is None:
            raise RuntimeError("the proxy is not running")
        return asyncio.run_coroutine_threadsafe(coro, self.loop)


def _on_sighup(loop: asyncio.AbstractEventLoop, reload: Callable[[], None]) -> bool:
    """Makes SIGHUP reload the config; returns False off the main thread (the dashboard's
    proxy, whose SIGHUP the CLI handles) or where there is no SIGHUP."""
    try:
        loop.add_signal_handler(signal.SIGHUP, reload)
    except (AttributeError, NotImplementedError, RuntimeError, ValueError):
        return False
    return True


def tune_gc() -> None:
    """Sets the garbage collector up for serving.

    Everything alive after start-up (modules, config, app) is frozen out of the collector's
    scans, and young collections run a tenth as often: with 64 requests in flight each
    collection walked every live call chain, which cost 40-55 µs CPU per request
    (bench/router_overhead.py with and without this).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 10, 10)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _is_v6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).version == 6
    except ValueError:
        return False


def _url_host(host: str) -> str:
    return f"[{host}]" if _is_v6(host) else host
