"""Threads for compare's pass that keep every figure independent of their number, without a wait per batch.

A lane is a thread with its own queue: what is given to one lane runs in the order it was given. Each pair's
statistics live on one lane, so its batches are added in sample order (its sums, and so every figure, come out the
same for any number of lanes), while other pairs, the next batch's backend scans and the main thread's reading and
per-sample output go on at the same time. The previous form ran a batch's scans, then its pairs, then the main
thread's share, with a wait after each: on 16 cores the threads were busy for 1.65 s of the 9 thread-seconds they
had (docs/benchmarks.md, "Compare throughput").

No task waits for a task given to a lane after it (a pair's task waits only for the scans of its own batch, given
before it), so the lanes cannot deadlock.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import threading
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from . import kernels
from .pairstats import Batch, scan

Scan = tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int, int], np.ndarray | None]


class PendingBatch:
    """A batch whose backend scans run on the lanes; ``result()`` waits for them and makes the Batch once."""

    def __init__(self, start: int, labels: Any, scans: Mapping[str, concurrent.futures.Future[Scan]]) -> None:
        self.start, self.labels, self.scans = start, labels, scans
        self._lock = threading.Lock()
        self._batch: Batch | None = None

    def result(self) -> Batch:
        with self._lock:
            if self._batch is None:
                done = {name: f.result() for name, f in self.scans.items()}
                values, top, finite, counts, probabilities = ({name: s[i] for name, s in done.items()
                                                              if s[i] is not None} for i in range(5))
                self._batch = Batch(self.start, np.asarray(self.labels, dtype=np.int64), values, top, finite, counts,
                                    probabilities)
            return self._batch


def scan_backend(raw: Any, k: int, softmax_buffer: Callable[[tuple[int, ...]], np.ndarray] | None) -> Scan:
    """One backend's share of a batch: the rows as the passes take them (float16 widened to float32: exact), top k,
    finite rows, non-finite counts and, for logits (``softmax_buffer`` given) whose rows are all finite, the softmax
    that several pairs share (made once here, not by each pair), written into ``softmax_buffer(shape)``."""
    values = kernels.native(raw)
    top, finite, counts = scan(values, k)
    probabilities = None
    if softmax_buffer is not None and finite.all():
        probabilities = kernels.softmax(values, out=softmax_buffer(values.shape))
    return values, top, finite, counts, probabilities


class Lanes:
    """``threads`` lanes (at least one). ``submit_for(key, ...)`` runs on the lane that ``key`` was first given,
    every call with that key in order; ``batch`` spreads a batch's scans over the lanes in turn.

    A finished batch's softmax buffers serve the next batches' (``finish``), so only the batches in flight have new
    ones, whose pages the kernel zeroes when they are first written: a buffer above malloc's largest mmap threshold
    (32 MiB in glibc: batch 4096 of more than 1,024 classes) was otherwise mapped and zeroed anew every batch."""

    def __init__(self, threads: int) -> None:
        self.lanes = [concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"compare-lane-{i}")
                      for i in range(max(1, threads))]
        self._owner: dict[str, int] = {}
        self._turn = itertools.cycle(range(len(self.lanes)))
        self._spare: list[np.ndarray] = []
        self._spare_lock = threading.Lock()

    def __enter__(self) -> Lanes:
        return self

    def __exit__(self, *exc: object) -> None:
        for lane in self.lanes:     # after a failure, what has not started is dropped
            lane.shutdown(wait=True, cancel_futures=True)

    def submit_for(self, key: str, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any]:
        lane = self._owner.setdefault(key, len(self._owner) % len(self.lanes))
        return self.lanes[lane].submit(fn, *args)

    def batch(self, start: int, labels: Any, raw: Mapping[str, Any], k: int, *, softmax: bool) -> PendingBatch:
        buffer = self._softmax_buffer if softmax else None
        return PendingBatch(start, labels, {name: self.lanes[next(self._turn)].submit(scan_backend, x, k, buffer)
                                            for name, x in raw.items()})

    def finish(self, pending: PendingBatch, work: Sequence[concurrent.futures.Future[Any]],
               then: Callable[[Batch], None]) -> None:
        """``then(batch)`` on the calling thread, then wait for the batch's ``work`` (raising what it raised). Its
        softmax buffers are then reused: a batch's probabilities are valid until its ``finish`` returns."""
        batch = pending.result()
        then(batch)
        for future in work:
            future.result()
        with self._spare_lock:
            self._spare.extend(batch.probabilities.values())

    def _softmax_buffer(self, shape: tuple[int, ...]) -> np.ndarray:
        """A float64 array of ``shape`` for a softmax: a finished batch's of that shape, else a new one."""
        with self._spare_lock:
            for i, spare in enumerate(self._spare):
                if spare.shape == shape:
                    return self._spare.pop(i)
        return np.empty(shape)
