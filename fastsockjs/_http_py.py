"""Request heads in, response heads out, in pure Python: the twin and
specification of the compiled ``fastsockjs._http``.

:func:`parse_request` reads one whole HTTP/1.x request (head and, with a
``Content-Length``, body) out of a buffer in one call: no Python call per
header, as a callback parser makes. It accepts only a plain subset of HTTP, the
requests SockJS clients send, and answers :data:`FALLBACK` for everything else
(a ``Transfer-Encoding``, an ``Upgrade``, obs-fold, an unusual method or
version, any limit reached, any byte it is not sure of). A fallback is not an
error: the connection hands its bytes to the full parser (httptools), which
then reads, or refuses, the request exactly as it always did. Whatever this
accepts, httptools parses to the same method, target, version, headers,
keep-alive and body (tests/unit/test_http_kernel.py checks it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from http import HTTPStatus

__all__ = ["FALLBACK", "IMPLEMENTATION", "NEED_MORE", "head", "parse_request"]

IMPLEMENTATION = "python"

#: The buffer holds no whole head yet.
NEED_MORE = 0
#: Not in the subset this reads: use the full parser from ``start`` on.
FALLBACK = -1

_METHODS = {
    b"GET": "GET",
    b"POST": "POST",
    b"OPTIONS": "OPTIONS",
    b"HEAD": "HEAD",
    b"PUT": "PUT",
    b"DELETE": "DELETE",
    b"PATCH": "PATCH",
}
_VERSIONS = {b"HTTP/1.1": "1.1", b"HTTP/1.0": "1.0"}
# An origin-form target in what httptools accepts: printable ASCII after the "/".
_TARGET = re.compile(rb"/[\x21-\x7e]*")
# RFC 9110 5.6.2 token.
_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Field value: visible ASCII, space, tab and obs-text; no other control byte.
_VALUE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
_MAX_DIGITS = 16
_CTL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BARE_LF = re.compile(rb"(?<!\r)\n")
_BARE_CR = re.compile(rb"\r(?!\n|\Z)")
_MAX_NAME = 256  # longer header names go to the full parser


def _plausible(buf: bytes, start: int) -> bool:
    """``buf[start:]`` (no blank line yet) may still become a plain request."""
    part = buf[start:]
    if _CTL.search(part) or _BARE_LF.search(part) or _BARE_CR.search(part):
        return False
    end = len(part)
    for stop_byte in b" \r\n":
        i = part.find(bytes([stop_byte]))
        if 0 <= i < end:
            end = i
    token = part[:end]
    if end < len(part):  # the method is complete
        return part[end] == 32 and token in _METHODS
    return any(m.startswith(token) for m in _METHODS)


def parse_request(
    buf: bytes, start: int, max_target: int, max_headers: int, max_body: int
) -> tuple[int, str, str, str, dict[str, str], int, bool, bytes] | int:
    """The request at ``buf[start:]``.

    Returns :data:`NEED_MORE` while its head is incomplete but can still become
    a plain request, :data:`FALLBACK` when it is (or cannot but be) outside the
    subset, else ``(end, method, target, version,
    headers, host_lines, keep_alive, body)``: ``end`` is where the next request
    starts. When ``end > len(buf)`` the body has not all arrived: ``body`` is
    then empty, and the caller parses again once it has ``end`` bytes.

    ``headers`` has lower-case names, values as sent (leading whitespace
    dropped), and a repeated header folded into one with ", ". Limits, as the
    full parser's: a target over ``max_target`` bytes, headers over
    ``max_headers`` (each counted as name + value + 4) or a ``Content-Length``
    over ``max_body`` are a fallback, so that the full parser gives the error.
    """
    stop = buf.find(b"\r\n\r\n", start)
    if stop < 0:
        # An unfinished head waits only while it can still become a plain request:
        # what httptools would refuse at once (a bare LF, a control byte, no known
        # method) falls back now, so the answer does not wait for a head's end that
        # may never come.
        return NEED_MORE if _plausible(buf, start) else FALLBACK
    lines = buf[start:stop].split(b"\r\n")
    request_line = lines[0]
    sp1 = request_line.find(b" ")
    method = _METHODS.get(request_line[:sp1]) if sp1 > 0 else None
    if method is None:
        return FALLBACK
    sp2 = request_line.find(b" ", sp1 + 1)
    if sp2 < 0:
        return FALLBACK
    target = request_line[sp1 + 1 : sp2]
    version = _VERSIONS.get(request_line[sp2 + 1 :])
    if version is None or not _TARGET.fullmatch(target) or len(target) > max_target:
        return FALLBACK
    headers: dict[str, str] = {}
    host_lines = 0
    size = 0
    length = -1
    connection = ""
    for line in lines[1:]:
        colon = line.find(b":")
        if colon <= 0:
            return FALLBACK
        raw_name = line[:colon]
        value = line[colon + 1 :].lstrip(b" \t")
        if len(raw_name) > _MAX_NAME or b"\r" in line or b"\n" in line:
            return FALLBACK
        if not _NAME.fullmatch(raw_name):
            return FALLBACK
        if not _VALUE.fullmatch(value):
            return FALLBACK
        size += len(raw_name) + len(value) + 4
        if size > max_headers:
            return FALLBACK
        name = raw_name.lower().decode("latin-1")
        text = value.decode("latin-1")
        if name == "host":
            host_lines += 1
        elif name == "content-length":
            if length >= 0 or not value.isdigit() or len(value) > _MAX_DIGITS:
                return FALLBACK
            length = int(value)
            if length > max_body:
                return FALLBACK
        elif name == "connection":
            if connection:
                return FALLBACK
            connection = text.lower()
            if connection not in ("close", "keep-alive"):
                return FALLBACK
        elif name in ("transfer-encoding", "upgrade"):
            return FALLBACK
        old = headers.get(name)
        headers[name] = text if old is None else old + ", " + text
    if version == "1.1":
        keep_alive = connection != "close"
    else:
        keep_alive = connection == "keep-alive"
    end = stop + 4 + (length if length > 0 else 0)
    body = buf[stop + 4 : end] if end > stop + 4 and end <= len(buf) else b""
    return end, method, target.decode("latin-1"), version, headers, host_lines, keep_alive, body


_STATUS_LINES = {s.value: "HTTP/1.1 %d %s\r\n" % (s.value, s.phrase) for s in HTTPStatus}


def head(
    status: int,
    headers: Iterable[tuple[str, str]],
    *,
    version: str = "1.1",
    content_length: int | None = None,
    chunked: bool = False,
    keep_alive: bool = True,
) -> bytes:
    """Status line and headers (latin-1), framing decided here and nowhere else:
    ``Content-Length`` when given, else chunked when asked, and the
    ``Connection`` header that keep-alive needs in ``version``."""
    parts = [_STATUS_LINES.get(status) or "HTTP/1.1 %d Unknown\r\n" % status]
    for k, v in headers:
        parts.append(k + ": " + v + "\r\n")
    if content_length is not None:
        parts.append("Content-Length: %d\r\n" % content_length)
    elif chunked:
        parts.append("Transfer-Encoding: chunked\r\n")
    if not keep_alive:
        parts.append("Connection: close\r\n")
    elif version == "1.0":
        parts.append("Connection: keep-alive\r\n")
    parts.append("\r\n")
    return "".join(parts).encode("latin-1")
