"""The live fuzz server (the test-server services on both loops) with healthy
sessions running next to the fuzzing, and the checks every fuzz test ends with.

* ``fz`` is module-scoped: one ServerThread per loop kind, configured like
  ``fastsockjs testserver`` except for a short ``disconnect_delay`` (so leaked
  sessions show quickly) and 64 KiB message / body limits (so 413 and 1009
  are cheap to reach).
* ``fz.healthy`` is a SockJS WebSocket session on ``/echo`` and an xhr-polling
  session (a poll always held, as sockjs-client does) on ``/healthy``; after every
  example ``fz.healthy.roundtrip()`` sends each a fresh message and waits for
  exactly that echo: nothing lost, nothing foreign.
* ``fz.check_clean()`` (end of each test) waits, bounded, until the live
  sessions are back to the healthy two, the open connections to the healthy
  two, the process' file descriptors to the baseline, and asserts that nothing
  was logged at ERROR by fastsockjs or asyncio.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
import time
import uuid
from pathlib import Path

from fastsockjs import Listener
from fastsockjs.apps import echo
from fastsockjs.cli import testserver
from fastsockjs.options import make_options
from fastsockjs.server import Server
from tests.helpers import TIMEOUT, RawHttp, RawWebSocket, ServerThread, request

# The fuzz/ directory (atheris targets, the RFC 6455 model, the response checker).
FUZZ_DIR = Path(__file__).resolve().parents[2] / "fuzz"
if str(FUZZ_DIR) not in sys.path:
    sys.path.insert(0, str(FUZZ_DIR))

DISCONNECT_DELAY = 0.5
MAX_MESSAGE = 64 * 1024
#: Every server-side timer is kept short (heartbeats 1 s, request and keep-alive
#: timeouts 3 s, no WebSocket pings), so that the leak checks settle in seconds
#: (the deadline heap used to fire deadlines late by up to the longest timer:
#: test_found_bugs.py::test_session_expires_after_disconnect_delay).
LONGEST_TIMER = 3.0
LISTENER_OPTIONS = dict(max_body=MAX_MESSAGE, request_timeout=LONGEST_TIMER,
                        keepalive_timeout=LONGEST_TIMER)


HEALTHY_PREFIX = "/healthy"


def fuzz_servers() -> list[Server]:
    """``fastsockjs testserver``'s services, with the short delays above, plus one
    more echo service at ``/healthy`` with the default 5 s disconnect_delay for
    the healthy xhr-polling session: the fuzzing shares this process, and a GC
    pause of the test thread (up to 1 s measured in long runs) stops the server's
    loop too; when it resumes, expired timers run before the socket is read, so
    a 0.5 s disconnect_delay would end a polling session whose next poll was
    already waiting in the socket."""
    servers = testserver("http://127.0.0.1/static/sockjs.min.js")
    for server in servers:
        server.options = make_options(
            server.options,
            disconnect_delay=DISCONNECT_DELAY,
            heartbeat_delay=1.0,
            ws_ping_interval=None,
            max_message_size=MAX_MESSAGE,
        )
    servers.append(echo(prefix=HEALTHY_PREFIX, heartbeat_delay=1.0, ws_ping_interval=None,
                        max_message_size=MAX_MESSAGE))  # (the largest one sets max_body)
    return servers


def examples(n: int) -> int:
    """``n`` hypothesis examples, times ``FASTSOCKJS_FUZZ_SCALE`` (default 1) for deeper local runs."""
    return max(1, int(n * float(os.environ.get("FASTSOCKJS_FUZZ_SCALE", "1"))))


def scaled_timeout(seconds: float = 120.0) -> float:
    """A pytest-timeout for a fuzz test, scaled like its number of examples."""
    return seconds * max(1.0, float(os.environ.get("FASTSOCKJS_FUZZ_SCALE", "1")))


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


class ErrorLog(logging.Handler):
    """Collects ERROR records of fastsockjs and asyncio (internal errors, crashes)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []
        self.records_lock = threading.Lock()  # (not "lock": Handler.lock is its own)

    def emit(self, record: logging.LogRecord) -> None:
        with self.records_lock:
            self.records.append(record)

    def take(self) -> list[str]:
        with self.records_lock:
            out = [f"{r.name}: {r.getMessage()} {r.exc_info[1]!r}" if r.exc_info else
                   f"{r.name}: {r.getMessage()}" for r in self.records]
            self.records.clear()
        return out


class Healthy:
    """A WebSocket session and an xhr-polling session that must never notice the fuzzing."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.n = 0
        self.problems: list[str] = []
        self.ws = RawWebSocket(port, f"/echo/000/{uuid.uuid4()}/websocket")
        assert self.ws.status == 101
        first = self.ws.recv_frame()
        assert first == (1, b"o"), first
        self.ws_sent: list[str] = []
        self.ws_got: list[str] = []
        # xhr-polling: one keep-alive connection, a poll always held.
        self.url = f"{HEALTHY_PREFIX}/000/{uuid.uuid4()}"
        self.poll = RawHttp(port)
        self.poll.sock.settimeout(60)
        self.poll_sent: list[str] = []
        self.poll_got: list[str] = []
        self.cond = threading.Condition()
        self.stopping = False
        self.last_poll_end = self.gap = self.took = 0.0
        assert self._poll_once() == ["o"]
        self.thread = threading.Thread(target=self._poller, daemon=True)
        self.thread.start()

    def _poll_once(self) -> list[str]:
        sent = time.monotonic()
        self.gap = sent - self.last_poll_end  # how long the session had no receiver
        status, _headers = self.poll.request("POST", self.url + "/xhr")
        if status != 200:
            raise AssertionError(f"healthy poll answered {status}")
        frames: list[str] = []
        while True:
            chunk = self.poll.read_chunk()
            if not chunk:
                break
            frames.extend(line for line in chunk.decode("utf-8").split("\n") if line)
        self.last_poll_end = time.monotonic()
        self.took = self.last_poll_end - sent
        return frames

    def _poller(self) -> None:
        try:
            while not self.stopping:
                for frame in self._poll_once():
                    with self.cond:
                        if frame == "h":
                            continue
                        if frame.startswith("a"):
                            self.poll_got.extend(json.loads(frame[1:]))
                        else:
                            self.problems.append(
                                f"xhr-polling got {frame[:200]!r} (the poll before ended "
                                f"{self.gap:.3f} s before this one was sent, which took "
                                f"{self.took:.3f} s)")
                        self.cond.notify_all()
        except Exception as exc:
            if not self.stopping:
                with self.cond:
                    self.problems.append(f"poller died: {exc!r}")
                    self.cond.notify_all()

    def roundtrip(self) -> None:
        """One fresh message through each healthy session; exactly it must come back."""
        self.n += 1
        msg = f"ws-{self.n}-\u00e9\u2028"
        self.ws_sent.append(msg)
        self.ws.send_text(json.dumps([msg]))
        while True:
            frame = self.ws.recv_frame()
            if frame is None:
                self.problems.append("healthy WebSocket closed")
                break
            op, payload = frame
            if op == 1 and payload == b"h":
                continue
            if op == 1 and payload[:1] == b"a":
                self.ws_got.extend(json.loads(payload[1:]))
                break
            self.problems.append(f"healthy WebSocket got {frame!r}")
            break
        pmsg = f"poll-{self.n}"
        self.poll_sent.append(pmsg)
        r = request(self.port, "POST", self.url + "/xhr_send", json.dumps([pmsg]))
        if r.status != 204:
            self.problems.append(f"healthy xhr_send answered {r.status} {r.body!r}")
        deadline = time.monotonic() + TIMEOUT
        with self.cond:
            while len(self.poll_got) < len(self.poll_sent) and not self.problems:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.problems.append(f"healthy poll did not get {pmsg!r}")
                    break
                self.cond.wait(left)
        self.verify()

    def verify(self) -> None:
        assert not self.problems, self.problems
        assert self.ws_got == self.ws_sent, (self.ws_got[-3:], self.ws_sent[-3:])
        assert self.poll_got == self.poll_sent, (self.poll_got[-3:], self.poll_sent[-3:])

    def close(self) -> None:
        self.stopping = True
        try:
            request(self.port, "POST", self.url + "/xhr_send", '["bye"]')
        except OSError:
            pass
        self.thread.join(TIMEOUT)
        self.poll.close()
        self.ws.close()


class FuzzServer:
    def __init__(self, loop_kind: str) -> None:
        self.loop_kind = loop_kind
        self.errors = ErrorLog()
        for name in ("fastsockjs", "asyncio"):
            logging.getLogger(name).addHandler(self.errors)
        self.st = ServerThread(fuzz_servers, loop_kind, **LISTENER_OPTIONS).start()
        self.port = self.st.port
        self.healthy = Healthy(self.port)
        self.healthy.roundtrip()
        time.sleep(0.05)
        self.healthy_sessions = 2
        self.healthy_connections = 2
        self.settle()
        self.base_fds = fd_count()

    # -- server facts (read on the server's loop) ---------------------------------
    @property
    def listener(self) -> Listener:
        assert self.st.listener is not None
        return self.st.listener

    def live_sessions(self) -> int:
        return int(self.st.call(lambda: sum(int(e.live_sessions) for e in self.listener.endpoints)))

    def connections(self) -> int:
        return int(self.st.call(lambda: len(self.listener.connections)))

    def settle(self, timeout: float = DISCONNECT_DELAY + LONGEST_TIMER + 3.0) -> tuple[int, int, int]:
        """Wait until sessions and connections are back to the healthy ones."""
        deadline = time.monotonic() + timeout
        while True:
            state = (self.live_sessions(), self.connections(), fd_count())
            base = getattr(self, "base_fds", state[2])
            if (state[0] <= self.healthy_sessions and state[1] <= self.healthy_connections
                    and state[2] <= base):
                return state
            if time.monotonic() > deadline:
                return state
            time.sleep(0.05)

    def after_example(self) -> None:
        """Cheap per-example checks: no internal error, healthy sessions intact."""
        errors = self.errors.take()
        assert not errors, errors
        self.healthy.roundtrip()

    def describe_sessions(self) -> list[str]:
        """The live sessions other than the healthy ones (for failure messages)."""

        loop = self.st.loop
        assert loop is not None

        def collect() -> list[str]:
            out = []
            for e in self.listener.endpoints:
                for s in e.all_sessions():
                    sid = getattr(s, "session_id", None)
                    if sid is not None and sid in self.healthy.url:
                        continue
                    recv = getattr(s, "recv", None)
                    out.append(
                        f"{e.prefix} {type(s).__name__} id={sid} state={int(s.state)} "
                        f"recv={type(recv).__name__ if recv else None} "
                        f"deadline_kind={getattr(s, '_deadline_kind', '?')} "
                        f"in={getattr(s, '_deadline', 0) - loop.time():.1f}s"
                    )
            return out

        return list(self.st.call(collect))

    def check_clean(self) -> dict[str, int]:
        sessions, conns, fds = self.settle()
        errors = self.errors.take()
        self.healthy.roundtrip()
        facts = {"sessions": sessions, "connections": conns, "fds": fds, "base_fds": self.base_fds}
        assert not errors, errors
        assert sessions == self.healthy_sessions, f"leaked sessions: {facts} {self.describe_sessions()}"
        assert conns == self.healthy_connections, f"leaked connections: {facts}"
        assert fds <= self.base_fds, f"leaked file descriptors: {facts}"
        return facts

    def close(self) -> None:
        self.healthy.close()
        self.st.stop()
        for name in ("fastsockjs", "asyncio"):
            logging.getLogger(name).removeHandler(self.errors)


def exchange(port: int, data: bytes, timeout: float = TIMEOUT) -> bytes:
    """Send ``data``, half-close, and read everything until the server closes.

    A server that neither answers nor closes after the client's EOF is hung:
    the read times out and the example fails.
    """
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server already answered and closed (e.g. 431 mid-send)
        out = bytearray()
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return bytes(out)
    finally:
        s.close()

