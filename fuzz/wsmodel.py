"""A reference model of what a SockJS server must answer to client WebSocket bytes.

Written from RFC 6455 (sections 5 and 7) and the SockJS protocol, independently
of ``fastsockjs.protocol.websocket``: it is the oracle the fuzz tests and the
atheris target compare the server with.

Where the RFC leaves a choice (which of several violations in one frame header
is reported, whether a violation visible in an incomplete header is reported
before the rest arrives, 1002 or 1007 for a close reason that is not UTF-8,
whether 1012-1014 are acceptable close codes) the model accepts every choice.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
KNOWN_OPCODES = frozenset((0, 1, 2, 8, 9, 10))
#: Close codes a peer may send (RFC 6455 7.4.1 and 7.4.2).
VALID_CLOSE = frozenset((1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011))
#: Registered after RFC 6455 (IANA): a server may accept or refuse them.
LATER_CLOSE = frozenset((1012, 1013, 1014))


def close_code_valid(code: int) -> bool | None:
    """True / False, or None when either answer is acceptable."""
    if code in VALID_CLOSE or 3000 <= code <= 4999:
        return True
    if code in LATER_CLOSE:
        return None
    return False


# -- events of the RFC 6455 layer -------------------------------------------------------

@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Binary:
    data: bytes


@dataclass(frozen=True)
class Ping:
    payload: bytes


@dataclass(frozen=True)
class Pong:
    payload: bytes


@dataclass(frozen=True)
class Close:
    code: int | None  # None: empty close payload
    #: when the code is one of LATER_CLOSE: the server may refuse it with 1002 instead
    may_fail: bool = False


@dataclass(frozen=True)
class Fail:
    codes: frozenset[int]  # acceptable close codes for the violation


@dataclass(frozen=True)
class Incomplete:
    #: the data ended inside a frame; the server may already fail with one of these
    may_fail: frozenset[int] = frozenset()


@dataclass(frozen=True)
class End:
    """The data ended exactly at a frame boundary."""


Event = Text | Binary | Ping | Pong | Close | Fail | Incomplete | End


def rfc6455_events(data: bytes, max_size: int) -> Iterator[Event]:
    """What a conforming server's frame layer makes of ``data`` (client to server).

    The last event is always Close, Fail, Incomplete or End.
    """
    pos = 0
    n = len(data)
    frag_op = 0
    frag: list[bytes] = []
    frag_size = 0
    utf8: Any = None
    while True:
        if pos == n:
            if frag_op:
                yield Incomplete()
            else:
                yield End()
            return
        if n - pos < 2:
            yield Incomplete()
            return
        b0, b1 = data[pos], data[pos + 1]
        fin = bool(b0 & 0x80)
        opcode = b0 & 0x0F
        masked = bool(b1 & 0x80)
        early: set[int] = set()
        if b0 & 0x70:
            early.add(1002)  # no extension negotiated: RSV must be 0
        if opcode not in KNOWN_OPCODES:
            early.add(1002)
        if not masked:
            early.add(1002)  # 5.1: a server MUST close on an unmasked client frame
        if opcode >= 8 and not fin:
            early.add(1002)  # 5.5: control frames MUST NOT be fragmented
        length = b1 & 0x7F
        head = 2
        if length == 126:
            if n - pos < 4:
                yield Incomplete(frozenset(early))
                return
            length = int.from_bytes(data[pos + 2 : pos + 4], "big")
            head = 4
        elif length == 127:
            if n - pos < 10:
                yield Incomplete(frozenset(early))
                return
            length = int.from_bytes(data[pos + 2 : pos + 10], "big")
            head = 10
            if length >> 63:
                early.add(1002)  # 5.2: the most significant bit MUST be 0
        if opcode >= 8 and length > 125:
            early.add(1002)  # 5.5: control payloads are at most 125 bytes
        if opcode < 8 and length > max_size:
            early.add(1009)  # our limit; the header alone shows it
        if early:
            yield Fail(frozenset(early))
            return
        # Violations only the message layer sees (the header alone shows them).
        late: set[int] = set()
        if opcode == OP_CONT and not frag_op:
            late.add(1002)
        if opcode in (OP_TEXT, OP_BINARY) and frag_op:
            late.add(1002)
        if opcode == OP_CONT and frag_op and frag_size + length > max_size:
            late.add(1009)
        if masked:
            head += 4
        if n - pos < head + length:
            yield Incomplete(frozenset(late))
            return
        key = data[pos + head - 4 : pos + head]
        raw = data[pos + head : pos + head + length]
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(raw))
        pos += head + length
        if late:
            yield Fail(frozenset(late))
            return
        if opcode in (OP_TEXT, OP_BINARY):
            if fin:
                if opcode == OP_TEXT:
                    try:
                        yield Text(payload.decode("utf-8"))
                    except UnicodeDecodeError:
                        yield Fail(frozenset({1007}))
                        return
                else:
                    yield Binary(payload)
                continue
            frag_op, frag, frag_size = opcode, [payload], len(payload)
            if opcode == OP_TEXT:
                utf8 = codecs.getincrementaldecoder("utf-8")()
                try:
                    utf8.decode(payload, False)
                except UnicodeDecodeError:
                    yield Fail(frozenset({1007}))  # 8.1: fail fast is allowed
                    return
            continue
        if opcode == OP_CONT:
            frag.append(payload)
            frag_size += len(payload)
            if frag_op == OP_TEXT:
                try:
                    utf8.decode(payload, fin)
                except UnicodeDecodeError:
                    yield Fail(frozenset({1007}))
                    return
            if fin:
                whole = b"".join(frag)
                op, frag_op, frag, frag_size = frag_op, 0, [], 0
                yield Text(whole.decode("utf-8")) if op == OP_TEXT else Binary(whole)
            continue
        if opcode == OP_PING:
            yield Ping(payload)
            continue
        if opcode == OP_PONG:
            yield Pong(payload)
            continue
        # close
        if not payload:
            yield Close(None)
            return
        if len(payload) == 1:
            yield Fail(frozenset({1002}))
            return
        code = int.from_bytes(payload[:2], "big")
        valid = close_code_valid(code)
        if valid is False:
            yield Fail(frozenset({1002}))
            return
        try:
            payload[2:].decode("utf-8")
        except UnicodeDecodeError:
            yield Fail(frozenset({1002, 1007}))
            return
        yield Close(code, may_fail=valid is None)
        return


# -- what the server must send back ----------------------------------------------------------

@dataclass
class Expected:
    #: messages the client must receive (application echo), in order
    messages: list[str] = field(default_factory=list)
    #: when False, a prefix of ``messages`` is enough (the session ended abruptly)
    exact: bool = True
    pongs: list[bytes] = field(default_factory=list)
    #: acceptable endings: ("eof",), ("close", code or None), ("broken",)
    endings: set[tuple[Any, ...]] = field(default_factory=set)


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def sockjs_messages(text: str) -> list[Any]:
    """Messages in one SockJS WebSocket text message; ValueError if broken."""
    if not text:
        return []
    value = json.loads(text, parse_constant=_reject_constant)
    if text[0] == "[" and type(value) is list:
        return value
    return [value]


def echo_text(message: Any) -> str:
    """What the echo service writes back for a received message."""
    if isinstance(message, str):
        return message
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def _ending(ev: Event, exp: Expected) -> bool:
    """Record the ending an RFC-layer terminal event calls for; True if terminal."""
    if isinstance(ev, Close):
        exp.endings.add(("close", ev.code))
        if ev.may_fail:
            exp.endings.add(("close", 1002))
        return True
    if isinstance(ev, Fail):
        exp.endings.update(("close", c) for c in ev.codes)
        return True
    if isinstance(ev, Incomplete):
        exp.endings.add(("eof",))
        exp.endings.update(("close", c) for c in ev.may_fail)
        return True
    if isinstance(ev, End):
        exp.endings.add(("eof",))
        return True
    return False


def expect_sockjs(data: bytes, max_size: int) -> Expected:
    """The SockJS ``websocket`` transport with the echo service, after ``o``."""
    exp = Expected()
    for ev in rfc6455_events(data, max_size):
        if isinstance(ev, Text):
            try:
                msgs = sockjs_messages(ev.text)
            except (ValueError, RecursionError):
                exp.endings.add(("broken",))
                exp.exact = False
                return exp
            exp.messages.extend(echo_text(m) for m in msgs)
        elif isinstance(ev, Binary):
            exp.endings.add(("broken",))  # SockJS frames are text
            exp.exact = False
            return exp
        elif isinstance(ev, Ping):
            exp.pongs.append(ev.payload)
        elif isinstance(ev, Pong):
            pass
        else:
            _ending(ev, exp)
            # Echoes still queued when the session ends may be dropped.
            exp.exact = isinstance(ev, End) or (isinstance(ev, Incomplete) and not ev.may_fail)
            return exp
    raise AssertionError("no terminal event")


def expect_raw(data: bytes, max_size: int) -> Expected:
    """Raw ``/websocket`` with the echo service: text echoed as is, binary refused
    with a 1003 close (after which the server sends nothing more)."""
    exp = Expected()
    for ev in rfc6455_events(data, max_size):
        if isinstance(ev, Text):
            exp.messages.append(ev.text)
        elif isinstance(ev, Binary):
            exp.endings.add(("close", 1003))
            return exp
        elif isinstance(ev, Ping):
            exp.pongs.append(ev.payload)
        elif isinstance(ev, Pong):
            pass
        else:
            _ending(ev, exp)
            return exp
    raise AssertionError("no terminal event")


# -- reading what the server sent ------------------------------------------------------------

@dataclass
class Observed:
    messages: list[str] = field(default_factory=list)
    pongs: list[bytes] = field(default_factory=list)
    ending: tuple[Any, ...] = ("eof",)
    other: list[tuple[int, bytes]] = field(default_factory=list)


class BadServerFrames(AssertionError):
    pass


def server_frames(data: bytes, truncated: bool = False) -> list[tuple[bool, int, bytes]]:
    """Parse unmasked server frames; the data may end inside a frame only if
    ``truncated`` (the connection was reset)."""
    out = []
    pos, n = 0, len(data)
    while pos < n:
        head = 2
        if n - pos >= 2:
            head = {126: 4, 127: 10}.get(data[pos + 1] & 0x7F, 2)
        if n - pos < head:
            if truncated:
                break
            raise BadServerFrames(f"truncated frame header {data[pos:]!r}")
        b0, b1 = data[pos], data[pos + 1]
        if b0 & 0x70:
            raise BadServerFrames("server set RSV bits")
        if b1 & 0x80:
            raise BadServerFrames("server masked a frame")
        length = b1 & 0x7F
        if head > 2:
            length = int.from_bytes(data[pos + 2 : pos + head], "big")
        if pos + head + length > n:
            if truncated:
                break
            raise BadServerFrames("truncated server frame")
        out.append((bool(b0 & 0x80), b0 & 0x0F, data[pos + head : pos + head + length]))
        pos += head + length
    return out


def observe(data: bytes, sockjs: bool, truncated: bool = False) -> Observed:
    """What the server sent after the handshake (after ``o`` for SockJS)."""
    obs = Observed()
    frames = server_frames(data, truncated)
    for fin, op, payload in frames:
        if not fin:
            raise BadServerFrames("server fragmented a message")
        if obs.ending != ("eof",):
            raise BadServerFrames(f"frame after the end: {op} {payload[:60]!r}")
        if op == OP_CLOSE:
            code = int.from_bytes(payload[:2], "big") if payload else None
            if len(payload) == 1:
                raise BadServerFrames("1-byte close payload")
            obs.ending = ("close", code)
        elif op == OP_PONG:
            obs.pongs.append(payload)
        elif op == OP_PING:
            pass  # keep-alive
        elif op == OP_TEXT:
            text = payload.decode("utf-8")
            if not sockjs:
                obs.messages.append(text)
            elif text == "h":
                pass
            elif text.startswith("a"):
                obs.messages.extend(json.loads(text[1:]))
            elif text == 'c[3000,"Broken framing."]':
                obs.ending = ("broken",)
            else:
                obs.other.append((op, payload))
        else:
            obs.other.append((op, payload))
    return obs


def compare(exp: Expected, obs: Observed, reset: bool = False) -> str | None:
    """None if the observation is acceptable, else a description of the difference.

    ``reset``: the connection was reset (RST) while the client was still sending
    after the end of the session (after its own close frame, say; failures use a
    lingering close since deeea54); what the server wrote last may then be lost
    on the way, so a prefix of everything and a missing ending are tolerated,
    but only when the server had a reason to end the connection.
    """
    if obs.other:
        return f"unexpected frames {obs.other[:3]!r}"
    if reset and exp.endings - {("eof",)}:
        if obs.pongs != exp.pongs[: len(obs.pongs)]:
            return f"pongs {obs.pongs!r} not a prefix of {exp.pongs!r}"
        if obs.messages != exp.messages[: len(obs.messages)]:
            return f"messages {obs.messages!r} not a prefix of {exp.messages!r}"
        if obs.ending != ("eof",) and obs.ending not in exp.endings:
            return f"ending {obs.ending!r} not in {sorted(map(str, exp.endings))}"
        return None
    if obs.pongs != exp.pongs:
        return f"pongs {obs.pongs!r} != expected {exp.pongs!r}"
    if exp.exact:
        if obs.messages != exp.messages:
            return f"messages {obs.messages!r} != expected {exp.messages!r}"
    elif obs.messages != exp.messages[: len(obs.messages)]:
        return f"messages {obs.messages!r} not a prefix of {exp.messages!r}"
    ending = obs.ending
    if ending not in exp.endings:
        return f"ending {ending!r} not in {sorted(map(str, exp.endings))}"
    return None
