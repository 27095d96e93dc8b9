"""What the HTTP transports share: the streaming receiver, the interfaces the
I/O layer provides, and decoding of message bodies."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from fastsockjs.protocol.http import Headers, HttpError, Request
from fastsockjs.protocol.session import Session

if TYPE_CHECKING:
    from fastsockjs.options import Options
    from fastsockjs.protocol.routing import Route


class SinkOwner(Protocol):
    """What writes into a Sink, told by the host when the client went away
    before the end (``abort``) and when a paused sink can take more again."""

    def abort(self) -> None: ...
    def writable_again(self) -> None: ...


class Sink(Protocol):
    """A response body being streamed, provided by the host."""

    @property
    def paused(self) -> bool: ...
    @property
    def buffered(self) -> int: ...
    @property
    def flow(self) -> Any: ...
    def write(self, data: bytes) -> None: ...
    def end(self, last: bytes = b"") -> None: ...
    def attach(self, owner: SinkOwner) -> None: ...


class Exchange(Protocol):
    """One request's way to answer, provided by the I/O layer."""

    def respond(self, status: int, headers: Headers, body: bytes = b"") -> None: ...
    def stream(self, status: int, headers: Headers) -> Sink: ...
    def upgrade(
        self,
        app: Any,
        max_size: int,
        hixie76: bool = False,
        ping: tuple[float, float] | None = None,
    ) -> Any: ...


class Endpoint(Protocol):
    """One Server mounted at one prefix, as the transports see it."""

    options: Options
    prefix: str
    #: permessage-deflate negotiation (protocol.websocket.PerMessageDeflate), or
    #: None when ``websocket_compression`` is off.
    ws_deflate: Any

    def session(self, session_id: str) -> Session | None: ...
    def open_session(self, session_id: str) -> Session: ...
    def new_ws_session(self) -> Session: ...
    def session_headers(self, request: Request, headers: Headers, cors: bool = True) -> None: ...
    def iframe_page(self) -> tuple[bytes, str]: ...
    def raw_host(self) -> Any: ...


Handler = Callable[[Endpoint, Request, "Exchange", "Route"], None]


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """One endpoint a transport module answers: its route ``kind``, handler,
    allowed methods (session endpoints), and the transports that use it (the
    endpoint is enabled while any of them is; none: always)."""

    kind: str
    handler: Handler
    methods: tuple[str, ...] = ()
    transports: tuple[str, ...] = ()
    session: bool = True


class StreamReceiver:
    """A session's receiver writing frames into an HTTP response.

    ``limit`` bytes of frames (framing included, prelude excluded) end the
    response after the frame that reaches it; a polling response uses 1, so
    it carries exactly one frame.
    """

    __slots__ = ("sink", "flow", "limit", "size", "done", "session", "delay_disconnect")

    protocol = ""

    def __init__(self, sink: Sink, limit: int) -> None:
        self.sink = sink
        self.flow = sink.flow
        self.limit = limit
        self.size = 0
        self.done = False
        self.session: Session | None = None
        self.delay_disconnect = True
        sink.attach(self)

    def encode(self, frame: str) -> bytes:
        raise NotImplementedError

    @property
    def paused(self) -> bool:
        return self.sink.paused

    @property
    def buffered(self) -> int:
        return self.sink.buffered

    def writable_again(self) -> None:
        session = self.session
        if session is not None:
            session.wake_drainers()

    def send_frame(self, frame: str) -> None:
        if self.done:
            return
        data = self.encode(frame)
        self.size += len(data)
        if self.size >= self.limit:
            # The last frame and the end of the response leave in one write.
            self.finish(data)
        else:
            self.sink.write(data)

    def send_messages(self, quoted: list[str]) -> None:
        self.send_frame("a[" + ",".join(quoted) + "]")

    def heartbeat(self) -> None:
        self.send_frame("h")

    def finish(self, last: bytes = b"") -> None:
        if self.done:
            return
        self.done = True
        session = self.session
        if session is not None:
            session.detach(self)
        self.sink.end(last)

    def abort(self) -> None:
        """The client went away before the response ended."""
        if self.done:
            return
        self.done = True
        self.delay_disconnect = False
        session = self.session
        if session is not None:
            session.detach(self)


def open_session(endpoint: Endpoint, route: Route) -> Session:
    """The route's session, created if new (before any response is started,
    so that a refusal can still be a clean HTTP error)."""
    assert route.session_id is not None
    return endpoint.open_session(route.session_id)


def decode_body(text: str | None, max_message_size: int | None = None) -> list[Any]:
    """Messages of an ``xhr_send`` / ``jsonp_send`` body: a JSON array, strictly.

    ``max_message_size`` bounds each message (the UTF-8 bytes of its JSON text in
    the body), not the body: sockjs-client sends every message queued meanwhile in
    one body, so legitimate bodies can hold several large messages.
    """
    if not text:
        raise HttpError(500, "Payload expected.")
    try:
        value = _scan(text) if text[0] == "[" and text[-1] == "]" else _decode(text)
    except (ValueError, RecursionError):
        raise HttpError(500, "Broken JSON encoding.") from None
    if type(value) is not list:
        raise HttpError(500, "Payload expected.")
    # A body no larger than the limit cannot hold a larger message (cheap check first).
    if max_message_size is not None and len(text) * 4 > max_message_size and value:
        _check_message_sizes(text, max_message_size)
    return value


_WHITESPACE = re.compile(r"[ \t\n\r]*")


def _skip_ws(text: str, pos: int = 0) -> int:
    """The index of the first non-whitespace character at or after ``pos``."""
    return _WHITESPACE.match(text, pos).end()  # type: ignore[union-attr] # always matches


def _check_message_sizes(text: str, limit: int) -> None:
    """413 if one element of the (valid) JSON array ``text`` is over ``limit`` bytes."""
    if len(text.encode("utf-8")) <= limit:
        return
    scan = _raw_decode
    pos = _skip_ws(text, _skip_ws(text) + 1)  # after "[" (it decoded as an array)
    while True:
        _value, end = scan(text, pos)
        size = end - pos
        if size * 4 > limit and (size > limit or len(text[pos:end].encode("utf-8")) > limit):
            raise HttpError(413, "Payload Too Large")
        pos = _skip_ws(text, end)
        if text[pos] == "]":
            return
        pos = _skip_ws(text, pos + 1)  # after ","


def _no_constant(name: str) -> Any:
    raise ValueError(name)


# One decoder for every body: json.loads with arguments builds a new one per call.
_decoder = json.JSONDecoder(parse_constant=_no_constant)
_decode = _decoder.decode
_raw_decode = _decoder.raw_decode
# (set by JSONDecoder.__init__, not in typeshed's stub)
_scan_once: Callable[[str, int], tuple[Any, int]] = _decoder.scan_once  # type: ignore[attr-defined]


def _scan(text: str) -> Any:
    """``_decode(text)`` for a body that starts with ``[`` and ends with ``]`` (what
    sockjs-client sends): the C scanner alone, without decode()'s two Python
    frames and whitespace matches; anything else goes the whole way, for its error."""
    try:
        value, end = _scan_once(text, 0)
    except StopIteration:
        return _decode(text)
    return value if end == len(text) else _decode(text)


def body_text(endpoint: Endpoint, request: Request) -> str:
    # (The body as a whole is bounded by the listener's max_body; each message by
    # max_message_size, in decode_body.)
    try:
        return request.body.decode("utf-8")
    except UnicodeDecodeError:
        raise HttpError(500, "Broken JSON encoding.") from None


def deliver(endpoint: Endpoint, route: Route, messages: list[Any]) -> None:
    assert route.session_id is not None
    session = endpoint.session(route.session_id)
    if session is None:
        raise HttpError(404, "Session not found.")
    if messages:
        session.receive_many(messages)
