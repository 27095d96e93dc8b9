#!/usr/bin/env python3
"""Atheris target: arbitrary client bytes into the WebSocket codec and the frames kernels.

For each input (first byte: read size, 0 = one read; the rest: client bytes):

* ``fastsockjs.protocol.websocket.Codec`` fed in one read and fed in pieces
  must produce the same events (buffering across reads is invisible);
* those events must be what ``wsmodel`` (an RFC 6455 reference written
  independently of the codec) says a server must see: same messages, pings,
  pongs, close, and a failure with an acceptable code (1002 / 1007 / 1009)
  exactly where the model fails;
* the Cython kernels (``fastsockjs._frames``) and their pure-Python twin
  (``fastsockjs._frames_py``) must agree on ``parse_frames`` (both mask
  policies, any start offset), ``apply_mask``, ``build_frame`` round trips,
  ``decode_ws_message`` (same result or both ValueError) and ``quote``;
* the draft-76 codec must be read-size invariant too, and never raise.

Run (see fuzz/README.md)::

    pip install atheris
    python fuzz/fuzz_ws.py -atheris_runs=100000 fuzz/corpus/ws
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from types import ModuleType
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import wsmodel

try:
    import atheris

    _instrument: contextlib.AbstractContextManager[object] = (
        atheris.instrument_imports(include=["fastsockjs"])
        if __name__ == "__main__"
        else contextlib.nullcontext()
    )
except ImportError:
    atheris = None
    _instrument = contextlib.nullcontext()

with _instrument:
    from fastsockjs import _frames_py
    from fastsockjs.protocol import websocket as wsproto

    _compiled: ModuleType | None
    try:
        _compiled = importlib.import_module("fastsockjs._frames")
    except ImportError:  # pure-Python build: the differential checks are skipped
        _compiled = None

#: Small so that 1009 and fragmented-size paths are within reach.
MAX_SIZE = 512


class Finding(AssertionError):
    pass


def _feed(codec: Any, data: bytes, step: int) -> list[tuple[int, Any]]:
    events: list[tuple[int, Any]] = []
    if not step:
        return list(codec.receive_data(data))
    for i in range(0, len(data), step):
        events.extend(codec.receive_data(data[i : i + step]))
    return events


def _to_model(kind: int, payload: Any) -> Any:
    if kind == wsproto.TEXT:
        return wsmodel.Text(payload)
    if kind == wsproto.BINARY:
        return wsmodel.Binary(payload)
    if kind == wsproto.PING:
        return wsmodel.Ping(payload)
    if kind == wsproto.PONG:
        return wsmodel.Pong(payload)
    if kind == wsproto.CLOSE:
        code, _reason = payload
        return ("close", None if code == wsproto.CLOSE_NO_STATUS else code)
    if kind == wsproto.FAIL:
        return ("fail", payload[0])
    raise Finding(f"unknown event kind {kind}")


def _until_end(events: list[tuple[int, Any]]) -> list[tuple[int, Any]]:
    # The connection is over after a CLOSE or FAIL; the codec is not asked to
    # stop parsing after a CLOSE (the WebSocket layer ignores what follows).
    for i, (kind, _payload) in enumerate(events):
        if kind in (wsproto.CLOSE, wsproto.FAIL):
            return events[: i + 1]
    return events


def check_codec(data: bytes, step: int) -> None:
    whole = _until_end(_feed(wsproto.Codec(MAX_SIZE), data, 0))
    pieces = _until_end(_feed(wsproto.Codec(MAX_SIZE), data, step or 1))
    if whole != pieces:
        raise Finding(f"read size changes the events:\n {whole!r}\n {pieces!r}")
    got = [_to_model(k, p) for k, p in whole]
    want = list(wsmodel.rfc6455_events(data, MAX_SIZE))
    terminal = want.pop()
    for i, ev in enumerate(want):
        if i >= len(got) or got[i] != ev:
            raise Finding(f"event {i}: codec {got[i:i + 1]!r}, model {ev!r}")
    rest = got[len(want) :]
    if isinstance(terminal, wsmodel.End):
        ok = not rest
    elif isinstance(terminal, wsmodel.Incomplete):
        ok = not rest or (
            len(rest) == 1 and rest[0][0] == "fail" and rest[0][1] in terminal.may_fail
        )
    elif isinstance(terminal, wsmodel.Fail):
        ok = len(rest) == 1 and rest[0][0] == "fail" and rest[0][1] in terminal.codes
    elif isinstance(terminal, wsmodel.Close):
        ok = len(rest) == 1 and (
            rest[0] == ("close", terminal.code)
            or (terminal.may_fail and rest[0] == ("fail", wsproto.CLOSE_PROTOCOL_ERROR))
        )
    else:  # pragma: no cover
        ok = False
    if not ok:
        raise Finding(f"after {len(want)} events: codec {rest!r}, model {terminal!r}")


def check_hixie(data: bytes, step: int) -> None:
    whole = _feed(wsproto.Hixie76Codec(MAX_SIZE), data, 0)
    pieces = _feed(wsproto.Hixie76Codec(MAX_SIZE), data, step or 1)
    if whole != pieces:
        raise Finding(f"hixie-76: read size changes the events:\n {whole!r}\n {pieces!r}")


def _outcome(fn: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "ok", fn(*args)
    except (ValueError, RecursionError) as exc:
        return "error", type(exc).__name__


def check_kernels(data: bytes) -> None:
    if _compiled is None:
        return
    for pos in (0, 1, 3):
        if pos > len(data):
            break
        for require_mask in (True, False):
            a = _compiled.parse_frames(data, pos, MAX_SIZE, require_mask)
            b = _frames_py.parse_frames(data, pos, MAX_SIZE, require_mask)
            if a != b:
                raise Finding(f"parse_frames differ (pos={pos}, mask={require_mask}): {a!r} {b!r}")
            a = _compiled.parse_frames(bytearray(data), pos, MAX_SIZE, require_mask)
            if a != b:
                raise Finding("parse_frames differ on a bytearray")
    if len(data) >= 4:
        mask, rest = data[:4], data[4:]
        if _compiled.apply_mask(rest, mask) != _frames_py.apply_mask(rest, mask):
            raise Finding("apply_mask differs")
        for opcode in (wsproto.OP_TEXT, wsproto.OP_BINARY, wsproto.OP_PING):
            for m in (None, mask):
                frame = _compiled.build_frame(opcode, rest, True, m)
                if frame != _frames_py.build_frame(opcode, rest, True, m):
                    raise Finding("build_frame differs")
                parsed = _frames_py.parse_frames(frame, 0, 1 << 30, False)
                if parsed != ([(True, opcode, rest)], len(frame), None) and not (
                    opcode == wsproto.OP_PING and len(rest) > 125
                ):
                    raise Finding(f"build_frame does not round-trip: {parsed!r}")
    text = data.decode("utf-8", "surrogatepass") if _valid_utf8ish(data) else data.decode("latin-1")
    ca = _outcome(_compiled.decode_ws_message, text)
    cb = _outcome(_frames_py.decode_ws_message, text)
    if ca != cb:
        raise Finding(f"decode_ws_message differs on {text[:80]!r}: {ca!r} {cb!r}")
    if _compiled.quote(text) != _frames_py.quote(text):
        raise Finding(f"quote differs on {text[:80]!r}")


def _valid_utf8ish(data: bytes) -> bool:
    try:
        data.decode("utf-8", "surrogatepass")
        return True
    except UnicodeDecodeError:
        return False


def one_input(data: bytes) -> None:
    """The fuzz target (also called by tests/fuzz/test_fuzz_targets.py)."""
    step = data[0] if data else 0
    body = data[1:]
    check_codec(body, step)
    check_hixie(body, step)
    check_kernels(body)


def main() -> None:
    assert atheris is not None, "pip install atheris"
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
