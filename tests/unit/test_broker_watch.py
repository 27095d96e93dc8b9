"""The broker link's time bookkeeping (fastsockjs.broker.watch), on a fake clock:
a pause of the whole process is measured as loop lag and never counts as Redis
failing to answer; a Redis that really is silent is declared dead."""

from __future__ import annotations

import pytest

from fastsockjs.broker.watch import AnswerWatch, LoopLag, running

TICK = 0.125  # exact in binary: the fake clock adds up without rounding


def ticking(lag: LoopLag, start: float, end: float) -> float:
    """Run the ticker from ``start`` to ``end`` as a healthy loop would."""
    now = start
    while now + lag.due(now) <= end:
        now += lag.due(now)
        assert lag.tick(now) == pytest.approx(0.0, abs=1e-9)
    return now


def test_a_punctual_loop_has_no_lag() -> None:
    lag = LoopLag(TICK, 0.0)
    now = ticking(lag, 0.0, 10.0)
    assert lag.stalled(0.0, now) == 0.0
    assert lag.worst == 0.0 and lag.current(now) == 0.0
    assert running(0.0, now, lag) == pytest.approx(now)


def test_a_pause_is_measured_even_before_the_next_tick() -> None:
    lag = LoopLag(TICK, 0.0)
    now = ticking(lag, 0.0, 1.0)  # last tick at 1.0, the next one due at 1.1
    resumed = now + 20.0  # SIGSTOP / SIGCONT
    # Whoever runs first after the pause already sees it ...
    assert lag.current(resumed) == pytest.approx(20.0 - TICK)
    assert lag.stalled(now, resumed) == pytest.approx(20.0 - TICK)
    # ... and once the ticker runs it is on record.
    assert lag.tick(resumed) == pytest.approx(20.0 - TICK)
    assert lag.worst == pytest.approx(20.0 - TICK)
    later = ticking(lag, resumed, resumed + 5.0)
    assert lag.stalled(0.0, later) == pytest.approx(20.0 - TICK)
    # Only the part of the stall inside the window counts.
    assert lag.stalled(now + 10.0, later) == pytest.approx(10.0)
    assert lag.stalled(resumed, later) == 0.0
    assert running(0.0, later, lag) == pytest.approx(later - (20.0 - TICK))


def test_old_stalls_are_forgotten() -> None:
    lag = LoopLag(TICK, 0.0, keep=10.0)
    lag.tick(5.0)
    now = ticking(lag, 5.0, 30.0)
    assert lag.stalled(0.0, now) == 0.0  # beyond `keep`: dropped


def test_bad_interval() -> None:
    with pytest.raises(ValueError):
        LoopLag(0.0, 0.0)
    with pytest.raises(ValueError):
        AnswerWatch(0.0, 1.0, 0.0)


def test_silence_brings_a_ping_then_death_without_an_answer() -> None:
    lag = LoopLag(TICK, 0.0)
    watch = AnswerWatch(ping_after=5.0, answer_timeout=3.0, now=0.0)
    v = watch.check(0.0, lag)
    assert not v.ping and not v.dead and v.wait == pytest.approx(5.0)
    now = ticking(lag, 0.0, 5.0)
    v = watch.check(now, lag)
    assert v.ping and not v.dead
    watch.pinged(now)
    now = ticking(lag, now, now + 2.0)
    v = watch.check(now, lag)
    assert not v.dead and v.wait == pytest.approx(1.0, abs=TICK)
    now = ticking(lag, now, now + 1.0 + TICK)
    v = watch.check(now, lag)
    assert v.dead and "no answer from Redis for 3" in v.reason and "stalled" not in v.reason


def test_an_answer_resets_the_watch() -> None:
    lag = LoopLag(TICK, 0.0)
    watch = AnswerWatch(ping_after=1.0, answer_timeout=1.0, now=0.0)
    now = ticking(lag, 0.0, 1.0)
    assert watch.check(now, lag).ping
    watch.pinged(now)
    now = ticking(lag, now, now + 0.5)
    watch.heard(now)  # the pong
    v = watch.check(now, lag)
    assert not v.ping and not v.dead and v.wait == pytest.approx(1.0)


def test_a_paused_process_is_not_a_silent_redis() -> None:
    """The reported bug: after SIGSTOP for 20 s, the first check after SIGCONT
    (before any buffered reply is read) must not declare the link dead."""
    lag = LoopLag(TICK, 0.0)
    watch = AnswerWatch(ping_after=5.0, answer_timeout=10.0, now=0.0)
    now = ticking(lag, 0.0, 4.0)
    resumed = now + 20.0
    v = watch.check(resumed, lag)
    assert not v.dead and not v.ping
    lag.tick(resumed)
    # Paused right after a ping was sent: the answer deadline moves with the pause.
    now = ticking(lag, resumed, resumed + 5.0)
    assert watch.check(now, lag).ping
    watch.pinged(now)
    resumed = now + 60.0
    v = watch.check(resumed, lag)
    assert not v.dead and v.wait == pytest.approx(10.0, abs=TICK)
    lag.tick(resumed)
    # Still no answer after 10 s of running time: dead, and the reason says
    # the stall was not counted.
    now = ticking(lag, resumed, resumed + 10.0 + TICK)
    v = watch.check(now, lag)
    assert v.dead and "stalled" in v.reason


def test_a_loop_that_keeps_lagging_still_detects_a_dead_redis() -> None:
    """Lag is credited, not ignored: with the loop 50 % late, Redis still gets its
    answer timeout of running time, and no more."""
    lag = LoopLag(TICK, 0.0)
    watch = AnswerWatch(ping_after=1.0, answer_timeout=2.0, now=0.0)
    now = 0.0
    for _ in range(10_000):
        v = watch.check(now, lag)
        if v.dead:
            break
        if v.ping:
            watch.pinged(now)
        now += lag.due(now) + TICK / 2  # every tick 50 ms late
        lag.tick(now)
    else:
        pytest.fail("never declared dead")
    # 1 s of quiet + 2 s unanswered, in running time: about 3 s x 1.5 of wall time.
    assert 4.0 <= now <= 5.0, now
