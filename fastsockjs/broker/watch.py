"""Time bookkeeping for the broker's link, without I/O: event-loop lag, and whether
Redis is still answering. Every method takes ``now`` (the loop's monotonic clock).

Why lag matters: when this process is paused (SIGSTOP, a debugger, a swapped-out
VM, a handler that blocks the loop), every timer expires at once when it runs
again, before the replies that queued up meanwhile are read. A deadline counted
in wall time then reports "Redis did not answer" although Redis had no chance to
be heard. So deadlines here count only the time the loop was actually running:
stalls measured by :class:`LoopLag` are credited back.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


class LoopLag:
    """How late the event loop runs, measured by a tick every ``interval`` seconds.

    The driver calls :meth:`tick` whenever its timer fires; the time past the
    expected moment is a stall. A stall still going on (the tick is overdue
    right now) counts too, so a caller that runs before the tick after a pause
    still sees it.
    """

    def __init__(self, interval: float, now: float, keep: float = 120.0) -> None:
        if interval <= 0:
            raise ValueError("interval must be > 0")
        self.interval = interval
        #: Stalls older than this many seconds are forgotten.
        self.keep = keep
        self._expected = now + interval
        self._stalls: deque[tuple[float, float]] = deque()  # (from, to)
        #: The last tick's lag, and the largest one seen (seconds).
        self.last = 0.0
        self.worst = 0.0

    def tick(self, now: float) -> float:
        """The timer fired: record the lag; returns it. Schedule the next tick
        :meth:`due` seconds from now."""
        lag = now - self._expected
        if lag > 0.001:
            self._stalls.append((self._expected, now))
        else:
            lag = max(lag, 0.0)
        self.last = lag
        self.worst = max(self.worst, lag)
        self._expected = now + self.interval
        horizon = now - self.keep
        while self._stalls and self._stalls[0][1] < horizon:
            self._stalls.popleft()
        return lag

    def due(self, now: float) -> float:
        """Seconds until the next tick should run."""
        return max(0.0, self._expected - now)

    def current(self, now: float) -> float:
        """How late the loop is right now: the overdue time of the next tick."""
        return max(0.0, now - self._expected)

    def stalled(self, since: float, now: float) -> float:
        """Seconds of ``[since, now]`` during which the loop was stalled."""
        total = 0.0
        for start, end in reversed(self._stalls):
            if end <= since:
                break
            total += end - max(start, since)
        if now > self._expected:
            total += now - max(self._expected, since)
        return min(total, max(0.0, now - since))


@dataclass(frozen=True)
class Verdict:
    """What :meth:`AnswerWatch.check` decided: ``ping`` now, the link is ``dead``
    (``reason`` says why), and in any case look again after ``wait`` seconds."""

    wait: float
    ping: bool = False
    dead: bool = False
    reason: str = ""


class AnswerWatch:
    """Is Redis answering? After ``ping_after`` seconds without hearing from it,
    ping; if nothing at all is heard within ``answer_timeout`` seconds of running
    time after the ping, the link is dead. Also bounds one operation in flight
    (e.g. a pipelined PUBLISH) with the same running-time timeout.
    """

    def __init__(self, ping_after: float, answer_timeout: float, now: float) -> None:
        if ping_after <= 0 or answer_timeout <= 0:
            raise ValueError("ping_after and answer_timeout must be > 0")
        self.ping_after = ping_after
        self.answer_timeout = answer_timeout
        self.last_heard = now
        self.pinged_at: float | None = None

    def heard(self, now: float) -> None:
        """Anything arrived from Redis (a message, a reply, a pong)."""
        self.last_heard = now
        self.pinged_at = None

    def pinged(self, now: float) -> None:
        if self.pinged_at is None:
            self.pinged_at = now

    def check(self, now: float, lag: LoopLag) -> Verdict:
        if self.pinged_at is None:
            quiet = now - self.last_heard - lag.stalled(self.last_heard, now)
            if quiet >= self.ping_after:
                return Verdict(wait=self.answer_timeout, ping=True)
            return Verdict(wait=self.ping_after - quiet)
        waited = running(self.pinged_at, now, lag)
        if waited >= self.answer_timeout:
            stalled = lag.stalled(self.pinged_at, now)
            return Verdict(
                wait=0.0, dead=True,
                reason=f"no answer from Redis for {waited:.1f} s"
                + (f" (plus {stalled:.1f} s this process was stalled)" if stalled >= 0.05 else ""),
            )
        return Verdict(wait=self.answer_timeout - waited)


def running(since: float, now: float, lag: LoopLag) -> float:
    """Seconds of ``[since, now]`` during which the loop was running (not stalled)."""
    return max(0.0, now - since - lag.stalled(since, now))


__all__ = ["AnswerWatch", "LoopLag", "Verdict", "running"]
