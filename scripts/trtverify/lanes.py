"""Threads for compare's pass that keep every figure independent of their number, without a wait per batch.

A lane is a thread with its own queue: what is given to one lane runs in the order it was given. Each pair's
statistics live on one lane, so its batches are added in sample order (its sums, and so every figure, come out the
same for any number of lanes), while other pairs, the next batch's backend scans and the main thread's reading and
per-sample output go on at the same time. The previous form ran a batch's scans, then its pairs, then the main
thread's share, with a wait after each: on 16 cores the threads were busy for 1.65 s of the 9 thread-seconds they
had (docs/benchmarks.md, "Compare throughput").

No task waits for a task given to a lane after it (a pair's task waits only for the scans of its own batch, given
before it), so the lanes cannot deadlock.

Lanes and tasks are made here (Lane: a thread, a deque and a semaphore; Task: an Event), not of concurrent.futures'
executors, whose import brought logging and queue: 7-8 ms of a 0.2-s comparison for what these few lines do
(2026-12-06).
"""

from __future__ import annotations

import collections
import threading
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from . import kernels
from .pairstats import Batch, scan

Scan = tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int, int]]

# What a task costs its lane, in backend scans of a batch: a pair's pass reads two backends' rows and does more with
# each element (on 4,096 x 1,000 float32, kernels.pair_pass took 7.3 ms and a scan 3.8 ms, 2026-12-06).
SCAN_COST, PAIR_COST = 1, 2
# Logits' softmax check of a batch (softmax_checks) where rows need their softmaxes: each backend's about a pair's
# pass, each pair's check of them a quarter of that, rounded up (9.4 and 2.4 ms against 9.7 ms for the pass, on
# 4,096 x 1,000 float32). Rows of backends that agree need none (kernels.softmax_outside) and cost far less: each
# lane still gets one part of the batch.
SOFTMAX_COST, CHECK_COST = 2, 1
SOFTMAX_ROWS = 256  # the fewest rows of a part of a batch's softmax check: a task costs tens of microseconds


class Cancelled(Exception):
    """What waits on a task dropped because the lanes were closed (after a failure) before it started."""


class Task:
    """``fn(*args)`` given to a lane: ``result()`` waits for it, and returns its value or raises what it raised."""

    __slots__ = ("fn", "args", "_done", "_value", "_error")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.fn, self.args = fn, args
        self._done = threading.Event()
        self._value: Any = None
        self._error: BaseException | None = None

    def run(self, cancel: bool) -> None:
        try:
            if cancel:
                raise Cancelled("the lanes were closed before this task started")
            self._value = self.fn(*self.args)
        except BaseException as exc:   # raised again by result(), on the thread that waits for it
            self._error = exc
        finally:
            self.args = ()     # a batch's arrays are not held once its task is done
            self._done.set()

    def result(self) -> Any:
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value


class Lane:
    """One thread running what it is given, in that order, until ``close``; after ``close(cancel=True)`` what has
    not started is dropped (its ``result()`` raises Cancelled)."""

    def __init__(self, name: str) -> None:
        self._tasks: collections.deque[Task | None] = collections.deque()
        self._ready = threading.Semaphore(0)
        self._cancel = False
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Task:
        task = Task(fn, args)
        self._tasks.append(task)
        self._ready.release()
        return task

    def close(self, cancel: bool) -> None:
        """Run (or, with ``cancel``, drop) what was given, and end the thread."""
        self._cancel = cancel
        self._tasks.append(None)
        self._ready.release()
        self._thread.join()

    def _work(self) -> None:
        while True:
            self._ready.acquire()
            task = self._tasks.popleft()
            if task is None:
                return
            task.run(self._cancel)
            del task    # not held while the lane waits: its result may view a mapped batch (resident memory)


class PendingBatch:
    """A batch whose backend scans run on the lanes; ``result()`` waits for them and makes the Batch once."""

    def __init__(self, start: int, labels: Any, scans: Mapping[str, Task]) -> None:
        self.start, self.labels, self.scans = start, labels, scans
        self._lock = threading.Lock()
        self._batch: Batch | None = None

    def result(self) -> Batch:
        with self._lock:
            if self._batch is None:
                done = {name: f.result() for name, f in self.scans.items()}
                values, top, finite, counts = ({name: s[i] for name, s in done.items()} for i in range(4))
                self._batch = Batch(self.start, np.asarray(self.labels, dtype=np.int64), values, top, finite, counts)
            return self._batch


def scan_backend(raw: Any, k: int) -> Scan:
    """One backend's share of a batch: the rows as the passes take them (float16 widened to float32: exact), top k,
    finite rows and non-finite counts."""
    values = kernels.native(raw)
    return (values, *scan(values, k))


def softmax_part(raw: Sequence[Any], ends: Sequence[tuple[int, int]],
                 tolerances: Sequence[tuple[float, float]]) -> np.ndarray:
    """Logits: the softmax check (kernels.softmax_outside) of some rows of a batch, ``raw`` a backend each."""
    return kernels.softmax_outside([kernels.native(x) for x in raw], ends, tolerances)


class Lanes:
    """``threads`` lanes (at least one). ``submit_for(key, ...)`` runs on the lane that ``key`` was first given,
    every call with that key in order; ``batch`` gives each of a batch's scans to the lane with the least work given
    so far, counted in SCAN_COST and PAIR_COST, and a new key goes to that lane too. Scans in turn put every
    reference's scan on the lane of the first pair when there is one pair and two lanes (two backends, the usual
    CPU run): that lane had three times the other's work.

    ``softmax_checks`` splits a batch's rows (logits) into a part per lane, each given as the scans are."""

    def __init__(self, threads: int) -> None:
        self.lanes = [Lane(f"compare-lane-{i}") for i in range(max(1, threads))]
        self._owner: dict[str, int] = {}
        self._given = [0] * len(self.lanes)     # the cost of what each lane was given: where the next task goes

    def __enter__(self) -> Lanes:
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        for lane in self.lanes:     # after a failure, what has not started is dropped
            lane.close(cancel=kind is not None)

    def submit_for(self, key: str, fn: Callable[..., Any], *args: Any) -> Task:
        """``fn(*args)`` on ``key``'s lane, a pair's batch (PAIR_COST)."""
        if key not in self._owner:
            self._owner[key] = self._least_given()
        return self._submit(self._owner[key], PAIR_COST, fn, *args)

    def spread(self, fn: Callable[..., Any], *args: Any, cost: int = SCAN_COST) -> Task:
        """``fn(*args)`` on the lane given least so far, a backend's scan of a batch (SCAN_COST) or the like."""
        return self._submit(self._least_given(), cost, fn, *args)

    def batch(self, start: int, labels: Any, raw: Mapping[str, Any], k: int) -> PendingBatch:
        return PendingBatch(start, labels, {name: self.spread(scan_backend, x, k) for name, x in raw.items()})

    def softmax_checks(self, raw: Sequence[Any], ends: Sequence[tuple[int, int]],
                       tolerances: Sequence[tuple[float, float]]) -> list[Task]:
        """Logits: the softmax check of a batch (``raw``, a backend each) in a part of its rows per lane (fewer for
        a small batch), each on the lane given least; their counts add up to the batch's (integers: the same
        whatever the split). A part finds its rows' finiteness (and widens float16) itself, as the batch's scans
        also do, so that it need not wait for them."""
        n = len(raw[0])
        parts = max(1, min(len(self.lanes), n // SOFTMAX_ROWS))
        bounds = [n * i // parts for i in range(parts + 1)]
        cost = max(1, (SOFTMAX_COST * len(raw) + CHECK_COST * len(ends)) // parts)
        return [self.spread(softmax_part, [x[lo:hi] for x in raw], ends, tolerances, cost=cost)
                for lo, hi in zip(bounds, bounds[1:])]

    def _least_given(self) -> int:
        return self._given.index(min(self._given))

    def _submit(self, lane: int, cost: int, fn: Callable[..., Any], *args: Any) -> Task:
        self._given[lane] += cost
        return self.lanes[lane].submit(fn, *args)

    def finish(self, pending: PendingBatch, work: Sequence[Task], then: Callable[[Batch], None]) -> None:
        """``then(batch)`` on the calling thread, then wait for the batch's ``work`` (raising what it raised)."""
        then(pending.result())
        for task in work:
            task.result()
