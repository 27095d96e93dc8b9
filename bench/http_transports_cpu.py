"""In-process CPU per message / per request of the HTTP transports, with no sockets.

Usage: ``python -m bench.http_transports_cpu [--rounds 5] [--seconds 0.5]``
(``FASTSOCKJS_PURE_PYTHON=1`` for the twin kernels).

The load benchmark's sibling scenarios (``python -m bench.load --scenario
xhr-streaming,eventsource,htmlfile,xhr-polling,jsonp-polling``) on a shared machine
move by more than the 10% they are meant to resolve; this drives the same handlers
through a real Mount on a fake clock (``tests.unit.fakes``), with an echo service, and
times only the Python the server runs:

* streaming (``xhr-streaming``, ``eventsource``, ``htmlfile``): one receiver per
  session, then rounds of one ``xhr_send`` of 16 messages of 32 B each, echoed back
  into one frame (as the load benchmark's stream scenarios do): CPU µs per message;
* polling (``xhr-polling``, ``jsonp-polling``): a poll held, then a send of one
  message (``jsonp_send`` as the form sockjs-client posts) that answers it: CPU µs
  per request (each cycle is two requests).

Prints, per scenario, the median over rounds and the ratio to its sibling
(``xhr-streaming``, ``xhr-polling``) in the same round.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from urllib.parse import quote as urlquote

from fastsockjs import frames
from fastsockjs.protocol.http import Request
from fastsockjs.protocol.routing import Route
from fastsockjs.transports import eventsource, htmlfile, jsonp, xhr
from tests.unit.fakes import FakeExchange, Mounted

BATCH = 16


def _messages(n: int, seq: int) -> list[str]:
    # 32 ASCII bytes each, like the load generator's (a timestamp, a session, a counter).
    return [f"{seq:016x}{i:08x}-bench-" for i in range(n)]


class _Bench:
    """One echo session on a Mount, with its requests prebuilt."""

    def __init__(self) -> None:
        self.m = Mounted(response_limit=1 << 60)
        self.m.server.on("connection", lambda conn: conn.on("data", conn.write))
        self.mount = self.m.mount
        self.end_turn = self.m.clock.end_turn
        self.seq = 0

    def run(self, handler: Callable[..., None], request: Request, route: Route) -> FakeExchange:
        exchange = FakeExchange()
        handler(self.mount, request, exchange, route)
        self.end_turn()
        return exchange


def _request(method: str, url: str, body: bytes = b"", **headers: str) -> Request:
    return Request(method, url, {"host": "h", **headers}, body=body, remote=("10.0.0.1", 1))


def _send_request(form: bool, messages: list[str]) -> Request:
    text = json.dumps(messages, separators=(",", ":"))
    if form:
        return _request("POST", "/echo/000/s1/jsonp_send", ("d=" + urlquote(text)).encode(),
                        **{"content-type": "application/x-www-form-urlencoded"})
    return _request("POST", "/echo/000/s1/xhr_send", text.encode(),
                    **{"content-type": "text/plain;charset=UTF-8"})


STREAMS: dict[str, tuple[Callable[..., None], str, str]] = {
    "xhr-streaming": (xhr.xhr_streaming, "POST", "xhr_streaming"),
    "eventsource": (eventsource.eventsource, "GET", "eventsource"),
    "htmlfile": (htmlfile.htmlfile, "GET", "htmlfile?c=_jp.a000001"),
}


def _until(seconds: float, iterations: int | None) -> Callable[[], bool]:
    """Whether to go on: for ``seconds``, or exactly ``iterations`` times."""
    if iterations is not None:
        left = [iterations]

        def counting() -> bool:
            left[0] -= 1
            return left[0] >= 0

        return counting
    deadline = time.perf_counter() + seconds
    return lambda: time.perf_counter() < deadline


def stream_us_per_message(name: str, seconds: float, iterations: int | None = None) -> float:
    handler, method, what = STREAMS[name]
    b = _Bench()
    kind = what.partition("?")[0]
    receiver = b.run(handler, _request(method, "/echo/000/s1/" + what), Route(kind, "000", "s1"))
    send_route = Route("xhr_send", "000", "s1")
    sends = [_send_request(False, _messages(BATCH, i)) for i in range(64)]
    done = 0
    cpu = 0
    go_on = _until(seconds, iterations)
    while go_on():
        t0 = time.process_time_ns()
        for request in sends:
            b.run(xhr.xhr_send, request, send_route)
        cpu += time.process_time_ns() - t0
        done += len(sends) * BATCH
        receiver.streamed.clear()
    assert not receiver.ended
    return cpu / done / 1000


POLLS: dict[str, tuple[Callable[..., None], str, Callable[..., None], bool]] = {
    "xhr-polling": (xhr.xhr_polling, "POST xhr", xhr.xhr_send, False),
    "jsonp-polling": (jsonp.jsonp, "GET jsonp?c=_jp.a000001", jsonp.jsonp_send, True),
}


def poll_us_per_request(name: str, seconds: float, iterations: int | None = None) -> float:
    poller, what, sender, form = POLLS[name]
    method, _, target = what.partition(" ")
    kind = target.partition("?")[0]
    b = _Bench()
    poll_route = Route(kind, "000", "s1")
    send_route = Route(kind + "_send" if kind == "jsonp" else "xhr_send", "000", "s1")
    b.run(poller, _request(method, "/echo/000/s1/" + target), poll_route)  # the open frame
    polls = [_request(method, "/echo/000/s1/" + target) for _ in range(64)]
    sends = [_send_request(form, _messages(1, i)) for i in range(64)]
    cycles = 0
    cpu = 0
    go_on = _until(seconds, iterations)
    while go_on():
        t0 = time.process_time_ns()
        for poll, send in zip(polls, sends, strict=True):
            held = b.run(poller, poll, poll_route)
            b.run(sender, send, send_route)
            if not held.ended:
                raise AssertionError("the send did not answer the poll")
        cpu += time.process_time_ns() - t0
        cycles += len(polls)
    return cpu / (2 * cycles) / 1000


SIBLING = {"eventsource": "xhr-streaming", "htmlfile": "xhr-streaming",
           "jsonp-polling": "xhr-polling"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.5, help="per scenario per round")
    parser.add_argument(
        "--only", help="one scenario, run --iterations times (64 sends or poll cycles each) "
        "and nothing else: for instruction counts, e.g. under valgrind --tool=callgrind")
    parser.add_argument("--iterations", type=int, default=100)
    args = parser.parse_args(argv)
    names = [*STREAMS, *POLLS]
    if args.only:
        if args.only in STREAMS:
            stream_us_per_message(args.only, 0, args.iterations)
        else:
            poll_us_per_request(args.only, 0, args.iterations)
        return
    per: dict[str, list[float]] = {n: [] for n in names}
    ratios: dict[str, list[float]] = {n: [] for n in SIBLING}
    for r in range(args.rounds):
        got: dict[str, float] = {}
        for name in names[r % len(names):] + names[: r % len(names)]:  # rotate the order
            if name in STREAMS:
                got[name] = stream_us_per_message(name, args.seconds)
            else:
                got[name] = poll_us_per_request(name, args.seconds)
            per[name].append(got[name])
        for name, sibling in SIBLING.items():
            ratios[name].append(got[sibling] / got[name])
    print(f"kernels: {frames.impl.IMPLEMENTATION}; {args.rounds} rounds of {args.seconds} s")
    for name in names:
        unit = "message" if name in STREAMS else "request"
        line = f"{name:15} {statistics.median(per[name]):7.3f} µs CPU per {unit}"
        if name in SIBLING:
            line += (f"   {statistics.median(ratios[name]):.3f}x {SIBLING[name]}'s rate"
                     " (median of per-round ratios)")
        print(line)


if __name__ == "__main__":
    main()
