"""What the engine needs from an event loop, in one place: the clock, the
deadline heap run by one ``call_at``, end-of-turn calls, futures and tasks.

Both hosts run on asyncio, so both hand the engine a :class:`LoopRuntime`;
the sans-I/O layers below see only the :class:`~fastsockjs.protocol.timers.TimerQueue`
and plain callables. No sockets here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastsockjs.protocol.timers import TimerQueue

__all__ = ["LoopRuntime", "LoopTimerQueue"]

_log = logging.getLogger("fastsockjs.error")
_INF = float("inf")
# call_at may run a little early (clock resolution): entries this close are due.
_SLACK = 0.002


class LoopTimerQueue(TimerQueue):
    """A TimerQueue with one loop timer armed for its earliest entry."""

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


class LoopRuntime:
    """One event loop's services for the engine and its sessions."""

    __slots__ = ("loop", "timers", "_tasks")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.timers = LoopTimerQueue(loop)
        self._tasks: set[asyncio.Task[Any]] = set()

    def now(self) -> float:
        return self.loop.time()

    def soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Call ``fn(*args)`` at the end of this loop turn."""
        self.loop.call_soon(fn, *args)

    def create_future(self) -> asyncio.Future[Any]:
        return self.loop.create_future()

    def spawn(self, awaitable: Awaitable[Any]) -> asyncio.Task[Any]:
        """Run ``awaitable`` as a task, kept referenced until done; failures are logged."""
        task: asyncio.Task[Any] = self.loop.create_task(awaitable)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("handler task failed", exc_info=task.exception())

    def close(self) -> None:
        self.timers.close()
