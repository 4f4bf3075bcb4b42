"""``rune-server serve --workers N``: N worker processes on one machine, one supervisor.

A pre-fork over one shared listening socket, not ``SO_REUSEPORT`` (one socket per
worker): the supervisor binds the port once (so ``--port 0`` picks one port for all),
unseals the keys once, and forks the workers, which inherit the socket, the TLS
context and the identity; no key or passphrase crosses a pipe. With a shared socket a
worker that dies loses no connection the kernel had queued for it (with
``SO_REUSEPORT`` the kernel hashes connections to the dead socket's backlog, and they
are reset), and its replacement accepts on the same socket at once. The cost: every
idle worker wakes for each new connection and one wins the ``accept()``; at the rate
connections arrive for a mail server that is noise, and the kernel spreads them
about evenly (docs/performance.md, issue 14).

The supervisor runs no event loop and no thread: it waits on a self-pipe for signals
and on a pipe on which each worker reports that it listens. It prints the ready line
once, when every worker listens; restarts a worker that dies (logged); stops the
server when one keeps dying before it listens (or just after); on SIGTERM or SIGINT tells every
worker to stop (each drains like a single server) and exits 0 once they have.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import logging
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from . import logsetup
from .acceptor import open_listeners_now
from .admission import ACCEPT_BACKLOG
from .config import MIN_POOL, OperatorError, ServerConfig

log = logging.getLogger("rune_proto.server")

# A worker that dies this many times in a row before it listens, or within
# QUICK_DEATH seconds of its start, stops the server: it will not get better by itself
# (a wrong database URL, a port it may not use), and restarting it would only spin.
START_FAILURES = 3
QUICK_DEATH = 10.0
# How long stopping workers may drain: the server's own grace, plus time to exit.
STOP_TIMEOUT = 45.0
_PR_SET_PDEATHSIG = 1
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_HANDLED = (*_STOP_SIGNALS, signal.SIGCHLD, signal.SIGHUP)

# Runs one worker in the forked child: (slot, report_ready) -> exit code.
WorkerMain = Callable[[int, Callable[[], None]], int]


class WorkersError(Exception):
    """The supervisor gave up (a worker kept dying at start); one line for the operator."""


def share_limits(config: ServerConfig, workers: int) -> ServerConfig:
    """One worker's share of the limits that are the whole server's, not a process's.

    ``max_connections``, ``login_reserved_connections``, the memory budget and the
    database pool are split evenly (rounded down; at least one connection, and the
    smallest pool a worker can work with), so N workers hold no more connections,
    descriptors, line memory or PostgreSQL backends than one process would. The
    per-source share is not split: it bounds one source within a worker.
    """
    if workers <= 1:
        return config
    return replace(
        config,
        max_connections=max(1, config.max_connections // workers),
        login_reserved_connections=config.login_reserved_connections // workers,
        memory_budget_mib=config.memory_budget_mib / workers,
        database_pool=max(MIN_POOL, config.database_pool // workers),
    )


def worker_metrics_port(config: ServerConfig, slot: int) -> int:
    """Worker ``slot`` (from 0) serves its metrics on ``metrics_port + slot`` (0: off)."""
    return config.metrics_port + slot if config.metrics_port else 0


@dataclass
class _Worker:
    slot: int
    pid: int = 0
    ready: bool = False
    started: float = 0.0  # time.monotonic() of its fork
    start_failures: int = 0  # quick deaths in a row


class Supervisor:
    """Forks ``count`` workers running ``main`` and keeps them running until told to stop."""

    def __init__(self, count: int, main: WorkerMain, on_ready: Callable[[], None]) -> None:
        self._workers = [_Worker(slot) for slot in range(count)]
        self._main = main
        self._on_ready = on_ready
        self._announced = False
        self._stopping = False
        self._signals: list[int] = []
        self._ready_r, self._ready_w = os.pipe()
        self._wake_r, self._wake_w = os.pipe()
        for fd in (self._wake_r, self._wake_w):
            os.set_blocking(fd, False)

    def run(self) -> int:
        """Serve until a stop signal; 0 after a graceful stop (raises WorkersError)."""
        previous = {signum: signal.signal(signum, self._on_signal) for signum in _HANDLED}
        old_wakeup = signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        try:
            for worker in self._workers:
                self._spawn(worker)
            while not self._stopping:
                self._wait(1.0)
                self._handle_signals()
                self._reap()
            return self._stop_all()
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            for fd in (self._ready_r, self._ready_w, self._wake_r, self._wake_w):
                os.close(fd)

    def _on_signal(self, signum: int, frame: object) -> None:
        self._signals.append(signum)

    def _wait(self, timeout: float) -> None:
        """Until a signal or a ready report arrives (or ``timeout``)."""
        try:
            readable, _, _ = select.select([self._wake_r, self._ready_r], [], [], timeout)
        except InterruptedError:
            return
        if self._wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_r, 512)
        if self._ready_r in readable:
            for slot in os.read(self._ready_r, 512):
                self._mark_ready(slot)

    def _mark_ready(self, slot: int) -> None:
        if slot >= len(self._workers):
            return
        worker = self._workers[slot]
        worker.ready = True
        if not self._announced and all(w.ready for w in self._workers):
            self._announced = True
            log.info("%d workers serving", len(self._workers))
            self._on_ready()

    def _handle_signals(self) -> None:
        while self._signals:
            signum = self._signals.pop(0)
            if signum in _STOP_SIGNALS:
                self._stopping = True
            elif signum == signal.SIGHUP:
                log.info("SIGHUP ignored: the config is read at start; restart to apply changes")

    def _reap(self) -> None:
        """Start again each worker that died; give up on one that keeps dying at start."""
        for worker in self._workers:
            if not worker.pid:
                continue
            try:
                pid, status = os.waitpid(worker.pid, os.WNOHANG)
            except ChildProcessError:
                pid, status = worker.pid, 0
            if pid == 0:
                continue
            how = _describe(status)
            worker.pid = 0
            if self._stopping:
                continue
            quick = not worker.ready or time.monotonic() - worker.started < QUICK_DEATH
            worker.start_failures = worker.start_failures + 1 if quick else 0
            if worker.start_failures >= START_FAILURES:
                self._stopping = True
                self._stop_all()
                raise WorkersError(
                    f"worker {worker.slot + 1} {how} before it listened or within"
                    f" {QUICK_DEATH:g} s, {START_FAILURES} times in a row; stopping"
                    " (its error is above)"
                )
            log.warning("worker %d %s; starting it again", worker.slot + 1, how)
            worker.ready = False
            self._spawn(worker)

    def _spawn(self, worker: _Worker) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        supervisor = os.getpid()
        # Signals wait until each side is ready for them: the child's would otherwise
        # reach the supervisor's handler, copied into it, and be lost.
        signal.pthread_sigmask(signal.SIG_BLOCK, _HANDLED)
        try:
            pid = os.fork()
        except BaseException:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _HANDLED)
            raise
        if pid:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _HANDLED)
            worker.pid = pid
            worker.started = time.monotonic()
            return
        code = 1
        try:
            self._become_worker(supervisor)
            slot = worker.slot

            def report_ready() -> None:
                os.write(self._ready_w, bytes([slot]))

            code = self._main(slot, report_ready)
        except BaseException:
            logging.getLogger("rune_proto.server").exception("worker %d failed", worker.slot + 1)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def _become_worker(self, supervisor: int) -> None:
        """In the child: the default signal handling back, and gone with the supervisor."""
        signal.set_wakeup_fd(-1)
        for signum in _HANDLED:
            signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _HANDLED)  # a pending SIGTERM ends it here
        os.close(self._ready_r)
        os.close(self._wake_r)
        os.close(self._wake_w)
        # Own process group: a terminal's Ctrl-C reaches the supervisor only, which
        # passes one SIGTERM on (a second signal would make a worker abort, not drain).
        os.setpgid(0, 0)
        _die_with_parent(supervisor)

    def _stop_all(self) -> int:
        """SIGTERM to every worker, wait (bounded), SIGKILL the late; 0 if all drained."""
        live = {w.pid: w for w in self._workers if w.pid}
        for pid in live:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        code = 0
        while live and time.monotonic() < deadline:
            for pid in list(live):
                try:
                    done, status = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    done, status = pid, 0
                if not done:
                    continue
                worker = live.pop(pid)
                worker.pid = 0
                if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
                    log.warning("worker %d %s while stopping", worker.slot + 1, _describe(status))
                    code = 1
            if live:
                self._wait(min(1.0, max(0.0, deadline - time.monotonic())))  # SIGCHLD wakes it
        for pid, worker in live.items():
            log.warning("worker %d did not stop in time; killed", worker.slot + 1)
            _signal(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            worker.pid = 0
            code = 1
        log.info("stopped; %d workers", len(self._workers))
        return code


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with {os.waitstatus_to_exitcode(status)}"


def _die_with_parent(supervisor: int) -> None:
    """Linux: SIGTERM this worker when the supervisor dies (so no worker is orphaned)."""
    library = ctypes.util.find_library("c")
    if library is None:
        return
    try:
        prctl = ctypes.CDLL(library, use_errno=True).prctl
    except (OSError, AttributeError):
        return
    if prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        log.debug("prctl failed (%s)", errno.errorcode.get(ctypes.get_errno(), "?"))
    if os.getppid() != supervisor:  # it died before prctl
        os._exit(1)


# Serves one worker until it is told to stop: (its config, the shared listeners, ready).
ServeOne = Callable[[ServerConfig, list[socket.socket], Callable[[str, int], None]], None]


def run_workers(
    count: int,
    config: ServerConfig,
    host: str,
    port: int,
    serve_one: ServeOne,
    ready: Callable[[str, int], None],
) -> int:
    """Bind once, fork ``count`` workers each serving its share, supervise them.

    ``ready`` is called once, with the bound address, when every worker listens.
    """
    listeners = open_listeners_now(host, port, ACCEPT_BACKLOG)
    bound = listeners[0].getsockname()
    share = share_limits(config, count)

    def main(slot: int, report_ready: Callable[[], None]) -> int:
        logsetup.configure(config.log_format, config.log_level, tag=f"worker {slot + 1}: ")
        mine = replace(share, metrics_port=worker_metrics_port(config, slot))
        try:
            serve_one(mine, listeners, lambda _host, _port: report_ready())
        except OperatorError as exc:
            print(f"rune-server: worker {slot + 1}: {exc}", file=sys.stderr, flush=True)
            return 2
        except OSError as exc:  # its metrics port in use, say
            reason = exc.strerror or exc
            print(f"rune-server: worker {slot + 1}: {reason}", file=sys.stderr, flush=True)
            return 2
        return 0

    try:
        return Supervisor(count, main, lambda: ready(str(bound[0]), int(bound[1]))).run()
    finally:
        for sock in listeners:
            sock.close()
