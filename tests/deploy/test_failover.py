"""Failover through a real haproxy (the generated configuration) and redis-server:
the four faults of a deployment, one at a time, each bounded in time.

* SIGTERM a worker (a deploy): every one of its sessions gets c[1001], polling
  ones included; a message sent to it is delivered or refused visibly.
* kill -9 a worker; SIGSTOP a worker (longer than the broker's answer timeout,
  under publishing load); kill -9 redis-server and restart it.

Each asserts recovery within a stated bound, that the sessions of the other
worker see no interruption, and that cross-worker delivery resumes. The
measured times are printed (``pytest -s``: lines starting with FAILOVER) and
quoted in docs/scaling.md.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.cluster import (
    Client,
    Cluster,
    RedisServer,
    WebSocketClient,
    XhrPolling,
    XhrStreaming,
    close_all,
    wait_for,
)
from tests.helpers import Proc

#: The broker's timeouts, short so that a fault takes seconds: PING after 0.5 s
#: of silence, dead after 1 s without an answer; reconnects 0.1 s doubling to 0.5 s.
PARAMS = "health_interval=0.5&answer_timeout=1&connect_timeout=1&min_backoff=0.1&max_backoff=0.5"
SHUTDOWN = '"Server shutting down"'
#: Bounds asserted below (seconds).
RELEASE_AFTER_KILL = 2.0  # the dead worker's clients see their session end
RELEASE_AFTER_STOP = 5.0  # inter 1 s + 2 x (timeout check 1 s) + fastinter, and slack
BACK_IN_HAPROXY = 15.0  # supervisor backoff + start + broker link + rise 2 x inter 1 s
CROSS_AFTER_REDIS = 3.0  # max_backoff (+ jitter) + rise, and slack
DRAIN = 3.0  # SIGTERM -> every session of the worker got c[1001]
GONE = 3.0  # a client gone behind haproxy -> its session ended at the worker


def report(what: str, seconds: float) -> None:
    print(f"\nFAILOVER {what}: {seconds:.2f} s")


@pytest.fixture(scope="module")
def cluster(
    redis: RedisServer, haproxy_bin: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    c = Cluster(redis, haproxy_bin, tmp_path_factory.mktemp("failover"), broker_params=PARAMS)
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture()
def owners(cluster: Cluster) -> dict[str, str]:
    """{worker: a server id haproxy sends to it}, once both are healthy again."""
    for i in range(cluster.workers):
        wait_for(lambda i=i: cluster.health(i)[0] == 200, 20, f"w{i} healthy\n{cluster.log_text()}")
    return cluster.wait_balanced(20)


class Chatter:
    """A client sending a numbered message every ``interval`` seconds (the load)."""

    def __init__(self, client: Client, tag: str, interval: float = 0.02) -> None:
        self.client, self.tag, self.interval = client, tag, interval
        self.sent: list[tuple[str, int]] = []  # (text, HTTP status or 204 for WebSocket)
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        i = 0
        while not self._stop.wait(self.interval):
            i += 1
            text = f"{self.tag}{i}"
            try:
                self.sent.append((text, self.client.send(text)))
            except Exception as exc:
                self.errors.append(exc)

    def stop(self) -> list[str]:
        self._stop.set()
        self._thread.join(10)
        return [t for t, status in self.sent if status == 204]


def cross_delivery(a: Client, b: Client, tag: str, within: float) -> float:
    """Seconds until a message crosses both ways between ``a`` and ``b`` (on
    different workers); a new probe every 0.2 s, as Redis pub/sub keeps nothing."""
    started = time.monotonic()
    n = 0
    while True:
        n += 1
        ta, tb = f"{tag}-a{n}", f"{tag}-b{n}"
        a.send(ta)
        b.send(tb)
        end = time.monotonic() + 0.2
        while time.monotonic() < end:
            if ta in b.texts() and tb in a.texts():
                return time.monotonic() - started
            time.sleep(0.005)
        if time.monotonic() - started > within:
            raise AssertionError(f"{tag}: nothing crossed within {within} s")


def uninterrupted(survivors: list[Client], texts: list[str]) -> None:
    """The other worker's sessions got every message, in order, and never broke."""
    for c in survivors:
        c.wait_texts(texts, 10)
        got = [t for t in c.texts() if t in set(texts)]
        assert got == texts, (c.transport, got[:5], texts[:5])
        assert c.error is None and not c.closed.is_set(), (c.transport, c.error, c.frames[-3:])


def test_health_endpoint(cluster: Cluster, owners: dict[str, str]) -> None:
    for i in range(cluster.workers):
        assert cluster.health(i) == (200, "ok\n")
    assert "uri /_health?drain_status=404" in cluster.config
    assert "on-marked-down shutdown-sessions" in cluster.config


def test_sigterm_a_worker(cluster: Cluster, owners: dict[str, str]) -> None:
    """A deploy: SIGTERM to w1. Every session of w1 gets c[1001], polling ones
    included (their polls are answered while the worker drains); every message
    sent to w1 is either delivered or answered with an error; w0 carries on."""
    room, port = "deploy", cluster.listen_port
    clients: list[Client] = []
    try:
        survivors: list[Client] = [WebSocketClient(port, owners["w0"], room),
                                   XhrPolling(port, owners["w0"], room)]
        victims: list[Client] = (
            [XhrPolling(port, owners["w1"], room) for _ in range(6)]
            + [XhrStreaming(port, owners["w1"], room) for _ in range(2)]
            + [WebSocketClient(port, owners["w1"], room) for _ in range(2)]
        )
        clients += survivors + victims
        assert [c.worker for c in clients] == ["w0"] * 2 + ["w1"] * 10
        pid = cluster.status(1)["pid"]
        # Traffic all along: every broadcast ends the victims' polls, so some of
        # them are between two polls when the signal comes.
        load = Chatter(survivors[0], "load-")
        into_w1 = Chatter(victims[0], "to-w1-")
        time.sleep(0.5)
        t0 = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        for c in victims:
            assert c.closed.wait(DRAIN + 5), (c.transport, c.frames[-3:])
        drained = time.monotonic() - t0
        time.sleep(0.3)
        sent_w1 = into_w1.stop()
        load_texts = load.stop()
        report("SIGTERM: every session of the worker got c[1001]", drained)
        for c in victims:
            assert c.error is None, (c.transport, c.error, c.frames[-3:])
            assert c.frames[-1] == f"c[1001,{SHUTDOWN}]", (c.transport, c.frames[-3:])
        # Delivered (204, and the other worker's sessions got it) or refused (not 2xx).
        statuses = {status for _, status in into_w1.sent}
        assert statuses <= {204, 404, 503}, statuses
        assert not into_w1.errors, into_w1.errors[:3]
        refused = [t for t, status in into_w1.sent if status != 204]
        survivors[1].wait_texts(sent_w1, 10)
        print(f"\nFAILOVER SIGTERM: {len(sent_w1)} sends to w1 delivered, {len(refused)} "
              f"refused ({sorted(statuses)})")
        assert not load.errors
        uninterrupted(survivors, load_texts)
        assert drained < DRAIN
        # The supervisor restarts w1; haproxy takes it back; messages cross again.
        wait_for(lambda: cluster.status(1)["pid"] != pid, 15, f"w1 restarted\n{cluster.log_text()}")
        wait_for(lambda: cluster.sid_worker(owners["w1"]) == "w1", BACK_IN_HAPROXY,
                 f"w1 back in haproxy\n{cluster.log_text()}")
        back = time.monotonic() - t0
        report("SIGTERM: the restarted worker back in haproxy", back)
        fresh = XhrStreaming(port, owners["w1"], room)
        clients.append(fresh)
        assert fresh.worker == "w1"
        report("SIGTERM: cross-worker delivery after", cross_delivery(survivors[0], fresh, "st", 5))
        log = cluster.supervisor.log_text(400000)
        assert f"worker w1 (pid {pid}) exited with status 0" in log
    finally:
        close_all(clients)


def test_kill_a_worker(cluster: Cluster, owners: dict[str, str]) -> None:
    room, port = "kill9", cluster.listen_port
    clients: list[Client] = []
    try:
        survivors: list[Client] = [WebSocketClient(port, owners["w0"], room),
                                   XhrStreaming(port, owners["w0"], room)]
        victims: list[Client] = [WebSocketClient(port, owners["w1"], room),
                                 XhrStreaming(port, owners["w1"], room),
                                 XhrPolling(port, owners["w1"], room)]
        clients += survivors + victims
        pid = cluster.status(1)["pid"]
        load = Chatter(survivors[0], "k-")
        time.sleep(0.3)
        t0 = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        for c in victims:
            assert c.closed.wait(RELEASE_AFTER_KILL + 3), c.transport
        released = time.monotonic() - t0
        # Reconnecting with the very same server id: haproxy sends it to w0 now.
        again = XhrStreaming(port, owners["w1"], room)
        clients.append(again)
        again.hello(5)
        reconnected = time.monotonic() - t0
        uninterrupted(survivors, load.stop())
        report("kill -9: its clients see the end", released)
        report("kill -9: a client reconnected (same server id)", reconnected)
        assert released < RELEASE_AFTER_KILL
        wait_for(lambda: cluster.status(1)["pid"] != pid, 15, "w1 restarted")
        wait_for(lambda: cluster.health(1)[0] == 200, 15, "w1 healthy")
        wait_for(lambda: cluster.sid_worker(owners["w1"]) == "w1", BACK_IN_HAPROXY,
                 f"w1 back in haproxy\n{cluster.log_text()}")
        report("kill -9: the restarted worker back in haproxy", time.monotonic() - t0)
        fresh = WebSocketClient(port, owners["w1"], room)
        clients.append(fresh)
        assert fresh.worker == "w1"
        report("kill -9: cross-worker delivery after", cross_delivery(survivors[0], fresh, "k", 5))
    finally:
        close_all(clients)


def test_sigstop_a_worker_under_load(cluster: Cluster, owners: dict[str, str]) -> None:
    """w1 stopped for PAUSE s (longer than the broker's 1 s answer timeout) while
    both workers publish: haproxy marks it down and cuts its connections, so its
    clients are released within RELEASE_AFTER_STOP and reconnect to w0; after
    SIGCONT w1 is healthy again, with its Redis link, and messages cross."""
    room, port, pause = "stop", cluster.listen_port, 6.0
    clients: list[Client] = []
    try:
        survivors: list[Client] = [WebSocketClient(port, owners["w0"], room),
                                   XhrPolling(port, owners["w0"], room)]
        victims: list[Client] = [WebSocketClient(port, owners["w1"], room),
                                 XhrStreaming(port, owners["w1"], room),
                                 XhrPolling(port, owners["w1"], room)]
        clients += survivors + victims
        pid = cluster.status(1)["pid"]
        connects = cluster.status(1)["broker"]["connects"]
        load0 = Chatter(survivors[0], "p0-")
        load1 = Chatter(victims[0], "p1-")
        time.sleep(0.3)
        t0 = time.monotonic()
        os.kill(pid, signal.SIGSTOP)
        try:
            for c in victims[1:]:
                assert c.closed.wait(RELEASE_AFTER_STOP + 3), (c.transport, c.frames[-3:])
            released = time.monotonic() - t0
            again = XhrStreaming(port, owners["w1"], room)
            clients.append(again)
            assert again.worker == "w0"
            time.sleep(max(0.0, pause - (time.monotonic() - t0)))
        finally:
            os.kill(pid, signal.SIGCONT)
        resumed = time.monotonic()
        load1.stop()
        uninterrupted(survivors, load0.stop())
        report(f"SIGSTOP {pause:g} s: its HTTP clients released", released)
        assert released < RELEASE_AFTER_STOP
        wait_for(lambda: cluster.health(1)[0] == 200, 5, f"w1 healthy\n{cluster.log_text()}")
        wait_for(lambda: cluster.sid_worker(owners["w1"]) == "w1", BACK_IN_HAPROXY,
                 f"w1 back in haproxy\n{cluster.log_text()}")
        report("SIGSTOP: the worker back in haproxy after SIGCONT", time.monotonic() - resumed)
        assert cluster.status(1)["pid"] == pid
        assert cluster.status(1)["broker"]["connects"] == connects  # the link survived
        fresh = WebSocketClient(port, owners["w1"], room)
        clients.append(fresh)
        assert fresh.worker == "w1"
        report("SIGSTOP: cross-worker delivery after", cross_delivery(survivors[0], fresh, "p", 5))
    finally:
        close_all(clients)


def test_redis_killed_and_restarted(cluster: Cluster, redis: RedisServer,
                                    owners: dict[str, str]) -> None:
    """kill -9 redis-server: both workers keep their sessions and local delivery,
    report "drain" (no new sessions while another worker could take them; with
    none healthy, haproxy's backups still take them); after the restart,
    messages cross again within CROSS_AFTER_REDIS."""
    room, port = "redis9", cluster.listen_port
    clients: list[Client] = []
    try:
        a = [WebSocketClient(port, owners["w0"], room), XhrPolling(port, owners["w0"], room)]
        b = [XhrStreaming(port, owners["w1"], room), WebSocketClient(port, owners["w1"], room)]
        clients += a + b
        cross_delivery(a[0], b[0], "pre", 5)
        load_a, load_b = Chatter(a[0], "ra-"), Chatter(b[1], "rb-")
        assert redis.proc is not None
        redis.proc.send_signal(signal.SIGKILL)
        redis.stop()
        t0 = time.monotonic()
        wait_for(lambda: all(cluster.health(i)[0] == 503 for i in (0, 1)), 5, "both unhealthy")
        noticed = time.monotonic() - t0
        status, body = cluster.health(0, "?drain_status=404")
        assert status == 404 and body.startswith("drain: "), body
        # Once haproxy has drained every checked server (its checks saw the 404), a
        # new session still gets in (the unchecked backups), and local delivery works.
        drained: dict[str, str] = {}
        wait_for(lambda: drained.update(cluster.haproxy.server_states("fastsockjs_sessions"))
                 or (drained.get("w0") == drained.get("w1") == "NOLB"
                     and all(st in ("NOLB", "no check") for st in drained.values())), 5,
                 f"haproxy draining both workers ({drained})")
        new = XhrStreaming(port, "999", room)
        clients.append(new)
        new.hello(5)
        time.sleep(1.0)
        redis.start()
        restarted = time.monotonic()
        took = cross_delivery(a[1], b[0], "post", CROSS_AFTER_REDIS)
        uninterrupted(a, [t for t in load_a.stop()])
        uninterrupted(b, [t for t in load_b.stop()])
        report("kill -9 redis: both workers report it", noticed)
        report("kill -9 redis: cross-worker delivery after the restart", took)
        wait_for(lambda: all(cluster.health(i)[0] == 200 for i in (0, 1)), 5, "healthy again")
        report("kill -9 redis: healthy after the restart", time.monotonic() - restarted)
    finally:
        close_all(clients)


def _sessions(cluster: Cluster, i: int) -> int:
    return int(cluster.status(i)["sessions"])


def _settled_sessions(cluster: Cluster, i: int, timeout: float = 30.0) -> int:
    """Worker ``i``'s live sessions once the count has held still for 1 s (earlier
    tests' sessions may still be ending), so that a test can count its own."""
    deadline = time.monotonic() + timeout
    last, since = _sessions(cluster, i), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = _sessions(cluster, i)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= 1.0:
            return now
    raise TimeoutError(f"worker {i}'s session count kept changing for {timeout} s")


@pytest.mark.parametrize("transport", ["xhr-streaming", "xhr-polling"])
def test_client_gone_behind_haproxy(cluster: Cluster, owners: dict[str, str],
                                    transport: str) -> None:
    """A client that goes away (its socket closed) behind haproxy: haproxy passes
    the close on (abortonclose, and a streaming response being forwarded), so the
    worker ends the session within GONE, not at the next heartbeat (25 s)."""
    cls = XhrStreaming if transport == "xhr-streaming" else XhrPolling
    before = _settled_sessions(cluster, 0)
    c = cls(cluster.listen_port, owners["w0"], "gone")
    try:
        assert c.hello(5)["worker"] == "w0"
        wait_for(lambda: _sessions(cluster, 0) == before + 1, 5, "the session counted")
        time.sleep(0.3)  # the poll (or stream) is held at the worker now
    finally:
        t0 = time.monotonic()
        c.close()
    wait_for(lambda: _sessions(cluster, 0) == before, GONE, f"{transport} session ended")
    report(f"{transport} client gone behind haproxy: session ended", time.monotonic() - t0)


def test_haproxy_soft_reload(cluster: Cluster, owners: dict[str, str], haproxy_bin: str,
                             tmp_path: Path) -> None:
    """`haproxy -sf <old pid>` (a soft reload): the old process stops listening but
    keeps its connections, the new one takes new ones; no session is dropped, and
    a polling session's next requests reach its worker through the new process
    (the same consistent hash)."""
    room, port = "reload", cluster.listen_port
    clients: list[Client] = []
    new: Proc | None = None
    try:
        clients += [WebSocketClient(port, owners["w0"], room), XhrStreaming(port, owners["w1"], room),
                    XhrPolling(port, owners["w0"], room), XhrPolling(port, owners["w1"], room)]
        # Every session exists before the reload (a poll still opening its session
        # during it could join after the first messages, which it would then get
        # only in the room's history).
        for c in clients:
            c.hello(5)
        old = cluster.haproxy.proc
        new = Proc("haproxy-reloaded", [haproxy_bin, "-db", "-f", str(cluster.haproxy.cfg),
                                        "-sf", str(old.proc.pid)], tmp_path / "haproxy2.log")
        t0 = time.monotonic()
        fresh = XhrStreaming(port, owners["w0"], room)  # through whichever listens now
        clients.append(fresh)
        fresh.hello(5)
        texts = [f"after-reload-{i}" for i in range(5)]
        for i, t in enumerate(texts):
            assert clients[i % 4].send(t) == 204
        for c in clients:
            c.wait_texts(texts, 10)
            assert c.error is None and not c.closed.is_set(), (c.transport, c.error)
        report("haproxy soft reload: every session kept", time.monotonic() - t0)
        assert old.alive(), "the old haproxy left while it still had connections"
        close_all(clients)
        wait_for(lambda: not old.alive(), 10, "the old haproxy leaving once its connections end")
    finally:
        close_all(clients)
        if new is not None:
            cluster.haproxy.proc.stop(5)
            cluster.haproxy.proc = new  # the cluster stops this one at the end
