"""Run the gateway: one uvicorn server, or a supervisor with forked workers on one port; drain on signals."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn

from cc_gateway.core.errors import GatewayError, PortInUse
from cc_gateway.serve.litellm.boot import build_app, preload_request_modules, quiet_environment
from cc_gateway.serve.logs import configure_logging
from cc_gateway.serve.preflight import Preflight

log = logging.getLogger("cc_gateway.serve")

# What a worker tells the supervisor over the status pipe, one byte each.
READY = b"r"  # serving
DRAINED = b"i"  # its drain is over (idle): it waits for the supervisor's release


def run(pre: Preflight, *, progress: Callable[[str], None], on_ready: Callable[[], None]) -> int:
    """Run the proxy until Ctrl-C/SIGTERM, then drain in-flight requests; return the exit code."""
    configure_logging(pre.options.log_level, dict(os.environ))
    quiet_environment(pre.gateway.config_path)
    progress("loading LiteLLM")
    from cc_gateway.serve.middleware import DrainState

    drain = DrainState()
    # LiteLLM's proxy leaves ~900k objects behind at import; collecting while they are created
    # is a third of its load time. Collection resumes, with those objects frozen, once serving.
    gc.disable()
    app = build_app(drain, pre.options.body_limit)
    preload_request_modules()
    gc.freeze()  # before any fork: workers then share these pages instead of copying them
    configure_logging(pre.options.log_level, dict(os.environ))  # again: LiteLLM adds handlers at import
    progress("loading the config and routes")
    config = uvicorn.Config(
        app,
        host=pre.options.host,
        port=pre.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=int(pre.options.drain_seconds) + 5,
        timeout_keep_alive=30,
    )
    if pre.workers > 1:
        return Supervisor(pre, config, drain).run(on_ready)
    server = GatewayServer(config, drain=drain, drain_seconds=pre.options.drain_seconds, on_ready=on_ready)
    server.run()
    if server.startup_failed:
        raise GatewayError("LiteLLM failed to start; see the log lines above", hint="run `cc-gateway doctor`")
    return 0


class GatewayServer(uvicorn.Server):
    """uvicorn.Server with cc-gateway's signal handling: drain first, exit 0, never re-raise."""

    def __init__(self, config: Any, *, drain: Any, drain_seconds: float, on_ready: Callable[[], None]) -> None:
        super().__init__(config)
        self.drain = drain
        self.drain_seconds = drain_seconds
        self.on_ready = on_ready
        self.startup_failed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: Any = None) -> None:
        """Start serving, then report readiness (or a failed start)."""
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)
        if self.should_exit:
            self.startup_failed = not self.drain.draining  # told to stop while starting: not a failure
            return
        gc.freeze()  # what LiteLLM's start-up built lives as long as the process: never scan it again
        gc.enable()
        self.on_ready()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Handle SIGINT/SIGTERM ourselves; unlike uvicorn, don't re-raise them afterwards (exit 0)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, sig: int, frame: Any) -> None:
        """First signal: drain. A second Ctrl-C: stop now."""
        if self.drain.draining:
            self.force_exit = self.force_exit or sig == signal.SIGINT
            self.should_exit = True
            return
        self.drain.draining = True
        log.warning("shutting down: draining %d request(s) in flight", self.drain.inflight)
        loop = self._loop
        if loop is None:
            self.should_exit = True
            return
        loop.call_soon_threadsafe(lambda: loop.create_task(self._drain_then_exit()))

    async def _drain_then_exit(self) -> None:
        """Wait (bounded) for in-flight requests, then let uvicorn shut down."""
        await self._drain()
        self.should_exit = True

    async def _drain(self) -> None:
        """Wait (bounded) for in-flight requests; end the streams that outlast the drain."""
        if self.drain.inflight:
            try:
                await asyncio.wait_for(self.drain.idle.wait(), timeout=self.drain_seconds)
            except TimeoutError:
                log.warning("drain timed out with %d request(s) still running", self.drain.inflight)
                if self.drain.abort_streams():  # each cut stream ends with an error event
                    await asyncio.sleep(0.2)


# --------------------------------------------------------------------------- workers


class Supervisor:
    """Run N forked workers on one port; forward Ctrl-C/SIGTERM; exit 0 when all drained.

    LiteLLM is imported and the app built once, here, before forking: the workers share those
    pages and only run LiteLLM's start-up (config, router) themselves. Each worker is a
    GatewayServer in a process group of its own, so a terminal's Ctrl-C reaches the supervisor
    only and every worker gets exactly one SIGTERM (a second one would cut the drain short).
    """

    RESPAWN_LIMIT = 5

    def __init__(self, pre: Preflight, config: Any, drain: Any) -> None:
        self.pre = pre
        self.config = config
        self.drain = drain
        self.pids: dict[int, int] = {}  # pid -> worker number
        self.stopping = 0
        self.respawns = 0
        self.failed = False
        self.was_ready = False
        self.released = False  # workers told that every one of them has drained
        self.idle = 0  # workers that reported their drain done
        self.stop_deadline = float("inf")
        self.sockets: list[socket.socket] = []
        self.ready_r, self.ready_w = os.pipe()

    def run(self, on_ready: Callable[[], None]) -> int:
        """Fork the workers and supervise them until they have all exited."""
        try:
            self.sockets = self._listen()
        except OSError as exc:  # taken between the check and now
            raise PortInUse(f"cannot listen on {self.pre.url}: {exc.strerror}", hint="pass --port") from None
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            for number in range(self.pre.workers):
                self._spawn(number)
            self._wait_ready(on_ready)
            while self.pids:
                self._reap(respawn=True, timeout=0.2)
                self._release_when_drained()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for sock in self.sockets:
                sock.close()
            os.close(self.ready_r)
            os.close(self.ready_w)
        if self.failed:
            what = "a worker stopped" if self.was_ready else "LiteLLM failed to start"
            raise GatewayError(f"{what}; see the log lines above", hint="run `cc-gateway doctor`")
        return 0

    def _listen(self) -> list[socket.socket]:
        """One listening socket per worker (SO_REUSEPORT), else one shared by all.

        With one shared socket, whichever worker wakes first accepts, and keep-alive connections
        stay where they landed: measured here, one worker often served every connection of a
        burst while the other idled. Separate SO_REUSEPORT sockets let the kernel spread
        connections evenly. Only processes of the same user can join such a group, and the port
        was checked free (without SO_REUSEPORT) just before.
        """
        if not hasattr(socket, "SO_REUSEPORT"):
            return [self.config.bind_socket()]
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        sockets = []
        for _ in range(self.pre.workers):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((self.config.host, self.config.port))
            sock.listen(self.config.backlog)
            sock.set_inheritable(True)
            sockets.append(sock)
        return sockets

    def _spawn(self, number: int) -> None:
        pid = os.fork()
        if pid:
            self.pids[pid] = number
            return
        code = 1
        try:
            code = self._worker(self.sockets[number % len(self.sockets)])
        finally:
            os._exit(code)

    def _worker(self, sock: socket.socket) -> int:
        """Body of a worker process: serve until told to stop, then drain."""
        os.setpgid(0, 0)
        for other in self.sockets:
            if other is not sock:
                other.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        os.close(self.ready_r)
        threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
        server = WorkerServer(
            self.config,
            status_w=self.ready_w,
            drain=self.drain,
            drain_seconds=self.pre.options.drain_seconds,
            on_ready=lambda: os.write(self.ready_w, READY),
        )
        signal.signal(signal.SIGUSR1, lambda *_: server.released.set())
        server.run(sockets=[sock])
        return 1 if server.startup_failed else 0

    def _release_when_drained(self) -> None:
        """Once stopping: let the workers exit when every one has drained (or the drain is over)."""
        import select

        if not self.stopping or self.released:
            return
        while select.select([self.ready_r], [], [], 0)[0]:
            self.idle += os.read(self.ready_r, 64).count(DRAINED)
        if self.idle >= len(self.pids) or time.monotonic() > self.stop_deadline:
            self.released = True
            self._signal_all(signal.SIGUSR1)

    def _wait_ready(self, on_ready: Callable[[], None]) -> None:
        """Show the ready panel once every worker is serving (not if one failed first)."""
        import select

        ready = 0
        while ready < self.pre.workers and not self.stopping and not self.failed and self.pids:
            if select.select([self.ready_r], [], [], 0.2)[0]:
                data = os.read(self.ready_r, 64)
                ready, self.idle = ready + data.count(READY), self.idle + data.count(DRAINED)
            self._reap(respawn=False, timeout=0)
        if ready >= self.pre.workers and not self.stopping and not self.failed:
            self.was_ready = True
            on_ready()

    def _reap(self, *, respawn: bool, timeout: float) -> None:
        """Collect exited workers; replace one that died while serving (respawn), else stop all."""
        deadline = time.monotonic() + timeout
        while self.pids:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                if time.monotonic() >= deadline:
                    return
                time.sleep(0.05)
                continue
            number, code = self.pids.pop(pid, -1), os.waitstatus_to_exitcode(status)
            if self.stopping:
                self.failed = self.failed or code not in (0, -signal.SIGTERM)
            elif not respawn or self.respawns >= self.RESPAWN_LIMIT:
                log.error("worker %d exited (code %s): stopping the gateway", number, code)
                self.failed = True
                self._on_signal(signal.SIGTERM, None)
            else:
                log.error("worker %d exited unexpectedly (code %s): starting a new one", number, code)
                self.respawns += 1
                self._spawn(number)

    def _on_signal(self, sig: int, frame: Any) -> None:
        """First signal: every worker drains. Another one: every worker stops now."""
        self.stopping += 1
        if self.stopping == 1:
            log.warning("shutting down: %d worker(s) draining", len(self.pids))
            self.stop_deadline = time.monotonic() + self.pre.options.drain_seconds + 5
        self._signal_all(signal.SIGTERM if self.stopping == 1 else signal.SIGINT)

    def _signal_all(self, sig: int) -> None:
        for pid in list(self.pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


class WorkerServer(GatewayServer):
    """A worker: after its own drain it keeps answering 503 until the supervisor says all have drained.

    Otherwise an idle worker would close its socket at once and a client connecting during the
    drain could land on it and be reset, where one process answers 503 with Retry-After.
    """

    def __init__(self, config: Any, *, status_w: int, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.status_w = status_w
        self.released = threading.Event()  # set by SIGUSR1 from the supervisor

    async def _drain_then_exit(self) -> None:
        await self._drain()
        try:
            os.write(self.status_w, DRAINED)
        except OSError:  # the supervisor is gone (killed): nobody will release us, so stop after our own drain
            self.should_exit = True
            return
        deadline = time.monotonic() + self.drain_seconds + 10  # never outlive a lost supervisor for long
        while not self.released.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        self.should_exit = True


def _exit_with_parent(parent: int) -> None:
    """In a worker: start draining when the supervisor is gone (killed without a chance to tell us)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)
