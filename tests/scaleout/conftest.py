"""Scale-out fixtures: services the tests start themselves, a Redis namespace and a
PostgreSQL database per test, and a private redis-server the test may stop and start again.

Each test session (each xdist worker) starts its own `redis-server` on a free loopback port and,
unless `$LLMPROXY_TEST_PG_URL` names a server to use, a throwaway PostgreSQL cluster (`initdb`
+ `pg_ctl`) in a temporary directory; both are stopped by their own PID at the end. A test
that needs a missing binary is skipped with a reason naming it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import redis

from tests.conftest import free_port

REDIS_HOST = "127.0.0.1"
PG_URL_ENV = "LLMPROXY_TEST_PG_URL"
PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"
PG_USER = "postgres"  # the system user initdb and the server run as when we are root
PR_SET_PDEATHSIG = 1  # prctl(2)
START_TRIES = 3  # a free port may be taken by another worker before the server binds it


# ---- Redis ----


def redis_binary() -> str:
    """Returns the redis-server path; skips the test when there is none."""
    found = shutil.which("redis-server")
    if not found:
        pytest.skip("redis-server not found: apt-get install redis-server")
    return found


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the test process dies, so a pytest that is
    killed (timeout, ctrl+c twice) leaves no redis-server behind. Linux only; else a no-op."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class RedisServer:
    """A private redis-server on a free port; `stop()` and `start()` may be called mid-test."""

    port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Starts it and waits for a PING. Raises: RuntimeError when it exits or never answers."""
        log = self.workdir / f"redis-{self.port}.log"
        self.proc = subprocess.Popen(
            [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--dir", str(self.workdir),
             "--logfile", str(log)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                tail = log.read_text(errors="replace")[-500:] if log.exists() else ""
                raise RuntimeError(f"redis-server exited at start on port {self.port}: {tail}")
            try:
                client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=0.5)
                try:
                    if client.ping():
                        return
                finally:
                    client.close()
            except redis.ConnectionError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        """Stops it by its PID: SIGTERM, then SIGKILL if it is still there after 10 s."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


@pytest.fixture(scope="session")
def shared_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """This session's redis-server (one per xdist worker), on a free loopback port."""
    redis_binary()
    workdir = tmp_path_factory.mktemp("redis")
    server = None
    errors = []
    for _ in range(START_TRIES):
        candidate = RedisServer(free_port(), workdir)
        try:
            candidate.start()
        except RuntimeError as exc:
            errors.append(str(exc))
            continue
        server = candidate
        break
    if server is None:
        pytest.skip(f"redis-server cannot start: {errors[-1]}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_port(shared_redis: RedisServer) -> int:
    """The port of this session's redis-server."""
    return shared_redis.port


@pytest.fixture
def redis_ns(shared_redis: RedisServer) -> Iterator[str]:
    """A fresh namespace on this session's redis-server; its keys are deleted afterwards."""
    ns = f"t{uuid.uuid4().hex[:10]}"
    yield ns
    client = redis.Redis(host=REDIS_HOST, port=shared_redis.port)
    try:
        keys = list(client.scan_iter(match=f"llmproxy:{ns}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server, started; stopped at the end whatever happened."""
    redis_binary()
    server = RedisServer(free_port(), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# ---- PostgreSQL ----


def pg_binaries() -> tuple[str, str]:
    """Returns (initdb, pg_ctl) from PATH or the newest /usr/lib/postgresql/*/bin; skips the
    test when either is missing."""
    found = {name: shutil.which(name) for name in ("initdb", "pg_ctl")}
    if not all(found.values()):
        for bin_dir in sorted(glob.glob(PG_BIN_GLOB), key=_version_key, reverse=True):
            if all(os.access(Path(bin_dir, n), os.X_OK) for n in ("initdb", "pg_ctl")):
                found = {name: str(Path(bin_dir, name)) for name in found}
                break
    missing = [name for name, path in found.items() if not path]
    if missing:
        pytest.skip(
            f"{' and '.join(missing)} not found (on PATH or in {PG_BIN_GLOB}): "
            "apt-get install postgresql"
        )
    return str(found["initdb"]), str(found["pg_ctl"])


def _version_key(bin_dir: str) -> tuple[int, str]:
    version = Path(bin_dir).parent.name
    return (int(version) if version.isdigit() else 0, version)


def _as_pg_user() -> tuple[list[str], int | None, int | None]:
    """Returns (command prefix, uid, gid) that run initdb and pg_ctl as a user they accept:
    ourselves, or the `postgres` system user when we are root (initdb refuses root)."""
    if os.geteuid() != 0:
        return [], None, None
    import pwd

    try:
        user = pwd.getpwnam(PG_USER)
    except KeyError:
        pytest.skip(f"running as root and there is no '{PG_USER}' system user for initdb")
    if runuser := shutil.which("runuser"):
        return [runuser, "-u", PG_USER, "--"], user.pw_uid, user.pw_gid
    if setpriv := shutil.which("setpriv"):
        return ([setpriv, f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups"],
                user.pw_uid, user.pw_gid)  # fmt: skip
    pytest.skip("running as root and neither runuser nor setpriv found to run initdb as postgres")


@dataclass
class PgCluster:
    """A throwaway PostgreSQL cluster in `root`, listening on 127.0.0.1:`port` only (and a
    unix socket in `root`), trust auth."""

    root: Path
    port: int
    pg_ctl: str
    prefix: list[str]
    pid: int | None = None

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    @property
    def admin_url(self) -> str:
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/postgres"

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.prefix, *args], capture_output=True, text=True, timeout=timeout, cwd=self.root,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip

    def start(self) -> None:
        """Raises: RuntimeError with pg_ctl's output and the server log when it fails."""
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200 -c shared_buffers=16MB"
        )
        done = self.run(self.pg_ctl, "-D", str(self.data), "-l", str(self.log), "-o", options,
                        "-w", "-t", "30", "start")  # fmt: skip
        pid_file = self.data / "postmaster.pid"
        if pid_file.exists():
            with contextlib.suppress(ValueError, IndexError, OSError):
                self.pid = int(pid_file.read_text().split()[0])
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-800:] if self.log.exists() else ""
            self.stop()
            raise RuntimeError(f"pg_ctl start failed on port {self.port}: {done.stderr}{log}")

    def stop(self) -> None:
        """`pg_ctl stop -m immediate`; the postmaster's PID gets SIGKILL if that fails."""
        if self.pid is None:
            return
        try:
            done = self.run(self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w",
                            "-t", "15", "stop", timeout=30)  # fmt: skip
            stopped = done.returncode == 0
        except subprocess.TimeoutExpired:
            stopped = False
        if not stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        self.pid = None


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """A PostgreSQL URL with the right to create databases: `$LLMPROXY_TEST_PG_URL`, else a
    throwaway cluster of this session's own (one per xdist worker)."""
    given = os.environ.get(PG_URL_ENV)
    if given:
        yield given
        return
    initdb, pg_ctl = pg_binaries()
    prefix, uid, gid = _as_pg_user()
    root = Path(tempfile.mkdtemp(prefix="llmproxy-pg-"))  # short: the socket path has a limit
    cluster = None
    try:
        if uid is not None and gid is not None:
            os.chown(root, uid, gid)
        made = subprocess.run(
            [*prefix, initdb, "-D", str(root / "data"), "-U", PG_USER, "-A", "trust",
             "-E", "UTF8", "--no-sync", "--no-instructions"],
            capture_output=True, text=True, timeout=120, cwd=root, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        if made.returncode != 0:
            pytest.skip(f"initdb cannot create a cluster: {(made.stderr or made.stdout)[-500:]}")
        errors = []
        for _ in range(START_TRIES):
            candidate = PgCluster(root, free_port(), pg_ctl, prefix)
            try:
                candidate.start()
            except RuntimeError as exc:
                errors.append(str(exc))
                continue
            cluster = candidate
            break
        if cluster is None:
            pytest.skip(f"PostgreSQL cannot start: {errors[-1]}")
        yield cluster.admin_url
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def with_database(url: str, name: str) -> str:
    """Returns `url` naming database `name` instead."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@pytest.fixture
def pg_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database URL; the database is dropped afterwards."""
    name = f"llmproxy_{uuid.uuid4().hex[:10]}"
    asyncio.run(admin(pg_admin_url, f'CREATE DATABASE "{name}"'))
    try:
        yield with_database(pg_admin_url, name)
    finally:
        asyncio.run(admin(pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def admin(admin_url: str, sql: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def wait_until(check: object, within: float = 5.0) -> None:
    """Polls `check()` (sync or async) until truthy; raises AssertionError on timeout."""
    deadline = time.monotonic() + within
    while True:
        result = check()  # type: ignore[operator]
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
