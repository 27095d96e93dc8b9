"""Optional Prometheus metrics (``pip install fastsockjs[prometheus]``), off by default.

``Listener(metrics_path="/metrics")`` answers that path with the text
exposition of every mounted server's ``stats()``; or register
:class:`StatsCollector` in your own ``prometheus_client`` registry, over a
Listener, a SockJSApp or a single Server, natively or under ASGI alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol


class StatsSource(Protocol):
    def stats(self) -> dict[str, Any]: ...


def host_stats(source: Any) -> dict[str, Any]:
    """``source.stats()`` in a host's shape (connections, bytes, errors, mounts):
    a Server's own figures are summed over its mounts, so they are rebuilt here
    from each mount's."""
    stats = source.stats()
    if "endpoints" in stats:
        return dict(stats)
    mounts = getattr(source, "endpoints", [])
    parts = [m.stats() for m in mounts]
    return {
        "connections": None,
        "bytes_in": sum(p["bytes_in"] for p in parts),
        "bytes_out": sum(p["bytes_out"] for p in parts),
        "http_errors": {},
        "endpoints": parts,
    }


class StatsCollector:
    """A prometheus_client collector reading ``source.stats()`` on each scrape
    (``source``: a Listener, a SockJSApp or a Server)."""

    def __init__(self, source: StatsSource, worker: str = "") -> None:
        self.source = source
        self.worker = worker

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        stats = host_stats(self.source)
        base = ["worker"]
        w = [self.worker]
        if stats["connections"] is not None:  # (a lone Server knows no sockets)
            conns = GaugeMetricFamily(
                "fastsockjs_connections", "Open TCP connections", labels=base
            )
            conns.add_metric(w, stats["connections"])
            yield conns
        for name, help_ in (("bytes_in", "Bytes received"), ("bytes_out", "Bytes sent")):
            c = CounterMetricFamily(f"fastsockjs_{name}", help_, labels=base)
            c.add_metric(w, stats[name])
            yield c
        errors = CounterMetricFamily(
            "fastsockjs_http_errors", "HTTP-level refusals by status", labels=[*base, "status"]
        )
        for status, n in stats["http_errors"].items():
            errors.add_metric([*w, str(status)], n)
        yield errors
        labels = [*base, "prefix"]
        sessions = GaugeMetricFamily(
            "fastsockjs_sessions", "Live sessions", labels=[*labels, "transport"]
        )
        queued = GaugeMetricFamily(
            "fastsockjs_queued_bytes", "Bytes waiting to be sent", labels=labels
        )
        counters = {
            key: CounterMetricFamily(f"fastsockjs_{key}", text, labels=labels)
            for key, text in (
                ("opened", "Sessions opened"),
                ("closed", "Sessions closed"),
                ("messages_in", "Messages received"),
                ("messages_out", "Messages written to the network"),
                ("server_bytes_in", "Socket bytes received for this mount"),
                ("server_bytes_out", "Socket bytes sent for this mount"),
                ("dropped", "Messages refused because an outbox was full"),
            )
        }
        refused = CounterMetricFamily(
            "fastsockjs_refused", "Requests refused by reason", labels=[*labels, "reason"]
        )
        for ep in stats["endpoints"]:
            lv = [*w, ep["prefix"]]
            for transport, n in ep["sessions_by_transport"].items():
                sessions.add_metric([*lv, transport], n)
            queued.add_metric(lv, ep["queued_bytes"])
            for key, fam in counters.items():
                fam.add_metric(lv, ep[key.removeprefix("server_")])
            for reason, n in ep["refused"].items():
                refused.add_metric([*lv, reason], n)
        yield sessions
        yield queued
        yield from counters.values()
        yield refused


def exposition(source: StatsSource, worker: str = "") -> tuple[bytes, str]:
    """(body, content type) of the Prometheus text format for ``source``."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    registry.register(StatsCollector(source, worker))
    return generate_latest(registry), CONTENT_TYPE_LATEST
