"""One deadline heap per loop instead of a timer per session.

Sessions ask to be woken at a time; entries are never cancelled (a session
whose deadline moved later simply re-arms when woken), so pushing is the only
cost on the hot path and only deadlines that move *earlier* push at all. Each
target remembers the time it is armed for (``_armed_at``) and ignores an entry
that fires before it: that entry was superseded by an earlier one, and acting
on it (re-arming) would leave one more entry in the heap for good.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from typing import Any

_log = logging.getLogger("fastsockjs.error")


class DeadlineScheduler:
    __slots__ = ("loop", "_heap", "_seq", "_handle", "_handle_at")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._heap: list[tuple[float, int, Any]] = []
        self._seq = itertools.count()
        self._handle: asyncio.TimerHandle | None = None
        self._handle_at = float("inf")

    def schedule(self, target: Any, at: float) -> None:
        """Call ``target.on_timer(now)`` at (or just after) ``at``."""
        heapq.heappush(self._heap, (at, next(self._seq), target))
        if at < self._handle_at:
            if self._handle is not None:
                self._handle.cancel()
            self._handle_at = at
            self._handle = self.loop.call_at(at, self._fire)

    def __len__(self) -> int:
        return len(self._heap)

    def _fire(self) -> None:
        self._handle = None
        self._handle_at = float("inf")
        heap = self._heap
        # call_at may run a little early (clock resolution): allow for it.
        now = self.loop.time()
        horizon = now + 0.002
        # Only what is due now: an entry a callback pushes during this pass waits
        # for the next one, so a target that re-arms for "now" cannot hold the loop.
        due = []
        while heap and heap[0][0] <= horizon:
            due.append(heapq.heappop(heap))
        for at, _, target in due:
            try:
                target.on_timer(max(now, at))
            except Exception:
                _log.exception("timer callback of %r failed", target)
        # A callback may have armed the timer for its own, later deadline:
        # the earliest entry decides.
        if heap and (self._handle is None or heap[0][0] < self._handle_at):
            if self._handle is not None:
                self._handle.cancel()
            self._handle_at = heap[0][0]
            self._handle = self.loop.call_at(self._handle_at, self._fire)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = None
        self._heap.clear()
