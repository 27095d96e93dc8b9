"""Awaiting what may never end, for the broker's link to Redis.

* :meth:`Bounded.within` waits for a call for at most a number of seconds of
  this process's *running* time (stalls of the whole process, measured by a
  :class:`~fastsockjs.broker.watch.LoopLag`, are not held against Redis), and
  stops waiting at once when its caller is cancelled, whatever the call does
  with its own cancellation (redis-py may absorb one).
* :meth:`Bounded.settle` gives cancelled tasks a grace period to end; those
  that do not are abandoned: logged, counted, and referenced until they end.
* :func:`tick` drives a LoopLag from the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable
from typing import Any

from fastsockjs.broker.watch import LoopLag, running


class Bounded:
    """Bounded waits and bounded teardowns, with what they gave up on."""

    def __init__(self, log: logging.Logger, lag: LoopLag | None = None) -> None:
        self.log = log
        #: The loop's lag while running (``within`` needs it).
        self.lag = lag
        #: Tasks abandoned so far (they did not end within their grace).
        self.abandoned = 0
        self._stragglers: set[asyncio.Future[Any]] = set()

    @property
    def stragglers(self) -> int:
        """Abandoned tasks that have not ended yet."""
        return len(self._stragglers)

    async def within(self, aw: Awaitable[Any], what: str, limit: float, grace: float) -> Any:
        """Await ``aw`` (in a task of its own) for at most ``limit`` seconds of
        running time; TimeoutError after that. A call that outlives the wait is
        cancelled and given ``grace`` seconds to end (:meth:`settle`)."""
        lag = self.lag
        if lag is None:
            raise RuntimeError("Bounded.within needs the loop's lag (not started)")
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(aw)
        started = loop.time()
        try:
            while True:
                left = limit - running(started, loop.time(), lag)
                if left <= 0:
                    raise TimeoutError(f"no answer from Redis to {what} within {limit:g} s")
                done, _ = await asyncio.wait({task}, timeout=left)
                if done:
                    return task.result()
        finally:
            if not task.done():
                task.cancel()
                await self.settle([task], grace, what)

    async def settle(self, tasks: Iterable[asyncio.Future[Any]], grace: float, what: str) -> None:
        """Wait up to ``grace`` seconds for cancelled ``tasks`` to end; abandon (and
        log) those that do not. Never waits longer, even if cancelled meanwhile."""
        pending = {t for t in tasks if not t.done()}
        if pending:
            try:
                _, pending = await asyncio.wait(pending, timeout=grace)
            finally:
                for task in pending:
                    if task.done():
                        continue
                    self.abandoned += 1
                    self.log.warning(
                        "%s did not stop within %.1f s of being cancelled; abandoned",
                        what, grace,
                    )
                    self._stragglers.add(task)
                    task.add_done_callback(self._straggler_done)
        for task in tasks:
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: the link's error was already reported

    def _straggler_done(self, task: asyncio.Future[Any]) -> None:
        self._stragglers.discard(task)
        if not task.cancelled():
            task.exception()


async def tick(lag: LoopLag, log: logging.Logger) -> None:
    """Tick ``lag`` from the running loop until cancelled; warn of long stalls."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(lag.due(loop.time()))
        stall = lag.tick(loop.time())
        if stall >= 1.0:
            log.warning("the event loop was stalled for %.1f s", stall)
