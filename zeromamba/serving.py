"""Serving one model to several users at once: a pool of predictor copies (:class:`PredictorPool`).

``zeromamba app`` answers requests in parallel, so each worker thread owns a copy of the predictor
(weights are copied, so memory grows with the workers): torch modules are not meant to be run by
two threads at once, and an explanation runs backward passes through the model. The CPU cores are
split among the workers (``torch.set_num_threads`` in each worker thread, which also bounds the
OpenMP threads of zeromamba's own kernels there), so that N parallel requests do not start N times
all-cores threads. Every request has a time limit, counted from when it was handed to the pool
(waiting included): past it the caller gets a :class:`~zeromamba.errors.RequestTimeoutError`; a
computation already running cannot be stopped, and its worker takes the next request when it ends.
With ``max_waiting``, a request that finds every worker busy and that many requests waiting is
refused at once (the same error), whichever route it came by.
"""

from __future__ import annotations

import concurrent.futures
import copy
import math
import os
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import torch

from .errors import ConfigError, RequestTimeoutError
from .predictor import Predictor

__all__ = ["DEFAULT_REQUEST_TIMEOUT", "MAX_WORKERS", "PredictorPool", "available_cores", "default_workers"]

T = TypeVar("T")

#: seconds one request may take, waiting for a worker included
DEFAULT_REQUEST_TIMEOUT = 120.0
#: the most workers :func:`default_workers` chooses (each holds a copy of the model)
MAX_WORKERS = 4


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity where the platform tells it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def default_workers() -> int:
    """One worker per core, at most :data:`MAX_WORKERS`."""
    return min(available_cores(), MAX_WORKERS)


class PredictorPool:
    """``workers`` copies of a predictor, each used by one request at a time.

    Args:
        predictor: the model to serve (the first worker uses it; the others a deep copy each).
        workers: parallel requests; ``None``: :func:`default_workers`.
        timeout: seconds a request may take in all (``None``: :data:`DEFAULT_REQUEST_TIMEOUT`).
        max_waiting: requests that may wait for a worker (``None``: no limit); beyond, refused at once.
        threads_per_worker: torch threads in each worker; ``None``: the cores divided among the workers.

    Raises:
        ConfigError: a worker count below 1, a timeout that is not a positive number, or a
            negative ``max_waiting``.
    """

    def __init__(
        self,
        predictor: Predictor,
        workers: int | None = None,
        *,
        timeout: float | None = None,
        max_waiting: int | None = None,
        threads_per_worker: int | None = None,
    ) -> None:
        workers = default_workers() if workers is None else workers
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ConfigError(f"the number of workers must be a whole number of at least 1, got {workers!r}")
        timeout = DEFAULT_REQUEST_TIMEOUT if timeout is None else timeout
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < math.inf:
            raise ConfigError(f"the request time limit must be a positive number of seconds, got {timeout!r}")
        if max_waiting is not None and (
            isinstance(max_waiting, bool) or not isinstance(max_waiting, int) or max_waiting < 0
        ):
            raise ConfigError(
                f"the number of waiting requests must be a whole number of at least 0, got {max_waiting!r}"
            )
        self.workers, self.timeout, self.max_waiting = workers, float(timeout), max_waiting
        self._in_flight = 0  # handed to the executor and not finished: running or waiting
        self._count_lock = threading.Lock()
        self.threads_per_worker = threads_per_worker or max(1, available_cores() // workers)
        self.predictor = predictor
        self._free: queue.SimpleQueue[Predictor] = queue.SimpleQueue()
        self._free.put(predictor)
        for _ in range(workers - 1):
            self._free.put(copy.deepcopy(predictor))
        self._local = threading.local()
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="zeromamba-worker", initializer=self._start_worker
        )

    def _start_worker(self) -> None:
        self._local.predictor = self._free.get()  # this thread's own copy, for its whole life
        torch.set_num_threads(self.threads_per_worker)

    def _call(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        return fn(self._local.predictor, *args)

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(predictor, *args)`` on a free worker's predictor, within the time limit.

        Raises:
            RequestTimeoutError: no result within :attr:`timeout` seconds (the server is busy, or
                the request is too heavy), or refused at once when :attr:`max_waiting` requests wait
                already; whatever ``fn`` raises otherwise.
        """
        with self._count_lock:
            if self.max_waiting is not None and self._in_flight >= self.workers + self.max_waiting:
                raise RequestTimeoutError(
                    f"the server is busy ({self._in_flight} requests running or waiting, at most "
                    f"{self.workers + self.max_waiting}); try again later"
                )
            self._in_flight += 1
        try:
            future = self._executor.submit(self._call, fn, args)
        except BaseException:
            self._finished(None)
            raise
        future.add_done_callback(self._finished)
        try:
            return future.result(timeout=self.timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()  # still waiting for a worker: never started; running: left to finish
            raise RequestTimeoutError(
                f"no answer within {self.timeout:g} s (the server is busy or the request too heavy); try again "
                "later, or start the app with a higher --timeout or more --workers"
            ) from None

    def _finished(self, _future: Any) -> None:
        with self._count_lock:
            self._in_flight -= 1

    @property
    def in_flight(self) -> int:
        """Requests handed to the pool and not finished (running or waiting)."""
        return self._in_flight

    def close(self) -> None:
        """Stop the workers (requests still waiting are cancelled)."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    def __repr__(self) -> str:
        threads = self.threads_per_worker
        return (
            f"PredictorPool(workers={self.workers}, threads_per_worker={threads}, timeout={self.timeout:g}, "
            f"max_waiting={self.max_waiting})"
        )
