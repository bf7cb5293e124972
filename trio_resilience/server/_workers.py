"""``serve --workers N``: N Hypercorn worker processes on one listening socket,
supervised so that the death of one is a non-event for the others.

Stock Hypercorn (0.18) shuts the whole server down when one worker process dies.
Here the parent binds the sockets once, starts N workers (``spawn``; each serves
the sockets it inherits with Hypercorn's Trio worker, its app keeping its shared
state in ``SERVER_STATE_URL``), and watches them:

- a worker that dies while serving (SIGKILL, a crash) is replaced at once; one that
  dies again within a second of starting is replaced after a growing pause (up to
  5 s), so a crash loop does not spin;
- a worker that fails *before* it listens (Redis refused it, say) stops the whole
  server: such failures do not go away by retrying, and the worker has already
  printed the one-line reason; the parent exits 2;
- SIGINT or SIGTERM to the parent sends SIGTERM to every worker, which drains its
  in-flight requests for ``shutdown_grace_period`` seconds and exits; workers still
  running 5 s after that are killed. A worker ignores SIGINT (Ctrl+C reaches the
  whole process group; the parent decides) and stops by itself if its parent dies;
- with metrics on, the workers share a directory of prometheus-client's
  multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, a new temporary one removed at
  the end unless the environment names one): ``GET /metrics`` from any worker
  serves the whole server's numbers. A dead worker's counts stay; its gauges go
  (``mark_process_dead``).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from multiprocessing.process import BaseProcess
from types import FrameType

import attrs
import trio
from hypercorn.config import Sockets
from prometheus_client.multiprocess import mark_process_dead

from ._logging import configure_logging, get_logger
from ._metrics import MULTIPROCESS_ENV
from ._runner import hypercorn_config, serve_forever
from ._settings import ServerSettings

STARTUP_FAILED = 3
"""A worker's exit code when it failed before it listened."""
_KILL_MARGIN = 5.0
_QUICK_DEATH = 1.0
_MAX_PAUSE = 5.0


@attrs.define(eq=False)
class _Worker:
    index: int
    process: BaseProcess
    started_at: float
    quick_deaths: int = 0


def serve_workers(settings: ServerSettings) -> int:
    """Serve with ``settings.workers`` supervised processes; the exit code.

    Binding happens here, so a bad address fails before any worker starts (the
    caller translates it into a one-line start-up error).
    """
    config = hypercorn_config(settings)
    sockets = config.create_sockets()
    for sock in (*sockets.secure_sockets, *sockets.insecure_sockets):
        sock.listen(config.backlog)
    with _shared_metrics(settings.metrics_enabled) as directory:
        return _Supervisor(settings, sockets, directory).run()


@contextlib.contextmanager
def _shared_metrics(enabled: bool) -> Iterator[str | None]:
    """The workers' metrics directory (see the module), set in the environment
    they inherit; None with metrics off."""
    if not enabled:
        yield None
        return
    if given := os.environ.get(MULTIPROCESS_ENV):
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="trio-resilience-metrics-") as directory:
        os.environ[MULTIPROCESS_ENV] = directory
        try:
            yield directory
        finally:
            del os.environ[MULTIPROCESS_ENV]


class _Supervisor:
    def __init__(
        self, settings: ServerSettings, sockets: Sockets, metrics_dir: str | None
    ) -> None:
        self.settings = settings
        self.sockets = sockets
        self.metrics_dir = metrics_dir
        self.context = multiprocessing.get_context("spawn")
        self.workers: dict[int, _Worker] = {}
        self.pending: list[tuple[float, int, int]] = []  # (due, index, quick deaths)
        self.stopping = False
        self.exit_code = 0
        self.log = get_logger()
        self.wake_read, self.wake_write = socket.socketpair()

    def run(self) -> int:
        if self.metrics_dir is not None:
            self.log.info("workers share metrics", directory=self.metrics_dir)
        for sock in (self.wake_read, self.wake_write):
            sock.setblocking(False)
        previous = {
            signum: signal.signal(signum, self._on_signal)
            for signum in (signal.SIGINT, signal.SIGTERM)
        }
        old_wakeup = signal.set_wakeup_fd(self.wake_write.fileno())
        try:
            for index in range(self.settings.workers):
                self._start(index, 0)
            while not self.stopping:
                self._watch()
            self._stop_all()
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self.wake_read.close()
            self.wake_write.close()
        return self.exit_code

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if not self.stopping:
            self.log.info("shutdown requested", signal=signal.Signals(signum).name)
        self.stopping = True

    def _start(self, index: int, quick_deaths: int) -> None:
        process = self.context.Process(
            target=_worker_main,
            args=(self.settings, self.sockets, os.getpid()),
            name=f"trio-resilience-worker-{index}",
        )
        process.start()
        self.workers[index] = _Worker(index, process, time.monotonic(), quick_deaths)
        self.log.info("worker started", worker=index, pid=process.pid)

    def _watch(self) -> None:
        now = time.monotonic()
        for due, index, deaths in [p for p in self.pending if p[0] <= now]:
            self.pending.remove((due, index, deaths))
            self._start(index, deaths)
        timeout = min((due for due, _, _ in self.pending), default=now + 1.0) - now
        sentinels = {w.process.sentinel: w for w in self.workers.values()}
        ready = multiprocessing.connection.wait(
            [*sentinels, self.wake_read], timeout=max(0.0, timeout)
        )
        if self.wake_read in ready:
            with contextlib.suppress(BlockingIOError):
                self.wake_read.recv(4096)
        for sentinel in ready:
            if isinstance(sentinel, int) and (worker := sentinels.get(sentinel)):
                self._reap(worker)

    def _reap(self, worker: _Worker) -> None:
        worker.process.join()
        del self.workers[worker.index]
        self._forget_gauges(worker)
        code = worker.process.exitcode
        if self.stopping:
            return
        if code == STARTUP_FAILED:
            self.log.error("worker failed to start; stopping", worker=worker.index)
            self.stopping, self.exit_code = True, 2
            return
        lived = time.monotonic() - worker.started_at
        deaths = worker.quick_deaths + 1 if lived < _QUICK_DEATH else 0
        pause = 0.0 if deaths == 0 else min(_MAX_PAUSE, 0.1 * 2**deaths)
        self.log.warning(
            "worker died; replacing it",
            worker=worker.index,
            pid=worker.process.pid,
            exit_code=code,
            restart_in_seconds=pause,
        )
        self.pending.append((time.monotonic() + pause, worker.index, deaths))

    def _stop_all(self) -> None:
        self.pending.clear()
        for worker in self.workers.values():
            if worker.process.is_alive() and worker.process.pid is not None:
                os.kill(worker.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.settings.shutdown_grace_period + _KILL_MARGIN
        for worker in self.workers.values():
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                self.log.warning(
                    "worker did not stop in time; killed", pid=worker.process.pid
                )
                worker.process.kill()
                worker.process.join()
            self._forget_gauges(worker)
        self.workers.clear()

    def _forget_gauges(self, worker: _Worker) -> None:
        """A dead worker's gauges (requests in flight, waiting) no longer count."""
        if self.metrics_dir is not None and worker.process.pid is not None:
            mark_process_dead(worker.process.pid, self.metrics_dir)  # type: ignore[no-untyped-call]


def _worker_main(settings: ServerSettings, sockets: Sockets, parent: int) -> None:
    """A worker process: serve the inherited sockets until SIGTERM."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    configure_logging(
        level=settings.log_level, fmt=settings.log_format, file=settings.log_file
    )
    listening = False

    class _Status(trio.TaskStatus[list[str]]):
        def started(self, value: list[str] | None = None) -> None:
            nonlocal listening
            listening = True

    async def stop_on_sigterm_or_orphaned() -> None:
        with trio.open_signal_receiver(signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:

                async def orphaned() -> None:
                    while True:  # no event tells a process its parent died
                        await trio.sleep(1)
                        if os.getppid() != parent:
                            break
                    get_logger().warning("parent process gone; stopping")
                    nursery.cancel_scope.cancel()

                nursery.start_soon(orphaned)
                async for _ in signals:
                    nursery.cancel_scope.cancel()

    try:
        trio.run(
            lambda: serve_forever(
                settings,
                shutdown_trigger=stop_on_sigterm_or_orphaned,
                sockets=sockets,
                task_status=_Status(),
            )
        )
    except BaseException as error:
        if listening:
            raise
        print(f"Error: worker could not start: {_reason(error)}", file=sys.stderr)
        sys.exit(STARTUP_FAILED)


def _reason(error: BaseException) -> str:
    from .._exceptions import leaf_exceptions

    leaves = leaf_exceptions(error)
    return "; ".join(str(leaf) or type(leaf).__name__ for leaf in leaves)
