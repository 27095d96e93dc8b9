"""The sans-I/O session on a fake clock: no loop, no sockets."""

from __future__ import annotations

from typing import Any

import pytest

from fastsockjs.protocol.session import ANOTHER_CONNECTION, ReadyState, Session
from tests.unit.fakes import FakeHost, Recv


@pytest.fixture
def host() -> FakeHost:
    return FakeHost()


def opened(host: FakeHost, recv: Recv | None = None) -> tuple[Session, Recv, list[str]]:
    s = Session("sid", host)
    r = recv or Recv()
    s.attach(r)
    host.end_turn()
    closes: list[str] = []
    s.connection.on("close", lambda: closes.append("close"))
    return s, r, closes


def test_open_frame_then_connection_event_after_it(host: FakeHost) -> None:
    s = Session("sid", host)
    r = Recv()
    s.attach(r)
    assert r.frames == ["o"]
    assert s.state is ReadyState.OPEN
    assert host.opened_conns == []  # 'connection' fires after 'o' has been written
    host.end_turn()
    assert host.opened_conns == [s.connection]


def test_writes_in_one_turn_coalesce_into_one_frame(host: FakeHost) -> None:
    s, r, _ = opened(host)
    assert s.connection.write("a") and s.connection.write("b\u2028") and s.connection.write("c")
    assert r.frames == ["o"]
    host.end_turn()
    assert r.frames == ["o", 'a["a","b\\u2028","c"]']


def test_messages_wait_for_a_receiver_in_order(host: FakeHost) -> None:
    s, r, _ = opened(host, Recv(limit=1))
    assert r.finished
    for m in ("1", "2", "3"):
        s.connection.write(m)
    host.end_turn()
    r2 = Recv(limit=1)
    s.attach(r2)
    assert r2.frames == ['a["1","2","3"]']


def test_second_receiver_gets_2010(host: FakeHost) -> None:
    s, r, _ = opened(host)
    r2 = Recv()
    assert not s.attach(r2)
    assert r2.frames == [ANOTHER_CONNECTION] and r2.finished
    assert s.receiver is r and not r.finished


def test_heartbeat_every_delay_while_attached(host: FakeHost) -> None:
    s, r, _ = opened(host)
    host.advance(24.9)
    assert r.frames == ["o"]
    host.advance(0.2)
    assert r.frames == ["o", "h"]
    host.advance(25.0)
    assert r.frames == ["o", "h", "h"]


def test_traffic_postpones_the_heartbeat(host: FakeHost) -> None:
    s, r, _ = opened(host)
    host.advance(20)
    s.connection.write("x")
    host.end_turn()
    host.advance(20)
    assert r.frames == ["o", 'a["x"]']
    host.advance(5.1)
    assert r.frames[-1] == "h"


def test_the_heartbeat_comes_a_delay_after_the_last_frame(host: FakeHost) -> None:
    # Frames at 10, 30 and 50 s: the heartbeat deadline armed at the attach moves
    # itself past each (25 s after the last frame), whatever came between.
    s, r, _ = opened(host)
    for _ in range(3):
        host.advance(10 if not r.frames[1:] else 20)
        s.connection.write("x")
        host.end_turn()
    assert r.frames == ["o", 'a["x"]', 'a["x"]', 'a["x"]']
    host.advance(24.9)
    assert r.frames[-1] == 'a["x"]'
    host.advance(0.2)
    assert r.frames[-1] == "h"
    host.advance(24.8)
    assert r.frames.count("h") == 1
    host.advance(0.3)
    assert r.frames.count("h") == 2


def test_disconnect_delay_after_receiver_ends(host: FakeHost) -> None:
    s, r, closes = opened(host, Recv(limit=1))
    host.advance(4.9)
    assert s.state is ReadyState.OPEN and closes == []
    host.advance(0.2)
    assert s.state is ReadyState.CLOSED
    assert closes == ["close"]
    assert host.forgotten == [s]


def test_a_new_receiver_cancels_the_disconnect_timeout(host: FakeHost) -> None:
    s, r, closes = opened(host, Recv(limit=1))
    host.advance(4)
    r2 = Recv()
    s.attach(r2)
    host.advance(10)
    assert s.state is ReadyState.OPEN and closes == []


def test_abort_closes_at_once(host: FakeHost) -> None:
    s, r, closes = opened(host)
    r.abort()
    assert s.state is ReadyState.CLOSED
    assert closes == ["close"]


def test_unattached_new_session_expires(host: FakeHost) -> None:
    s = Session("sid", host)
    host.advance(5.1)
    assert s.state is ReadyState.CLOSED


def test_close_flushes_pending_then_close_frame_then_repeats_it(host: FakeHost) -> None:
    s, r, closes = opened(host)
    s.connection.write("last")
    assert s.connection.close(3000, "Go away!")
    assert r.frames == ["o", 'a["last"]', 'c[3000,"Go away!"]']
    assert r.finished
    assert s.connection.ready_state is ReadyState.CLOSING
    assert not s.connection.write("late")
    assert not s.connection.close()
    r2 = Recv()
    s.attach(r2)
    assert r2.frames == ['c[3000,"Go away!"]'] and r2.finished
    assert closes == []
    host.advance(5.1)
    assert closes == ["close"]


def test_close_event_exactly_once(host: FakeHost) -> None:
    s, r, closes = opened(host)
    s.connection.close()
    r.abort()
    s.expire()
    host.advance(100)
    assert closes == ["close"]


def test_default_close_is_1000_normal_closure(host: FakeHost) -> None:
    s, r, _ = opened(host)
    s.connection.close()
    assert r.frames[-1] == 'c[1000,"Normal closure"]'


def test_data_delivered_only_while_open(host: FakeHost) -> None:
    s, r, _ = opened(host)
    got: list[Any] = []
    s.connection.on("message", got.append)
    s.receive("a")
    s.receive({"b": 1})
    s.connection.close()
    s.receive("late")
    assert got == ["a", {"b": 1}]


def test_handler_errors_do_not_escape(host: FakeHost) -> None:
    s, r, _ = opened(host)

    def bad(_: Any) -> None:
        raise RuntimeError("boom")

    got: list[Any] = []
    s.connection.on("data", bad)
    s.connection.on("data", got.append)
    s.receive("x")
    assert got == ["x"]


def test_drain_waits_for_a_receiver(host: FakeHost) -> None:
    s, r, _ = opened(host, Recv(limit=1))
    s.connection.write("x")
    fut = s.wait_drained()
    assert not fut.done()
    s.attach(Recv(limit=1))
    assert fut.done()
    assert s.wait_drained().done()


def test_drain_resolves_on_close(host: FakeHost) -> None:
    s, r, _ = opened(host, Recv(limit=1))
    s.connection.write("x")
    fut = s.wait_drained()
    host.advance(6)
    assert s.state is ReadyState.CLOSED and fut.done()


def test_non_string_writes_are_sent_as_json(host: FakeHost) -> None:
    s, r, _ = opened(host)
    s.connection.write(5)
    s.connection.write({"a": [1, "é"]})
    host.end_turn()
    assert r.frames[-1] == 'a["5","{\\"a\\":[1,\\"é\\"]}"]'


def test_full_outbox_closes_the_session_by_default(host: FakeHost) -> None:
    s, r, closes = opened(host, Recv(limit=1))  # no receiver: everything queues
    for i in range(10):
        assert s.connection.write(str(i))
    assert not s.connection.write("one too many")
    assert s.state is ReadyState.CLOSING
    assert s.outbox == []
    r2 = Recv()
    s.attach(r2)
    assert r2.frames == ['c[1013,"Outgoing queue full"]']


def test_full_outbox_drops_with_the_drop_policy(host: FakeHost) -> None:
    host.drop_when_full = True
    s, r, _ = opened(host, Recv(limit=1))
    assert s.connection.write("x" * 900)
    assert not s.connection.write("y" * 200)  # over max_outbox_bytes
    assert s.dropped == 1 and s.state is ReadyState.OPEN
    r2 = Recv(limit=1)
    s.attach(r2)
    assert r2.frames == ['a["' + "x" * 900 + '"]']


def test_socket_backlog_counts_once_the_transport_pushes_back(host: FakeHost) -> None:
    host.drop_when_full = True
    s, r, _ = opened(host)
    r.paused = True
    r.buffered = 990
    assert not s.connection.write("0123456789abc")
    r.paused = False
    assert s.connection.write("0123456789abc")


def test_messages_before_the_connection_event_wait_for_it(host: FakeHost) -> None:
    s = Session("sid", host)
    s.attach(Recv())
    got: list[Any] = []
    # (the application attaches its handlers only when the event comes)
    s.receive_many(["early-1", "early-2"])
    s.connection.on("data", got.append)
    assert got == []
    host.end_turn()
    assert got == ["early-1", "early-2"]
    s.receive("later")
    assert got == ["early-1", "early-2", "later"]


def test_timer_entries_stay_bounded_when_deadlines_move_earlier(host: FakeHost) -> None:
    # Each streaming receiver arms the heartbeat (25 s); when it ends, the disconnect
    # deadline (5 s) moves the wake-up earlier and the heartbeat entry is superseded.
    # Was: a superseded entry re-armed itself when it fired, one more entry for good.
    s, r, closes = opened(host)
    for _ in range(100):
        r.finish()
        host.advance(1.0)
        r = Recv()
        s.attach(r)
        host.advance(30.0)  # heartbeats, and every superseded entry fires
    assert s.state is ReadyState.OPEN and closes == []
    assert len(host.timers) <= 2, len(host.timers)


def test_a_session_closed_before_its_connection_event_still_closes_once(host: FakeHost) -> None:
    # E.g. a WebSocket close frame in the handshake's packet ends the session before
    # the deferred 'connection' runs. Was: 'close' fired with no listener yet, then
    # 'connection' arrived on a CLOSED session, and the app never saw it end.
    s = Session("sid", host)
    r = Recv()
    s.attach(r)
    s.receive_many(["early"])
    r.abort()
    assert s.state is ReadyState.CLOSED and host.opened_conns == []
    events: list[str] = []

    def on_open(conn: Any) -> None:
        events.append("connection")
        conn.on("close", lambda: events.append("close"))

    host.opened = on_open  # type: ignore[method-assign]
    host.end_turn()
    assert events == ["connection", "close"]
    host.end_turn()
    host.advance(60)
    assert events == ["connection", "close"]


@pytest.mark.parametrize("bad", [object(), {1, 2}, [object()]])
def test_write_never_raises_on_what_json_cannot_encode(host: FakeHost, bad: Any) -> None:
    s, r, _ = opened(host)
    assert s.connection.write(bad) is False
    s.close()
    assert s.connection.write(bad) is False
    assert s.connection.write("late") is False


def test_write_of_a_self_referencing_list_returns_false(host: FakeHost) -> None:
    s, r, _ = opened(host)
    loop: list[Any] = []
    loop.append(loop)
    assert s.connection.write(loop) is False
    assert s.connection.write(["fine"]) is True
