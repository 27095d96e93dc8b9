"""engine/mount.py: the session table, capacity, the end-of-turn flush, forget and
stats of one mounted Server, on a fake runtime (a fake clock, no loop)."""

from __future__ import annotations

import logging

import pytest

from fastsockjs.engine.mount import Mount
from fastsockjs.protocol.http import NO_CACHE, HttpError, Request
from fastsockjs.protocol.session import ReadyState
from fastsockjs.server import Server
from tests.unit.fakes import FakeClock, FakeRuntime, Mounted, Recv


def attach(m: Mounted, sid: str, recv: Recv | None = None) -> Recv:
    r = recv or Recv()
    r.protocol = "xhr-streaming"
    m.mount.open_session(sid).attach(r, Request("POST", "/", {"host": "h"}))
    m.clock.end_turn()
    return r


def test_the_session_table() -> None:
    m = Mounted()
    mount = m.mount
    a = mount.open_session("a")
    assert mount.open_session("a") is a and mount.session("a") is a
    assert mount.session("b") is None
    ws = mount.new_ws_session()
    assert ws.session_id is None and ws is not mount.new_ws_session()
    assert mount.live_sessions == 3
    assert set(mount.all_sessions()) >= {a, ws}


def test_capacity_is_503_for_new_sessions_only() -> None:
    m = Mounted(max_sessions=2)
    mount = m.mount
    mount.open_session("a")
    mount.new_ws_session()
    for make in (lambda: mount.open_session("c"), mount.new_ws_session, mount.raw_host):
        with pytest.raises(HttpError) as err:
            make()
        assert (err.value.status, err.value.headers) == (503, [("Retry-After", "5")])
    assert mount.open_session("a") is mount.session("a")  # an existing session is no new load


def test_forget_removes_only_that_session_and_counts_opened_ones() -> None:
    m = Mounted()
    mount = m.mount
    attach(m, "a")
    old = mount.session("a")
    assert old is not None
    old.expire()
    assert mount.session("a") is None and mount.stats()["closed"] == 1
    new = mount.open_session("a")
    mount.forget(old)  # a late forget of the old one leaves the new one alone
    assert mount.session("a") is new
    closed = mount.stats()["closed"]
    new.expire()  # never opened (no receiver came): not counted as closed
    assert mount.stats()["closed"] == closed and mount.live_sessions == 0


def test_writes_of_one_turn_are_flushed_once_at_its_end() -> None:
    m = Mounted()
    recvs = [attach(m, sid) for sid in ("a", "b")]
    for conn in m.conns:
        conn.write("1")
        conn.write("2")
    assert len(m.clock.soon) == 1  # one end-of-turn call for every dirty session
    assert [r.frames for r in recvs] == [["o"], ["o"]]
    m.clock.end_turn()
    assert [r.frames for r in recvs] == [["o", 'a["1","2"]']] * 2


def test_a_failing_flush_is_logged_and_the_others_still_go(
    caplog: pytest.LogCaptureFixture,
) -> None:
    m = Mounted()

    class Broken(Recv):
        def send_messages(self, quoted: list[str]) -> None:
            raise RuntimeError("boom")

    attach(m, "a", Broken())
    good = attach(m, "b")
    for conn in m.conns:
        conn.write("x")
    with caplog.at_level(logging.ERROR, "fastsockjs.error"):
        m.clock.end_turn()
    assert "flushing" in caplog.text and "RuntimeError: boom" in caplog.text
    assert good.frames == ["o", 'a["x"]']


def test_stats_count_sessions_messages_and_queued_bytes() -> None:
    m = Mounted()
    mount = m.mount
    recv = attach(m, "a")
    mount.open_session("waiting")  # no receiver yet: 'connecting'
    recv.buffered = 7  # bytes the socket still holds
    recv.session.receive_many(["in1", "in2"])  # type: ignore[union-attr]
    m.conns[0].write("out")
    mount.refused("origin")
    mount.refused("origin")
    stats = mount.stats()
    assert stats["sessions"] == 2
    assert stats["sessions_by_transport"] == {"xhr-streaming": 1, "connecting": 1}
    assert stats["opened"] == 1 and stats["closed"] == 0
    assert stats["messages_in"] == 2 and stats["messages_out"] == 0
    # The quoted message waiting for the end of the turn, plus the socket's buffer.
    assert stats["queued_bytes"] == len('"out"') + 7
    assert stats["refused"] == {"origin": 2}
    m.clock.end_turn()
    stats = mount.stats()
    assert stats["messages_out"] == 1 and stats["queued_bytes"] == 7


def test_opened_sessions_reach_the_servers_connection_event() -> None:
    m = Mounted()
    attach(m, "a")
    assert [c.protocol for c in m.conns] == ["xhr-streaming"]
    assert m.conns[0].ready_state is ReadyState.OPEN


def test_session_headers_leave_cors_out_when_asked() -> None:
    m = Mounted()
    request = Request("GET", "/", {"host": "h", "origin": "https://a.test"})
    with_cors: list[tuple[str, str]] = []
    m.mount.session_headers(request, with_cors)
    without: list[tuple[str, str]] = []
    m.mount.session_headers(request, without, cors=False)
    assert without == [("Cache-Control", NO_CACHE)]
    assert with_cors[:2] == [("Cache-Control", NO_CACHE),
                             ("Access-Control-Allow-Origin", "https://a.test")]


def test_a_mount_off_any_loop_says_so() -> None:
    server = Server(prefix="/x")
    mount = Mount(server, server.options, None)
    with pytest.raises(RuntimeError, match="not running on an event loop"):
        mount.open_session("a")
    assert mount.session("a") is None and mount.live_sessions == 0


def test_the_sessions_clock_and_flushes_follow_the_runtime() -> None:
    # Sessions read the mount's clock and join its flush queue per message: both
    # are the bound loop's own (rebinding moves them), and say so when unbound.
    m = Mounted()
    mount = m.mount
    assert mount.clock() == m.clock.time()
    recv = attach(m, "a")
    other = FakeRuntime(FakeClock(5000.0))
    mount.runtime = other  # type: ignore[assignment] # (duck-typed, as in Mounted)
    assert mount.clock() == 5000.0
    m.conns[0].write("x")
    assert other.clock.soon and not m.clock.soon
    other.clock.end_turn()
    assert recv.frames == ["o", 'a["x"]']
    mount.runtime = None
    with pytest.raises(RuntimeError, match="not running on an event loop"):
        mount.clock()
