"""HTTP pieces shared by every endpoint: the request, response heads, and the
header policies of the SockJS protocol (CORS, caching, JSESSIONID)."""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Iterable
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qs

from fastsockjs import heads

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
        "error",
        "ws_deflate",
        "auth",
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
        #: Set when the request was refused while it was read (413, 400): it is
        #: answered with this, in its turn, and never dispatched.
        self.error: HttpError | None = None
        # The permessage-deflate parameters the websocket transport agreed to
        # (protocol.websocket.DeflateParams): the 101 answer and the codec
        # the I/O layer builds for this upgrade take them from here.
        self.ws_deflate: Any = None
        #: What the Server's ``authorize`` hook returned for this request when
        #: it was a dict: the new Connection's ``state`` starts as a copy of it.
        self.auth: dict[str, Any] | None = None
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


#: A (host, port) pair; either may be unknown.
Address = tuple[str | None, int | None]


class TrustedProxies:
    """The proxies whose ``X-Forwarded-For`` / ``Forwarded`` header names the
    client (uvicorn's ``--forwarded-allow-ips``): addresses, networks
    (``10.0.0.0/8``) or ``*`` for any peer.

    The header is believed only from these peers, since anyone else can send
    it. It is read right to left, skipping the trusted proxies' own entries,
    so what a client wrote into the header itself before the first trusted
    proxy appended to it is never taken.
    """

    __slots__ = ("any", "networks")

    def __init__(self, any_peer: bool, networks: tuple[Any, ...]) -> None:
        self.any = any_peer
        self.networks = networks

    @classmethod
    def parse(cls, spec: str | Iterable[str] | None) -> TrustedProxies | None:
        """From ``"127.0.0.1, 10.0.0.0/8"`` or a list of such items; None for none."""
        if spec is None:
            return None
        items = spec.split(",") if isinstance(spec, str) else list(spec)
        names = [item.strip() for item in items if item.strip()]
        if not names:
            return None
        networks = []
        for name in names:
            if name == "*":
                continue
            try:
                networks.append(ipaddress.ip_network(name, strict=False))
            except ValueError:
                raise ValueError(
                    f"not an IP address, network or '*' in forwarded_allow_ips: {name!r}"
                ) from None
        return cls("*" in names, tuple(networks))

    def __contains__(self, host: object) -> bool:
        if self.any:
            return True
        if not isinstance(host, str):
            return False
        try:
            address = ipaddress.ip_address(host.partition("%")[0])
        except ValueError:
            return False
        mapped = getattr(address, "ipv4_mapped", None)
        if mapped is not None:
            address = mapped
        return any(address in network for network in self.networks)

    def client(self, peer: Address, headers: dict[str, str]) -> Address:
        """The client's address for a request from ``peer`` with ``headers``:
        the rightmost entry not itself a trusted proxy (the leftmost when all
        are); ``peer`` when it is not trusted or the header is absent."""
        if peer[0] not in self:
            return peer
        forwarded_for = headers.get("x-forwarded-for")
        if forwarded_for is not None:
            hops: list[Address] = [(h.strip(), None) for h in forwarded_for.split(",")]
        else:
            forwarded = headers.get("forwarded")
            if forwarded is None:
                return peer
            hops = forwarded_hops(forwarded)
        hops = [hop for hop in hops if hop[0]]
        if not hops:
            return peer
        for hop in reversed(hops):
            if hop[0] not in self:
                return hop
        return hops[0]


def forwarded_hops(value: str) -> list[Address]:
    """The ``for=`` addresses of an RFC 7239 ``Forwarded`` header, in order
    (host, port); an element without ``for=`` gives ``("", None)``."""
    hops: list[Address] = []
    for element in value.split(","):
        host, port = "", None
        for pair in element.split(";"):
            name, _, raw = pair.partition("=")
            if name.strip().lower() != "for":
                continue
            text = raw.strip().strip('"')
            if text.startswith("["):  # [IPv6]:port
                addr, _, rest = text[1:].partition("]")
                host = addr
                rest = rest[1:] if rest.startswith(":") else ""
            elif text.count(":") == 1:
                host, _, rest = text.partition(":")
            else:
                host, rest = text, ""
            port = int(rest) if rest.isdigit() else None
        hops.append((host, port))
    return hops


# RFC 9110 4.2.3 / RFC 3986 3.2.2: reg-name or IP literal, then an optional port.
_HOST_RE = re.compile(r"(?:[A-Za-z0-9\-._~%!$&'()*+,;=]*|\[[0-9A-Fa-f:.]+\])(?::[0-9]*)?")


def request_target(
    target: str, headers: dict[str, str], version: str, host_lines: int
) -> tuple[str, HttpError | None]:
    """Check the request target and Host (RFC 9112 3.2); returns the origin-form
    target to route on, and the 400 to answer with if the request is invalid.

    An absolute-form target (``GET http://host/path``, as sent to proxies) is
    accepted, and its authority replaces the Host header (RFC 9112 3.2.2).
    HTTP/1.1 needs exactly one valid Host; more than one is refused in any version.
    """
    if target[:1] != "/" and target != "*":
        scheme, sep, rest = target.partition("://")
        if not sep or scheme.lower() not in ("http", "https"):
            return target, HttpError(400, "Bad Request: invalid request target")
        cut = len(rest)
        for c in "/?#":
            i = rest.find(c)
            if i != -1 and i < cut:
                cut = i
        authority, target = rest[:cut], rest[cut:]
        if target[:1] != "/":
            target = "/" + target
        if "@" in authority or not _HOST_RE.fullmatch(authority):
            return target, HttpError(400, "Bad Request: invalid request target")
        headers["host"] = authority
        host_lines = 1
    if host_lines > 1:
        return target, HttpError(400, "Bad Request: more than one Host header")
    host = headers.get("host")
    if host is None:
        if version == "1.1":
            return target, HttpError(400, "Bad Request: missing Host header")
    elif not _HOST_RE.fullmatch(host):
        return target, HttpError(400, "Bad Request: invalid Host header")
    return target, None


def fold_header(headers: dict[str, str], name: str, value: str) -> None:
    """Add a header (``name`` lower-case) to ``headers``: a repeated one is
    joined to the earlier with ", ", as RFC 9110 5.3 allows for lists. Both
    hosts fold this way (and so does the compiled request parser)."""
    old = headers.get(name)
    headers[name] = value if old is None else old + ", " + value


#: The response head (status line, headers, framing): the compiled kernel when built.
head = heads.head


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


def error_response(err: HttpError) -> tuple[int, Headers, bytes]:
    """Status, headers and body of the answer to ``err`` (both hosts send this)."""
    if err.status == 405:
        # The protocol wants a bare 405: no body, no content type.
        return 405, list(err.headers), b""
    return err.status, [("Content-Type", TEXT_PLAIN), *err.headers], err.message.encode("utf-8")


ACCESS_FORMAT = "%s - %s %s HTTP/%s %d %.1fms%s"


def log_access(logger: Any, request: Request, status: int, ms: float, note: str = "") -> None:
    """One access-log line (both hosts write the same); callers check the level."""
    logger.info(ACCESS_FORMAT, request.remote[0], request.method, request.url, request.version,
                status, ms, note)


class HttpError(Exception):
    """An error answer: status and a short plain-text body."""

    def __init__(self, status: int, message: str = "", headers: Headers | None = None) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message
        self.headers = headers or []
