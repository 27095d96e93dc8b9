"""HTTP pieces shared by every endpoint: the request, response heads, and the
header policies of the SockJS protocol (CORS, caching, JSESSIONID)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from email.utils import formatdate
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

Headers = list[tuple[str, str]]

ONE_YEAR = 365 * 24 * 60 * 60
NO_CACHE = "no-store, no-cache, no-transform, must-revalidate, max-age=0"
TEXT_PLAIN = "text/plain; charset=UTF-8"
APPLICATION_JS = "application/javascript; charset=UTF-8"
TEXT_HTML = "text/html; charset=UTF-8"
APPLICATION_JSON = "application/json; charset=UTF-8"

# A JSESSIONID value we are willing to echo into a header.
_JSESSIONID_RE = re.compile(r"[A-Za-z0-9!#$%&'()*+\-./:<=>?@\[\]^_`{|}~]{1,200}")


class Request:
    """One parsed HTTP request (body already read when the endpoint needs it)."""

    __slots__ = (
        "method",
        "url",
        "path",
        "query",
        "headers",
        "version",
        "keep_alive",
        "body",
        "remote",
        "upgrade",
        "ws_deflate",
        "_params",
    )

    def __init__(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        version: str = "1.1",
        keep_alive: bool = True,
        body: bytes = b"",
        remote: tuple[str | None, int | None] = (None, None),
        upgrade: bool = False,
    ) -> None:
        self.method = method
        self.url = url
        path, _, query = url.partition("?")
        self.path = path
        self.query = query
        self.headers = headers
        self.version = version
        self.keep_alive = keep_alive
        self.body = body
        self.remote = remote
        self.upgrade = upgrade
        # The permessage-deflate parameters the websocket transport agreed to
        # (protocol.websocket.DeflateParams): the 101 answer and the codec
        # the I/O layer builds for this upgrade take them from here.
        self.ws_deflate: Any = None
        self._params: dict[str, list[str]] | None = None

    def param(self, name: str) -> str | None:
        """First value of a query parameter, percent-decoded."""
        if self._params is None:
            self._params = parse_qs(self.query, keep_blank_values=True)
        values = self._params.get(name)
        return values[0] if values else None

    def cookies(self) -> dict[str, str]:
        cookies: dict[str, str] = {}
        for part in self.headers.get("cookie", "").split(";"):
            name, _, value = part.partition("=")
            name = name.strip()
            if name:
                cookies[name] = value.strip()
        return cookies


def _date_cache() -> Any:
    last = [0, ""]

    def http_date() -> str:
        now = int(time.time())
        if now != last[0]:
            last[0] = now
            last[1] = formatdate(now, usegmt=True)
        return str(last[1])

    return http_date


http_date = _date_cache()


def head(
    status: int,
    headers: Iterable[tuple[str, str]],
    *,
    version: str = "1.1",
    content_length: int | None = None,
    chunked: bool = False,
    keep_alive: bool = True,
) -> bytes:
    """Status line and headers, framing decided here and nowhere else."""
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


_STATUS_LINES = {s.value: "HTTP/1.1 %d %s\r\n" % (s.value, s.phrase) for s in HTTPStatus}


def cors_headers(request: Request, out: Headers, options: Any) -> None:
    """sockjs-node's CORS policy: echo the Origin (``null`` too) with credentials.

    With ``allowed_origins`` set, an Origin not in it gets no CORS headers at
    all, so the browser keeps the answer from the page.
    """
    if options.disable_cors:
        return
    origin = request.headers.get("origin")
    if origin and not options.origin_allowed(origin):
        return
    if origin:
        out.append(("Access-Control-Allow-Origin", origin))
        out.append(("Access-Control-Allow-Credentials", "true"))
    else:
        out.append(("Access-Control-Allow-Origin", "*"))
    out.append(("Vary", "Origin"))
    asked = request.headers.get("access-control-request-headers")
    if asked:
        out.append(("Access-Control-Allow-Headers", asked))


def cache_for_a_year(out: Headers) -> None:
    out.append(("Cache-Control", f"public, max-age={ONE_YEAR}"))
    out.append(("Expires", formatdate(time.time() + ONE_YEAR, usegmt=True)))


def no_cache(out: Headers) -> None:
    out.append(("Cache-Control", NO_CACHE))


def jsessionid_header(request: Request, jsessionid: Any, out: Headers) -> None:
    """Set the JSESSIONID cookie some load balancers need for stickiness."""
    if not jsessionid:
        return
    if callable(jsessionid):
        value = jsessionid(request.cookies())
        if value:
            value = str(value)
            # What the hook returns may echo the client's cookie: no header injection.
            if any(c in value for c in "\r\n\0"):
                raise HttpError(500, "Invalid JSESSIONID cookie.")
            out.append(("Set-Cookie", value))
        return
    jsid = request.cookies().get("JSESSIONID", "")
    if not _JSESSIONID_RE.fullmatch(jsid):
        jsid = "dummy"
    out.append(("Set-Cookie", f"JSESSIONID={jsid}; path=/"))


class HttpError(Exception):
    """An error answer: status and a short plain-text body."""

    def __init__(self, status: int, message: str = "", headers: Headers | None = None) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message
        self.headers = headers or []
