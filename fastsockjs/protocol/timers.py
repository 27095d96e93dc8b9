"""Deadlines without a timer each (sans-I/O): one heap shared by every owner.

Theory of operation
-------------------
Every session, HTTP connection and WebSocket has at most one thing it waits
for at a time (a heartbeat, a request timeout, a ping), so each owns one
:class:`Deadline`. All deadlines of a host live in one :class:`TimerQueue`,
a heap the host runs at the earliest deadline's time (the asyncio layer with
one ``loop.call_at``; unit tests by hand, on a fake clock).

* Moving a deadline *later* costs nothing: the heap entry stays where it is,
  and when it comes due the deadline re-queues itself for its new time. Only
  an *earlier* time pushes a new entry (the old one is discarded). So
  re-arming per request or per message allocates nothing.
* A discarded entry no longer refers to its owner, at once: a closed
  connection's deadline pins nothing while its old entry waits in the heap.
  Discarded entries are dropped lazily, and the heap is compacted when they
  outnumber the live ones, so it stays within twice the live deadlines.
* A deadline fires with ``now >= at`` compared against the very time it was
  set for, and a queue run handles only the entries already due when it
  started: a callback that re-arms for "now" waits for the next run instead
  of holding the host.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
from collections.abc import Callable
from typing import Any

__all__ = ["Deadline", "TimerQueue"]

_log = logging.getLogger("fastsockjs.error")
_INF = math.inf
# Discarded entries tolerated before a compaction is considered.
_COMPACT_MIN = 64

# A heap entry: [at, seq, deadline or None once discarded]. Lists compare by
# (at, seq) and seq is unique, so the deadline itself is never compared.
Entry = list[Any]


class TimerQueue:
    """The heap of one host's deadlines. The host calls :meth:`run_due` at
    :attr:`next_at` (or a little after); :meth:`earliest_moved` is the hook a
    host overrides to be told the earliest time moved earlier."""

    __slots__ = ("_heap", "_seq", "_dead")

    def __init__(self) -> None:
        self._heap: list[Entry] = []
        self._seq = itertools.count()
        self._dead = 0

    def earliest_moved(self, at: float) -> None:
        """Called when ``at`` became the earliest time in the queue."""

    def push(self, deadline: Deadline, at: float) -> Entry:
        heap = self._heap
        entry: Entry = [at, next(self._seq), deadline]
        earliest = heap[0][0] if heap else _INF
        heapq.heappush(heap, entry)
        if at < earliest:
            self.earliest_moved(at)
        return entry

    def discard(self, entry: Entry) -> None:
        """Forget an entry now (its slot is reclaimed later)."""
        if entry[2] is None:
            return
        entry[2] = None
        self._dead += 1
        dead = self._dead
        if dead > _COMPACT_MIN and dead * 2 > len(self._heap):
            self._heap = [e for e in self._heap if e[2] is not None]
            heapq.heapify(self._heap)
            self._dead = 0

    @property
    def next_at(self) -> float:
        """The earliest live deadline (infinity when there is none)."""
        heap = self._heap
        while heap and heap[0][2] is None:
            heapq.heappop(heap)
            self._dead -= 1
        return heap[0][0] if heap else _INF

    def run_due(self, now: float, slack: float = 0.0) -> None:
        """Fire every deadline due by ``now + slack`` (each gets ``max(now, at)``).

        Entries pushed while this runs wait for the next run, even if due.
        """
        heap = self._heap
        horizon = now + slack
        due: list[Entry] = []
        while heap and heap[0][0] <= horizon:
            entry = heapq.heappop(heap)
            if entry[2] is None:
                self._dead -= 1
            else:
                due.append(entry)
        for entry in due:
            deadline = entry[2]
            if deadline is None:  # discarded by an earlier callback of this run
                continue
            entry[2] = None
            at = entry[0]
            try:
                deadline._due(entry, now if now > at else at)
            except Exception:
                _log.exception("timer callback %r failed", deadline)

    def __len__(self) -> int:
        """Entries in the heap, discarded ones included (for tests and stats)."""
        return len(self._heap)

    @property
    def live(self) -> int:
        return len(self._heap) - self._dead

    def clear(self) -> None:
        for entry in self._heap:
            entry[2] = None
        self._heap.clear()
        self._dead = 0


class Deadline:
    """One owner's single deadline on a :class:`TimerQueue`.

    ``callback(now)`` runs once the time given to :meth:`set` has come, unless
    it was cleared or set again meanwhile. :meth:`close` ends it for good and
    drops every reference it holds, so an owner that closes its deadline is
    freed by reference counting alone.
    """

    __slots__ = ("at", "_queue", "_callback", "_entry")

    def __init__(self, queue: TimerQueue, callback: Callable[[float], None]) -> None:
        self.at = _INF
        self._queue: TimerQueue | None = queue
        self._callback: Callable[[float], None] | None = callback
        self._entry: Entry | None = None

    def set(self, at: float) -> None:
        queue = self._queue
        if queue is None:
            return
        self.at = at
        entry = self._entry
        if entry is not None:
            if entry[0] <= at:
                return  # it comes due first and re-queues for ``at`` then
            queue.discard(entry)
        self._entry = queue.push(self, at)

    def clear(self) -> None:
        """Wait for nothing (the heap entry, if any, finds nothing to do)."""
        self.at = _INF

    @property
    def pending(self) -> bool:
        return self.at != _INF

    def close(self) -> None:
        self.at = _INF
        entry, self._entry = self._entry, None
        if entry is not None and self._queue is not None:
            self._queue.discard(entry)
        self._queue = None
        self._callback = None

    def _due(self, entry: Entry, now: float) -> None:
        if entry is not self._entry:
            return
        self._entry = None
        at = self.at
        if at == _INF:
            return
        if now < at:  # moved later since this entry was pushed
            if self._queue is not None:
                self._entry = self._queue.push(self, at)
            return
        self.at = _INF
        if self._callback is not None:
            self._callback(now)

    def __repr__(self) -> str:
        return f"<Deadline at={self.at} callback={self._callback!r}>"
