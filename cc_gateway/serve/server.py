"""Run the gateway: a supervisor with forked workers on one port (one uvicorn server where fork is missing).

Signals: Ctrl-C/SIGTERM drain and stop; SIGHUP (or a settled edit of config.yaml/.env, see
serve/reload.py) replaces the workers by a new generation without dropping a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn

from cc_gateway.core.errors import GatewayError, PortInUse
from cc_gateway.serve import http, reload
from cc_gateway.serve.litellm.boot import build_app, preload_request_modules, quiet_environment
from cc_gateway.serve.logs import configure_logging
from cc_gateway.serve.preflight import Preflight

log = logging.getLogger("cc_gateway.serve")

# What a worker tells the supervisor over the status pipe: a kind byte and the worker's generation.
READY = b"r"  # serving
DRAINED = b"i"  # its drain is over (idle): it waits for the supervisor's release
_MESSAGE = struct.Struct("<cI")
#: How long a replaced worker may take to finish the streams it is serving (LiteLLM's default timeout).
RETIRE_SECONDS = 600.0
#: How long a new generation of workers may take to start before the reload is abandoned.
START_SECONDS = 180.0


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
    loaded = reload.Loaded(pre.gateway.config_path, reload.fingerprint_of(pre.gateway), _reload_mode(pre))
    app = reload.LoadedEndpoint(build_app(drain, pre.options.body_limit), loaded)
    preload_request_modules()
    gc.freeze()  # before any fork: workers then share these pages instead of copying them
    configure_logging(pre.options.log_level, dict(os.environ))  # again: LiteLLM adds handlers at import
    progress("loading the config and routes")
    protocol, limits_line = http.protocol_class(pre.limits)
    config = uvicorn.Config(
        app,
        host=pre.options.host,
        port=pre.port,
        http=protocol,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=int(pre.options.drain_seconds) + 5,
        timeout_keep_alive=pre.limits.idle_timeout,
    )
    http.raise_fd_limit(pre.limits, pre.workers)
    log.info(limits_line)
    if loaded.mode != "off":
        return Supervisor(pre, config, drain, loaded).run(on_ready)
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


def _reload_mode(pre: Preflight) -> str:
    """watch (the default), signal (--no-reload: SIGHUP only) or off (no fork: one process serves)."""
    if not hasattr(os, "fork"):
        return "off"
    return "watch" if pre.options.reload else "signal"


class Supervisor:
    """Run N forked workers on one port; forward Ctrl-C/SIGTERM; exit 0 when all drained; reload.

    LiteLLM is imported and the app built once, here, before forking: the workers share those
    pages and only run LiteLLM's start-up (config, router) themselves. Each worker is a
    GatewayServer in a process group of its own, so a terminal's Ctrl-C reaches the supervisor
    only and every worker gets exactly one SIGTERM (a second one would cut the drain short).
    A reload forks a new generation into the same slots (same listening sockets, so no queued
    connection is lost) and retires the old one (SIGUSR2) once every new worker is ready.
    """

    RESPAWN_LIMIT = 5

    def __init__(self, pre: Preflight, config: Any, drain: Any, loaded: reload.Loaded) -> None:
        self.pre = pre
        self.config = config
        self.drain = drain
        self.loaded = loaded
        self.pids: dict[int, tuple[int, int]] = {}  # pid -> (worker number, generation)
        self.ready: dict[int, int] = {}  # generation -> workers that reported ready
        self.swap: tuple[reload.Plan, float] | None = None  # a new generation starting, since when
        self.serving = 0  # the generation serving (loaded.generation is the one forked next)
        self.generations = 0  # the last generation number handed out
        self.hup = False
        self.stopping = 0
        self.respawns = 0
        self.failed = False
        self.was_ready = False
        self.released = False  # workers told that every one of them has drained
        self.idle = 0  # workers that reported their drain done
        self.stop_deadline = float("inf")
        self.sockets: list[socket.socket] = []
        self.ready_r, self.ready_w = os.pipe()
        self.loaded.shared = reload.SharedStatus()
        self.reloader = reload.Reloader.start(pre, loaded)

    def run(self, on_ready: Callable[[], None]) -> int:
        """Fork the workers and supervise them until they have all exited."""
        try:
            self.sockets = self._listen()
        except OSError as exc:  # taken between the check and now
            raise PortInUse(f"cannot listen on {self.pre.url}: {exc.strerror}", hint="pass --port") from None
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, self._on_hup)
        try:
            for number in range(self.pre.workers):
                self._spawn(number)
            self._wait_ready(on_ready)
            while self.pids:
                self._reap(respawn=True, timeout=0.2)
                self._read_status()
                self._release_when_drained()
                self._reload_step()
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
            self.pids[pid] = (number, self.loaded.generation)
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
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        os.close(self.ready_r)
        generation = self.loaded.generation
        threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
        server = WorkerServer(
            self.config,
            status_w=self.ready_w,
            drain=self.drain,
            drain_seconds=self.pre.options.drain_seconds,
            on_ready=lambda: os.write(self.ready_w, _MESSAGE.pack(READY, generation)),
            generation=generation,
        )
        signal.signal(signal.SIGUSR1, lambda *_: server.released.set())
        signal.signal(signal.SIGUSR2, lambda *_: server.retire())
        server.run(sockets=[sock])
        return 1 if server.startup_failed else 0

    def _read_status(self, wait: float = 0) -> None:
        """Count the workers' READY (per generation) and DRAINED messages waiting in the pipe."""
        import select

        while select.select([self.ready_r], [], [], wait)[0]:
            data = os.read(self.ready_r, _MESSAGE.size * 64)  # writes are atomic: whole messages only
            for kind, generation in _MESSAGE.iter_unpack(data):
                if kind == READY:
                    self.ready[generation] = self.ready.get(generation, 0) + 1
                elif kind == DRAINED:
                    self.idle += 1
            wait = 0

    def _release_when_drained(self) -> None:
        """Once stopping: let the workers exit when every one has drained (or the drain is over)."""
        if not self.stopping or self.released:
            return
        if self.idle >= len(self.pids) or time.monotonic() > self.stop_deadline:
            self.released = True
            self._signal_all(signal.SIGUSR1)

    def _wait_ready(self, on_ready: Callable[[], None]) -> None:
        """Show the ready panel once every worker is serving (not if one failed first)."""
        generation = self.loaded.generation
        while self.ready.get(generation, 0) < self.pre.workers and not (self.stopping or self.failed) and self.pids:
            self._read_status(0.2)
            self._reap(respawn=False, timeout=0)
        if self.ready.get(generation, 0) >= self.pre.workers and not self.stopping and not self.failed:
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
            (number, generation), code = self.pids.pop(pid, (-1, -1)), os.waitstatus_to_exitcode(status)
            if self.stopping:
                self.failed = self.failed or code not in (0, -signal.SIGTERM)
            elif self.swap is not None and generation == self.loaded.generation:  # died before all were ready
                self._abandon_swap(f"a new worker exited (code {code}) before serving; see the lines above")
            elif generation != self.serving:  # a replaced worker that finished
                if code != 0:
                    log.warning("a replaced worker exited with code %s", code)
            elif self.swap is not None:
                log.error("worker %d exited (code %s) during a reload: the new generation replaces it", number, code)
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

    def _signal_all(self, sig: int, generation: int | None = None) -> None:
        for pid, (_, gen) in list(self.pids.items()):
            if generation is None or gen == generation:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)

    # ----------------------------------------------------------------------- reload

    def _on_hup(self, sig: int, frame: Any) -> None:
        """SIGHUP: check config.yaml and .env now (even with --no-reload)."""
        self.hup = True

    def _reload_step(self) -> None:
        """Start a reload when the files changed (or SIGHUP asked); finish or abandon one under way."""
        if self.stopping:
            return
        if self.swap is not None:
            self._advance_swap()
            return
        asked, self.hup = self.hup, False
        fingerprint = self.reloader.poll(asked=asked)
        if fingerprint is None:
            return
        if asked and fingerprint == self.loaded.fingerprint:
            log.info("SIGHUP: config.yaml and .env are as loaded; nothing to reload")
            return
        plan = self.reloader.prepare()
        if plan is None:
            return
        self.reloader.commit(plan)
        self.generations += 1
        self.loaded.generation = self.generations
        self.config.timeout_keep_alive = plan.pre.limits.idle_timeout  # for the workers forked from now on
        http.apply_limits(plan.pre.limits)
        log.info("config changed: starting %d new worker(s) with it", self.pre.workers)
        self.swap = (plan, time.monotonic())
        for number in range(self.pre.workers):
            self._spawn(number)

    def _advance_swap(self) -> None:
        """Every new worker ready: retire the old generations. Too slow: give up, the old ones serve on."""
        assert self.swap is not None
        plan, started = self.swap
        if self.ready.get(self.loaded.generation, 0) >= self.pre.workers:
            old = sorted({g for _, g in self.pids.values() if g != self.loaded.generation})
            for generation in old:
                self._signal_all(signal.SIGUSR2, generation)
            self.swap = None
            self.serving = self.loaded.generation
            self.reloader.done(plan)
            log.warning(
                "reloaded %s: %d new worker(s) serve it; the replaced ones finish their requests and exit",
                " and ".join(plan.changed) or "config.yaml and .env",
                self.pre.workers,
            )
        elif time.monotonic() - started > START_SECONDS:
            self._abandon_swap(f"the new workers did not start within {START_SECONDS:.0f} s")

    def _abandon_swap(self, reason: str) -> None:
        """Retire the new generation's workers and go back to what the old ones run."""
        self._signal_all(signal.SIGUSR2, self.loaded.generation)
        self.swap = None
        self.reloader.rollback(f"LiteLLM could not start with the edited files: {reason}")
        self.loaded.generation = self.serving
        self.config.timeout_keep_alive = self.reloader.pre.limits.idle_timeout
        http.apply_limits(self.reloader.pre.limits)
        serving = {number for number, generation in self.pids.values() if generation == self.serving}
        for number in range(self.pre.workers):
            if number not in serving:  # one that exited during the attempt
                self._spawn(number)


class WorkerServer(GatewayServer):
    """A worker: after its own drain it keeps answering 503 until the supervisor says all have drained.

    Otherwise an idle worker would close its socket at once and a client connecting during the
    drain could land on it and be reset, where one process answers 503 with Retry-After.
    """

    def __init__(self, config: Any, *, status_w: int, generation: int, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.status_w = status_w
        self.generation = generation
        self.released = threading.Event()  # set by SIGUSR1 from the supervisor

    def retire(self) -> None:
        """SIGUSR2 (a reload replaced this worker): stop accepting, finish what is running, exit."""
        self.retire_asked = True
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(lambda: loop.create_task(self._retire()))

    async def startup(self, sockets: Any = None) -> None:
        """A worker told to retire before its loop ran (an abandoned reload) retires once it has one."""
        if getattr(self, "retire_asked", False):
            asyncio.get_running_loop().create_task(self._retire())
        await super().startup(sockets)

    async def _retire(self) -> None:
        for server in getattr(self, "servers", []):
            server.close()  # this process's copy of the socket: the new worker still accepts on it
        http.retire_connections()  # each response from now on closes its connection
        deadline = time.monotonic() + max(self.drain_seconds, RETIRE_SECONDS)
        # Kept-alive connections close after their next response, or at the idle timeout.
        while (self.server_state.connections or self.drain.inflight) and time.monotonic() < deadline:
            if self.drain.draining:
                return  # a SIGTERM arrived: its drain takes over
            await asyncio.sleep(0.1)
        if self.drain.inflight:
            await self._drain()  # bounded by --drain-seconds; the streams still running end with an error event
        self.should_exit = True

    async def _drain_then_exit(self) -> None:
        await self._drain()
        try:
            os.write(self.status_w, _MESSAGE.pack(DRAINED, self.generation))
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
