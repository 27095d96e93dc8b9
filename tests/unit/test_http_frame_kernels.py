"""The HTTP transports' frame kernels (``wrap_js_string``, ``event_stream_data``,
``unquote_plus``), run once per implementation, against the rules the transports
used before the kernels existed (written out here as the oracle): the bytes on the
wire must not change.

* htmlfile / jsonp: ``json.dumps(frame, ensure_ascii=False).replace("<", "\\u003c")``
  inside the transport's wrapper, encoded as UTF-8;
* eventsource: ``"data: " + frame.translate(%, CR, LF, NUL escapes) + "\\r\\n\\r\\n"``;
* jsonp_send: ``parse_qs(body, keep_blank_values=True)["d"][0]``.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import unquote_plus as urllib_unquote_plus

import pytest

from fastsockjs import _frames_py
from fastsockjs.protocol.http import HttpError, Request
from fastsockjs.protocol.routing import Route
from fastsockjs.transports.base import decode_body
from fastsockjs.transports.eventsource import EventSourceReceiver
from fastsockjs.transports.htmlfile import CALLBACK_RE, HtmlFileReceiver, callback_param
from fastsockjs.transports.jsonp import JsonpReceiver, jsonp, jsonp_send
from tests.helpers import compiled_frames
from tests.unit.fakes import FakeExchange, Mounted

_compiled = compiled_frames()
require_compiled = compiled_frames.require


# -- the old rules ------------------------------------------------------------------
def old_js_string(frame: str) -> str:
    return json.dumps(frame, ensure_ascii=False).replace("<", "\\u003c")


def old_htmlfile(frame: str) -> bytes:
    return ("<script>\np(" + old_js_string(frame) + ");\n</script>\r\n").encode("utf-8")


def old_jsonp(callback: str, frame: str) -> bytes:
    return ("/**/" + callback + "(" + old_js_string(frame) + ");\r\n").encode("utf-8")


_OLD_EVENT_ESCAPES = str.maketrans({"%": "%25", "\r": "%0D", "\n": "%0A", "\x00": "%00"})


def old_event(frame: str) -> bytes:
    return ("data: " + frame.translate(_OLD_EVENT_ESCAPES) + "\r\n\r\n").encode("utf-8")


def old_form_d(body: str) -> str:
    return parse_qs(body, keep_blank_values=True).get("d", [""])[0]


# -- tricky input ---------------------------------------------------------------------
TRICKY = [
    "",
    "o",
    "h",
    'a["hello"]',
    'a["say \\"hi\\"","back\\\\slash"]',
    '"',
    "\\",
    '\\"\\"\\',
    "</script>",
    "<script>alert(1)</script><!--",
    "a<b<<c<",
    "\u2028\u2029",
    'a["\\u2028\\u2029"]',  # what quote() makes of them: escaped already
    "".join(chr(c) for c in range(0x20)) + "\x7f",
    "\r\n\r\n",
    "x\r\ny\x00%",
    "100% %% %25 %0A",
    "é",
    "naïve café ÿ",
    "日本語のテキスト",
    "\U0001f600 \U00010000 \U0010ffff",
    "mixed é <\U0001f600> \"q\" \\ \n%",
    "\ufeff\ufff0\uffff",
    "x" * 7 + "<",  # SWAR word boundaries
    "x" * 8 + '"',
    "y" * 9 + "\\",
    "z" * 15 + "%",
    "w" * 16 + "\n",
    "v" * 4096,
    ("<\"\\\n%\x00é\U0001f600" * 300),
]
LONE_SURROGATES = ["\ud800", "a\udfffb", "x" * 20 + "\udbff", "é\ud83d"]


def _every_position(ch: str, size: int = 24) -> list[str]:
    """``ch`` at every offset of a run of plain bytes (word-sized chunk edges)."""
    return ["a" * i + ch + "b" * (size - i) for i in range(size + 1)]


POSITIONED = [t for ch in '"\\<\x00\x01\x1f\r\n%é\u2028\U0001f600' for t in _every_position(ch)]


class KernelSuite:
    frames: Any = None

    @pytest.mark.parametrize("frame", TRICKY + POSITIONED)
    def test_wrap_js_string_is_the_old_js_string(self, frame: str) -> None:
        f = self.frames
        assert f.wrap_js_string(b"", frame, b"") == old_js_string(frame).encode("utf-8")
        assert f.wrap_js_string(b"<script>\np(", frame, b");\n</script>\r\n") == (
            old_htmlfile(frame)
        )
        assert f.wrap_js_string(b"/**/cb(", frame, b");\r\n") == old_jsonp("cb", frame)

    @pytest.mark.parametrize("frame", TRICKY + POSITIONED)
    def test_event_stream_data_is_the_old_event(self, frame: str) -> None:
        assert self.frames.event_stream_data(frame) == old_event(frame)

    @pytest.mark.parametrize("frame", TRICKY)
    def test_js_string_never_holds_a_closing_tag_or_a_raw_line_break(self, frame: str) -> None:
        out = self.frames.wrap_js_string(b"", frame, b"")
        assert b"<" not in out and b"\n" not in out and b"\r" not in out
        assert json.loads(out.decode("utf-8")) == frame  # still the same string

    @pytest.mark.parametrize("frame", TRICKY)
    def test_event_data_has_no_framing_bytes(self, frame: str) -> None:
        out = self.frames.event_stream_data(frame)
        body = out[len(b"data: "):-4]
        assert b"\r" not in body and b"\n" not in body and b"\x00" not in body

    @pytest.mark.parametrize("frame", LONE_SURROGATES)
    def test_a_lone_surrogate_is_refused_as_before(self, frame: str) -> None:
        with pytest.raises(UnicodeEncodeError):
            old_htmlfile(frame)
        with pytest.raises(UnicodeEncodeError):
            self.frames.wrap_js_string(b"p(", frame, b")")
        with pytest.raises(UnicodeEncodeError):
            old_event(frame)
        with pytest.raises(UnicodeEncodeError):
            self.frames.event_stream_data(frame)

    def test_results_are_bytes_and_str(self) -> None:
        f = self.frames
        assert type(f.wrap_js_string(b"", "x", b"")) is bytes
        assert type(f.event_stream_data("x")) is bytes
        assert type(f.unquote_plus("a%20b")) is str
        assert f.wrap_js_string(b"", "\u2028", b"") == '"\u2028"'.encode()  # kept as is

    @pytest.mark.parametrize("bad", [None, 1, b"x"])
    def test_non_str_frames_are_refused(self, bad: Any) -> None:
        with pytest.raises(TypeError):
            self.frames.wrap_js_string(b"", bad, b"")
        with pytest.raises(TypeError):
            self.frames.event_stream_data(bad)

    @pytest.mark.parametrize("text", [
        "",
        "plain",
        "a+b++c",
        "%5B%22x%22%2C%22y%20z%22%5D",
        "%5b%22lower%22%5d",
        "%",
        "%%",
        "%%41",
        "%4",
        "%4g%g4%zz",
        "%2+",
        "+%2B+",
        "100%",
        "%C3%A9%e2%80%a8",  # é, U+2028
        "%F0%9F%98%80",  # non-BMP
        "%ff%fe%C3",  # invalid UTF-8: U+FFFD
        "%ED%A0%80",  # an encoded surrogate: invalid UTF-8 too
        "%00%0A%0d",
        "é%20ü+%C3%A9",  # non-ASCII kept between the decoded runs
        "\U0001f600%41",
        "%5B%22" + "x" * 1000 + "%22%5D",
    ])
    def test_unquote_plus_is_urllibs(self, text: str) -> None:
        assert self.frames.unquote_plus(text) == urllib_unquote_plus(text)


class TestKernelsPython(KernelSuite):
    frames = _frames_py


class TestKernelsCython(KernelSuite):
    frames: Any = _compiled

    @pytest.fixture(autouse=True)
    def _compiled_module(self) -> None:
        require_compiled()


# -- through the receivers (whichever kernels are loaded) -------------------------------
@pytest.mark.parametrize("frame", TRICKY)
def test_receivers_write_what_the_old_rules_wrote(frame: str) -> None:
    assert HtmlFileReceiver(FakeExchange(), 1 << 20).encode(frame) == old_htmlfile(frame)
    assert JsonpReceiver(FakeExchange(), "_jp.a0-b_c").encode(frame) == old_jsonp("_jp.a0-b_c", frame)
    assert EventSourceReceiver(FakeExchange(), 1 << 20).encode(frame) == old_event(frame)


@pytest.mark.parametrize("body", [
    "d=%5B%22x%22%5D",
    "d=%5B%22a+b%22%2C%22c%2Bd%22%5D",
    "d=",
    "d",
    "d=%5B%22x%22%5D&d=%5B%22second%22%5D",
    "x=1&d=%5B%22y%22%5D",
    "d=%5B%22x%22%5D&",
    "&d=%5B%22x%22%5D",
    "%64=%5B%22encoded+name%22%5D",
    "d=%5B%22semi;colon%22%5D",
    "d=%5B%22%C3%A9%ff%22%5D",
    "d=[\"é\"]",
    "d=%5B%22100%%22%5D",
    "d=%5Bbroken",
    "dd=%5B%5D",
    "D=%5B%5D",
])
def test_jsonp_send_reads_the_form_as_parse_qs_does(body: str) -> None:
    m = Mounted()
    m.call(jsonp, "GET", "/echo/000/s1/jsonp?c=cb", route=Route("jsonp", "000", "s1"))
    try:
        expected: Any = decode_body(old_form_d(body))
    except HttpError as exc:
        expected = (exc.status, str(exc))
    try:
        m.call(jsonp_send, "POST", "/echo/000/s1/jsonp_send", body.encode(),
               {"content-type": "application/x-www-form-urlencoded"},
               route=Route("jsonp_send", "000", "s1"))
        got: Any = m.received
    except HttpError as exc:
        got = (exc.status, str(exc))
    assert got == expected


def old_callback(query: str) -> str | int:
    params = parse_qs(query, keep_blank_values=True)
    callback = (params.get("c") or params.get("callback") or [None])[0]
    if callback is None or not CALLBACK_RE.fullmatch(callback):
        return 500
    return callback


@pytest.mark.parametrize("query", [
    "c=cb",
    "c=_jp.a000001",
    "c=a-b_c.d",
    "c=" + "x" * 32,
    "c=" + "x" * 33,
    "c=",
    "c",
    "c=a%20b",
    "c=a+b",
    "c=%61bc",
    "c=cb&c=other",
    "c=cb&x=1",
    "c=a;b",
    "x=1&c=cb",
    "callback=other.f",
    "callback=cb&c=first",
    "c=\u00e9",
    "",
])
def test_the_callback_fast_path_finds_what_parse_qs_finds(query: str) -> None:
    request = Request("GET", "/echo/000/s1/jsonp?" + query, {"host": "h"})
    try:
        got: str | int = callback_param(request)
    except HttpError as exc:
        got = exc.status
    assert got == old_callback(query)
