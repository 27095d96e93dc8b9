"""Checks of what an HTTP/1.1 server wrote back, written from RFC 9112 (not from
fastsockjs): the bytes must be a sequence of well-formed responses, each
framed by Content-Length, chunked coding or (with ``Connection: close``) the
end of the connection, optionally followed by WebSocket bytes after a 101.

Used by the atheris targets (``fuzz_http.py``) and by the live fuzz tests
(``tests/fuzz``). Pure Python, no dependencies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: Every status a SockJS server may answer with (426: a WebSocket version other
#: than 13, RFC 6455 4.4).
ALLOWED_STATUSES = frozenset(
    {101, 200, 204, 304, 400, 403, 404, 405, 408, 413, 414, 426, 431, 500, 503}
)

#: The only 500 bodies the protocol defines; anything else is an internal error.
PROTOCOL_500_BODIES = frozenset(
    {
        b"Payload expected.",
        b"Broken JSON encoding.",
        b'"callback" parameter required',
        b'invalid "callback" parameter',
    }
)

_STATUS_LINE = re.compile(rb"HTTP/1\.1 ([1-5][0-9][0-9]) [\x20-\x7e]*")
_HEADER_LINE = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+): ?([\x20-\x7e\x80-\xff\t]*)")


class BadResponse(AssertionError):
    """The server's bytes are not valid HTTP/1.1 responses."""


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    #: "length", "chunked", "close" (body until EOF) or "none" (1xx/204/304)
    framing: str = "none"
    #: the body was cut short by the end of the connection (streaming only)
    truncated: bool = False
    #: bytes after a 101 (the WebSocket stream)
    upgraded_tail: bytes = b""

    def header(self, name: str) -> str | None:
        name = name.lower()
        values = [v for k, v in self.headers if k.lower() == name]
        return ", ".join(values) if values else None

    @property
    def closes(self) -> bool:
        return "close" in (self.header("connection") or "").lower()

    def chunks_text(self) -> str:
        return self.body.decode("utf-8", "replace")


@dataclass
class Parsed:
    responses: list[Response] = field(default_factory=list)
    #: the stream ended inside a response head (server wrote half a head)
    partial_head: bytes = b""


def parse_responses(data: bytes, eof: bool = True) -> Parsed:
    """Split ``data`` (all the server wrote, up to EOF when ``eof``) into responses.

    Raises BadResponse for anything RFC 9112 does not allow a server to send.
    """
    out = Parsed()
    pos = 0
    n = len(data)
    while pos < n:
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            if eof:
                raise BadResponse(f"truncated response head: {data[pos:pos + 200]!r}")
            out.partial_head = data[pos:]
            return out
        lines = data[pos:end].split(b"\r\n")
        m = _STATUS_LINE.fullmatch(lines[0])
        if m is None:
            raise BadResponse(f"bad status line {lines[0][:200]!r}")
        status = int(m.group(1))
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            hm = _HEADER_LINE.fullmatch(line)
            if hm is None:
                raise BadResponse(f"bad header line {line[:200]!r}")
            headers.append((hm.group(1).decode("latin-1"), hm.group(2).decode("latin-1")))
        resp = Response(status, headers)
        pos = end + 4
        out.responses.append(resp)
        cl = [v for k, v in headers if k.lower() == "content-length"]
        te = [v for k, v in headers if k.lower() == "transfer-encoding"]
        if len(cl) > 1:
            raise BadResponse("several Content-Length headers")
        if cl and te:
            raise BadResponse("both Content-Length and Transfer-Encoding")
        if status == 101:
            if cl or te:
                raise BadResponse("101 with a body framing header")
            resp.upgraded_tail = data[pos:]
            return out
        if status < 200 or status in (204, 304):
            if status == 204 and (te or (cl and cl[0] != "0")):
                raise BadResponse("204 with a body")
            resp.framing = "none"
            continue
        if cl:
            if not cl[0].isdigit():
                raise BadResponse(f"bad Content-Length {cl[0]!r}")
            size = int(cl[0])
            resp.framing = "length"
            resp.body = data[pos : pos + size]
            if len(resp.body) < size:
                # A fixed-length answer must be written whole.
                raise BadResponse(f"Content-Length {size} but only {len(resp.body)} bytes")
            pos += size
        elif te:
            if [t.strip().lower() for t in te] != ["chunked"]:
                raise BadResponse(f"unexpected Transfer-Encoding {te!r}")
            resp.framing = "chunked"
            body, pos, complete = _dechunk(data, pos)
            resp.body = body
            resp.truncated = not complete
            if not complete:
                return out
        else:
            resp.framing = "close"
            if not resp.closes:
                raise BadResponse("body delimited by close without Connection: close")
            resp.body = data[pos:]
            pos = n
        if resp.closes and pos < n:
            raise BadResponse(f"bytes after a Connection: close response: {data[pos:pos + 80]!r}")
    return out


def _dechunk(data: bytes, pos: int) -> tuple[bytes, int, bool]:
    parts: list[bytes] = []
    n = len(data)
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return b"".join(parts), n, False
        size_text = data[pos:eol]
        if not re.fullmatch(rb"[0-9a-fA-F]{1,16}", size_text):
            raise BadResponse(f"bad chunk size line {size_text[:40]!r}")
        size = int(size_text, 16)
        start = eol + 2
        if size == 0:
            if data[start : start + 2] == b"\r\n":
                return b"".join(parts), start + 2, True
            if start + 2 > n:
                return b"".join(parts), n, False
            raise BadResponse("trailers or junk after the last chunk")
        if start + size + 2 > n:
            parts.append(data[start:n])
            return b"".join(parts), n, False
        if data[start + size : start + size + 2] != b"\r\n":
            raise BadResponse("chunk data not followed by CRLF")
        parts.append(data[start : start + size])
        pos = start + size + 2


def check_responses(parsed: Parsed) -> None:
    """Protocol-level rules on top of the framing: known statuses, known 500s."""
    for r in parsed.responses:
        if r.status not in ALLOWED_STATUSES:
            raise BadResponse(f"unexpected status {r.status}")
        if r.status == 500 and r.body not in PROTOCOL_500_BODIES:
            raise BadResponse(f"500 with body {r.body[:120]!r} (an internal error?)")
        if r.status in (408, 413, 414, 431) and not r.closes:
            # The rest of the request stream cannot be trusted after these.
            raise BadResponse(f"{r.status} without Connection: close")
