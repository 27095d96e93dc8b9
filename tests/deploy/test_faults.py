"""Faults in a real deployment: a worker killed, Redis stopped and restarted.

* Kill one worker (SIGKILL): sessions on the other one are unaffected; the dead
  worker's clients reconnect through haproxy to a live worker (a refused connection is
  redispatched at once; health checks mark it down); the supervisor restarts the worker.
* Stop Redis: local delivery never stops; after Redis comes back on the same port
  the backends resubscribe and broadcasts cross workers again, nothing duplicated.
"""

from __future__ import annotations

import os
import signal
import time

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


def _messages(c: Client) -> list[str]:
    return c.texts()


def test_kill_a_worker(cluster: Cluster, owners: dict[str, str]) -> None:
    room = "kill"
    port = cluster.listen_port
    clients: list[Client] = []
    try:
        s0 = XhrPolling(port, owners["w0"], room)
        w0 = WebSocketClient(port, owners["w0"], room)
        s1 = XhrPolling(port, owners["w1"], room)
        w1 = WebSocketClient(port, owners["w1"], room)
        clients += [s0, w0, s1, w1]
        assert [c.worker for c in clients] == ["w0", "w0", "w1", "w1"]
        s0.send("before")
        for c in clients:
            c.wait_texts(["before"])

        victim = cluster.status(1)["pid"]
        os.kill(victim, signal.SIGKILL)  # a worker of the supervisor this test started

        # Its clients see their session end: the WebSocket closes, the poll fails.
        assert w1.closed.wait(5), "w1's WebSocket is still open"
        assert s1.closed.wait(10), "w1's poll did not end"

        # Sessions on w0 never noticed.
        for i in range(5):
            assert s0.send(f"during {i}") == 204
            assert w0.send(f"ws during {i}") == 204
        for c in (s0, w0):
            c.wait_texts([f"during {i}" for i in range(5)] + [f"ws during {i}" for i in range(5)])
            assert c.error is None

        # The dead worker's clients reconnect through haproxy -- with the very same
        # server id, the worst case -- to a live worker, within a bounded time.
        started = time.monotonic()
        reconnected: list[Client] = []

        def reconnect() -> bool:
            for cls in (XhrStreaming, WebSocketClient):
                if not any(isinstance(c, cls) for c in reconnected):
                    c = cls(port, owners["w1"], room)
                    clients.append(c)
                    c.hello(3)
                    reconnected.append(c)
            return len(reconnected) == 2

        wait_for(reconnect, 15, f"reconnecting through haproxy\n{cluster.log_text()}", 0.2)
        assert time.monotonic() - started < 15
        alive = {c.worker for c in reconnected}
        # Either worker w0 (while w1 is down) or the restarted w1 (a new process).
        for c in reconnected:
            status = cluster.status(0 if c.worker == "w0" else 1)
            assert status["pid"] != victim
        s0.send("after")
        for c in [s0, w0, *reconnected]:
            c.wait_texts(["after"], 10)
        assert alive <= {"w0", "w1"}

        # The supervisor restarted w1: a new pid on its port, linked to Redis again.
        def restarted() -> bool:
            s = cluster.status(1)
            return s["pid"] != victim and s["broker"]["connected"]

        wait_for(restarted, 20, f"w1 restarted\n{cluster.log_text()}")
        # Once haproxy's health checks see it up again, its server ids go back to it.
        wait_for(lambda: cluster.sid_worker(owners["w1"]) == "w1", 15, "haproxy using w1 again")
        assert cluster.supervisor.alive()
        assert "worker w1 (pid %d) exited with signal SIGKILL; restarting" % victim in (
            cluster.supervisor.log_text(200000)
        )
    finally:
        close_all(clients)


def test_sessions_stay_put_when_a_worker_comes_back(
    cluster: Cluster, owners: dict[str, str]
) -> None:
    """A session that failed over to w0 while w1 was unreachable keeps reaching w0
    once w1 is back (haproxy's stick table), though new sessions go to w1 again."""
    room = "failback"
    sid = owners["w1"]
    w1 = cluster.status(1)["pid"]
    os.kill(w1, signal.SIGSTOP)  # unreachable, not dead: the supervisor does not restart it
    moved: Client | None = None
    try:
        wait_for(lambda: cluster.sid_worker(sid, timeout=1) == "w0", 15, "failing over to w0")
        moved = XhrStreaming(cluster.listen_port, sid, room)
        assert moved.worker == "w0"
    finally:
        os.kill(w1, signal.SIGCONT)
    try:
        wait_for(lambda: cluster.sid_worker(sid) == "w1", 15, "w1 back in haproxy")
        # Without the stick table this xhr_send would hash to w1, which answers 404.
        for i in range(5):
            assert moved.send(f"still on w0 {i}") == 204
        moved.wait_texts([f"still on w0 {i}" for i in range(5)], 10)
        assert moved.worker == "w0" and moved.error is None
    finally:
        moved.close()


def test_redis_restart(cluster: Cluster, redis: RedisServer, owners: dict[str, str]) -> None:
    room = "redis-restart"
    port = cluster.listen_port
    clients: list[Client] = []
    try:
        a1 = WebSocketClient(port, owners["w0"], room)
        a2 = XhrPolling(port, owners["w0"], room)
        b1 = XhrStreaming(port, owners["w1"], room)
        b2 = WebSocketClient(port, owners["w1"], room)
        clients += [a1, a2, b1, b2]
        assert [c.worker for c in clients] == ["w0", "w0", "w1", "w1"]
        a1.send("pre")
        for c in clients:
            c.wait_texts(["pre"])

        redis.stop()
        wait_for(
            lambda: not any(cluster.status(i)["broker"]["connected"] for i in (0, 1)),
            10, "workers noticing Redis is gone",
        )
        # Local delivery never stops: each worker's own sessions still get its messages.
        during_a = [f"during-a{i}" for i in range(5)]
        during_b = [f"during-b{i}" for i in range(5)]
        for t in during_a:
            assert a1.send(t) == 204
        for t in during_b:
            assert b1.send(t) == 204
        for c in (a1, a2):
            c.wait_texts(during_a)
        for c in (b1, b2):
            c.wait_texts(during_b)

        redis.start()  # same port
        # The backends reconnect (bounded backoff) and resubscribe the room.
        def resubscribed() -> bool:
            return all(
                (b := cluster.status(i)["broker"])["connected"] and f"chat:{room}" in b["subscribed"]
                for i in (0, 1)
            )

        wait_for(resubscribed, 15, f"resubscribing\n{cluster.log_text()}")
        post_a = [f"post-a{i}" for i in range(10)]
        post_b = [f"post-b{i}" for i in range(10)]
        for ta, tb in zip(post_a, post_b):
            assert a2.send(ta) == 204
            assert b2.send(tb) == 204
        for c in clients:
            c.wait_texts(post_a + post_b, 10)
        time.sleep(0.3)  # anything duplicated would have arrived by now

        for c in clients:
            texts = _messages(c)
            assert len(texts) == len(set(texts)), (c.worker, c.transport, texts)  # no duplicates
            assert [t for t in texts if t.startswith("post-a")] == post_a
            assert [t for t in texts if t.startswith("post-b")] == post_b
            local, remote = (during_a, during_b) if c.worker == "w0" else (during_b, during_a)
            # Local: all of them, in order. Remote: at most once -- here none, as
            # Redis was down: Redis pub/sub keeps nothing for later.
            assert [t for t in texts if t in local] == local
            assert not [t for t in texts if t in remote], (c.worker, texts)
            assert c.error is None
        for i in (0, 1):
            broker = cluster.status(i)["broker"]
            assert broker["connects"] >= 2
            assert broker["dropped"] >= 5  # the outage's messages, not forwarded
        log = cluster.supervisor.log_text(400000)
        assert "fastsockjs.broker WARNING lost Redis" in log
        assert "fastsockjs.broker INFO reconnected to Redis" in log
    finally:
        close_all(clients)
