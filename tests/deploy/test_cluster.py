"""Two fastsockjs workers behind a real haproxy, fanning out through a real redis-server.

Stickiness: haproxy hashes ``/chat/<server_id>``; a session's requests reaching a worker
that does not own it would fail (its xhr_send answers 404 there, as the control shows),
so many sessions with different server ids all working, over every transport, prove
that each request reached its owner. Broadcasts cross workers through Redis, once each,
in order per publisher.
"""

from __future__ import annotations

import threading

import pytest

from tests.deploy.cluster import (
    TRANSPORTS,
    Client,
    Cluster,
    WebSocketClient,
    XhrPolling,
    XhrStreaming,
    close_all,
    open_client,
)
from tests.helpers import request


def test_every_request_of_a_session_reaches_its_owner(cluster: Cluster) -> None:
    owner_of: dict[str, str] = {}
    clients: list[Client] = []
    try:
        for n in range(24):
            sid = f"{100 + n}"
            group = [open_client(t, cluster.listen_port, sid, room=f"stick{n}") for t in TRANSPORTS]
            clients += group
            for c in group:
                # The same server id always lands on the same worker, whatever the transport.
                assert owner_of.setdefault(sid, c.worker) == c.worker, (sid, c.transport)
            for c in group:
                # Sends (xhr_send through haproxy for HTTP transports) reach the owner: 204.
                assert c.send(f"{c.transport} {sid}") == 204
            # ... and come back through each session's own receiver (its polls, its stream).
            for c in group:
                c.wait_texts([f"{t} {sid}" for t in TRANSPORTS], 5)
        assert set(owner_of.values()) == {"w0", "w1"}, owner_of
        assert all(c.error is None for c in clients), [c.error for c in clients if c.error]
    finally:
        close_all(clients)


def test_control_a_session_is_unknown_to_the_other_worker(cluster: Cluster) -> None:
    """What a mis-routed request would get: 404 from the worker that does not own it."""
    sid = cluster.wait_balanced()["w0"]
    c = XhrPolling(cluster.listen_port, sid, room="control")
    try:
        assert c.worker == "w0"
        other = cluster.worker_port(1)
        r = request(other, "POST", f"{c.base}/xhr_send", '["misrouted"]')
        assert r.status == 404
        r = request(cluster.worker_port(0), "POST", f"{c.base}/xhr_send", '["direct"]')
        assert r.status == 204
        c.wait_texts(["direct"], 5)
    finally:
        c.close()


def test_broadcast_reaches_every_session_on_every_worker_in_order(
    cluster: Cluster, owners: dict[str, str]
) -> None:
    room = "fanout"
    clients: list[Client] = []
    try:
        for worker in ("w0", "w1"):
            for transport in TRANSPORTS:
                c = open_client(transport, cluster.listen_port, owners[worker], room)
                assert c.worker == worker
                clients.append(c)
        # Publisher A: a WebSocket on w0; B: xhr-polling (xhr_send) on w1; concurrently.
        a = next(c for c in clients if c.worker == "w0" and isinstance(c, WebSocketClient))
        b = next(c for c in clients if c.worker == "w1" and type(c) is XhrPolling)
        n = 30
        a_texts = [f"A{i}" for i in range(n)]
        b_texts = [f"B{i}" for i in range(n)]
        statuses: list[int] = []

        def publish(client: Client, texts: list[str]) -> None:
            for t in texts:
                statuses.append(client.send(t))

        threads = [threading.Thread(target=publish, args=(a, a_texts)),
                   threading.Thread(target=publish, args=(b, b_texts))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert statuses == [204] * (2 * n)
        for c in clients:
            c.wait_texts(a_texts + b_texts, 15)
        for c in clients:
            got = [m for m in c.messages if m["type"] == "message"]
            texts = [m["text"] for m in got]
            assert len(texts) == 2 * n, (c.transport, c.worker, texts)  # nothing twice
            assert [t for t in texts if t[0] == "A"] == a_texts, (c.transport, c.worker)
            assert [t for t in texts if t[0] == "B"] == b_texts, (c.transport, c.worker)
            # Each message names the worker its publisher is attached to.
            assert {m["worker"] for m in got if m["text"][0] == "A"} == {"w0"}
            assert {m["worker"] for m in got if m["text"][0] == "B"} == {"w1"}
        assert all(c.error is None for c in clients)
        # Both workers forwarded through Redis and skipped their own echoes.
        for i in range(2):
            broker = cluster.status(i)["broker"]
            assert broker["backend"] == "redis" and broker["connected"]
            assert broker["forwarded"] >= n and broker["received"] >= n
            assert broker["skipped_own"] >= n
            assert broker["dropped"] == 0
    finally:
        close_all(clients)


def test_worker_id_in_logs_and_responses(cluster: Cluster) -> None:
    r = request(cluster.listen_port, "GET", "/")
    assert r.status == 200 and r["x-fastsockjs-worker"] in ("w0", "w1")
    assert b"SockJS" in r.body
    statuses = [cluster.status(i) for i in range(2)]
    assert [s["worker"] for s in statuses] == ["w0", "w1"]
    assert statuses[0]["broker"]["origin"] != statuses[1]["broker"]["origin"]
    log = cluster.supervisor.log_text(200000)
    assert "[w0] fastsockjs INFO listening on" in log
    assert "[w1] fastsockjs INFO listening on" in log
    assert "[supervisor] fastsockjs.workers INFO started worker w1" in log


@pytest.mark.parametrize("transport", ["xhr-streaming", "websocket"])
def test_streams_survive_through_haproxy(cluster: Cluster, transport: str) -> None:
    """Many messages in one stream through haproxy (no buffering, no early close)."""
    sid = cluster.wait_balanced()["w1"]
    cls = XhrStreaming if transport == "xhr-streaming" else WebSocketClient
    c = cls(cluster.listen_port, sid, room=f"stream-{transport}")
    try:
        c.hello()
        c.joined()  # a burst before the join is refused past the early-message bound
        texts = [f"m{i} " + "x" * 500 for i in range(200)]
        for i in range(0, len(texts), 20):
            assert c.send(*texts[i : i + 20]) == 204
        c.wait_texts(texts, 15)
        assert c.texts() == texts
    finally:
        c.close()
