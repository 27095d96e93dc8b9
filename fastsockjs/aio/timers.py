"""The event loop's side of the deadline heap: one ``call_at`` for all of them.

The heap and the deadline logic are sans-I/O (:mod:`fastsockjs.protocol.timers`);
this only keeps one loop timer armed for the earliest entry.
"""

from __future__ import annotations

import asyncio

from fastsockjs.protocol.timers import TimerQueue

__all__ = ["LoopTimerQueue"]

_INF = float("inf")
# call_at may run a little early (clock resolution): entries this close are due.
_SLACK = 0.002


class LoopTimerQueue(TimerQueue):
    __slots__ = ("loop", "_handle", "_handle_at")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.loop = loop
        self._handle: asyncio.TimerHandle | None = None
        self._handle_at = _INF

    def earliest_moved(self, at: float) -> None:
        if at < self._handle_at:
            if self._handle is not None:
                self._handle.cancel()
            self._handle_at = at
            self._handle = self.loop.call_at(at, self._fire)

    def _fire(self) -> None:
        self._handle = None
        self._handle_at = _INF
        self.run_due(self.loop.time(), _SLACK)
        # Callbacks may have pushed entries; the earliest live one decides.
        at = self.next_at
        if at != _INF and at < self._handle_at:
            self.earliest_moved(at)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = None
        self._handle_at = _INF
        self.clear()
