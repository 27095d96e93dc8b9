"""Unit tests of the frame kernels, run once per implementation.

``FramesSuite`` is written once; ``TestFramesPython`` runs it against the
pure-Python twin ``fastsockjs._frames_py`` and ``TestFramesCython`` against the
compiled ``fastsockjs._frames``. A missing extension skips the Cython run,
except under ``CI=true`` where it fails (unless ``FASTSOCKJS_BUILD_EXTENSION=skip``
says the build deliberately left it out).
"""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest

from fastsockjs import _frames_py
from tests.helpers import compiled_frames

_compiled = compiled_frames()
require_compiled = compiled_frames.require


# ---------------------------------------------------------------------------
# Independent reference for quote(): one code point at a time.
# ---------------------------------------------------------------------------

_SHORT = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_EXTRA_RANGES = (
    (0x200C, 0x200F),
    (0x2028, 0x202F),
    (0x2060, 0x206F),
    (0xD800, 0xDFFF),
    (0xFFF0, 0xFFFF),
)


_EXTRA_SET = frozenset(o for lo, hi in _EXTRA_RANGES for o in range(lo, hi + 1))


def sockjs_escaped(o: int) -> bool:
    return o in _EXTRA_SET


def oracle_quote(s: str) -> str:
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch in _SHORT:
            out.append(_SHORT[ch])
        elif o < 0x20 or sockjs_escaped(o):
            out.append(f"\\u{o:04x}")
        elif o > 0xFFFF:
            o -= 0x10000
            out.append(f"\\u{0xD800 | (o >> 10):04x}\\u{0xDC00 | (o & 0x3FF):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def naive_mask(data: bytes, mask: bytes) -> bytes:
    return bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    mask: bytes | None = b"\x01\x02\x03\x04",
    rsv: int = 0,
    length_form: int | None = None,
) -> bytes:
    """Hand-built frame; ``length_form`` forces 7, 16 or 64 bit lengths."""
    n = len(payload)
    form = length_form or (7 if n < 126 else 16 if n < 0x10000 else 64)
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    mbit = 0x80 if mask is not None else 0
    if form == 7:
        head += bytes([mbit | n])
    elif form == 16:
        head += bytes([mbit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack("!Q", n)
    if mask is None:
        return head + payload
    return head + mask + naive_mask(payload, mask)


# RFC 6455 section 5.7: a single-frame masked text message "Hello".
RFC_HELLO_MASKED = bytes.fromhex("818537fa213d7f9f4d5158")
RFC_MASK = bytes.fromhex("37fa213d")
BIG = 1 << 40


class FramesSuite:
    """Behaviour both implementations must share (the twin is the spec)."""

    frames: Any = None

    # -- quote ---------------------------------------------------------------

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("", '""'),
            ("hello", '"hello"'),
            ("hello world 0123456789 ~!@#$%^&*()_+{}|:<>?/.,';][=-`", None),
            ("\x7f", '"\x7f"'),
            ('a"b', '"a\\"b"'),
            ("a\\b", '"a\\\\b"'),
            ('"\\"\\', '"\\"\\\\\\"\\\\"'),
            ("/", '"/"'),
        ],
    )
    def test_quote_ascii(self, text: str, expected: str | None) -> None:
        q = self.frames.quote(text)
        assert q == (expected if expected is not None else '"' + text + '"')
        assert q.isascii()

    def test_quote_long_ascii_with_escapes(self) -> None:
        text = ("abc" * 100 + '"' + "x" * 77 + "\n") * 20
        assert self.frames.quote(text) == oracle_quote(text) == _frames_py.quote(text)

    def test_quote_every_position_in_word_sized_chunks(self) -> None:
        # The extension scans 1-byte strings 8 characters at a time: put each
        # interesting character at every offset of strings around that size.
        quote = self.frames.quote
        specials = [
            '"',
            "\\",
            "\n",
            "\x00",
            "\x1f",
            " ",
            "!",
            "#",
            "[",
            "]",
            "\x7f",
            "\x80",
            "\xa2",
        ]
        specials += ["\xdc", "\x9f", "\xa0", "\xff", "\u2028", "\U0001f600"]
        for filler in ("a", "\xe9", "\x7f"):
            for size in range(1, 21):
                for at in range(size):
                    for ch in specials:
                        text = filler * at + ch + filler * (size - at - 1)
                        assert quote(text) == oracle_quote(text), (filler, size, at, ch)

    def test_quote_controls(self) -> None:
        f = self.frames
        assert f.quote("\b\f\n\r\t") == '"\\b\\f\\n\\r\\t"'
        assert f.quote("\x00\x01\x1f") == '"\\u0000\\u0001\\u001f"'
        assert f.quote("\x0b\x1b") == '"\\u000b\\u001b"'
        every = "".join(map(chr, range(0x20)))
        assert f.quote(every) == oracle_quote(every) == json.dumps(every)

    @pytest.mark.parametrize(
        "cp",
        [
            0x200B,
            0x200C,
            0x200F,
            0x2010,
            0x2027,
            0x2028,
            0x202F,
            0x2030,
            0x205F,
            0x2060,
            0x206F,
            0x2070,
            0xD7FF,
            0xD800,
            0xDBFF,
            0xDC00,
            0xDFFF,
            0xE000,
            0xFFEF,
            0xFFF0,
            0xFFFD,
            0xFFFF,
        ],
    )
    def test_quote_extra_escape_boundaries(self, cp: int) -> None:
        ch = chr(cp)
        expected = f'"\\u{cp:04x}"' if sockjs_escaped(cp) else '"' + ch + '"'
        assert self.frames.quote(ch) == expected
        assert self.frames.quote("a" + ch + "\xe9") == oracle_quote("a" + ch + "\xe9")

    def test_quote_extra_set_is_lowercase_hex(self) -> None:
        assert self.frames.quote("\ufffe\u200c\u206f") == '"\\ufffe\\u200c\\u206f"'

    def test_quote_astral(self) -> None:
        f = self.frames
        assert f.quote("\U0001f600") == '"\\ud83d\\ude00"'
        assert f.quote("\U00010000") == '"\\ud800\\udc00"'
        assert f.quote("\U0010ffff") == '"\\udbff\\udfff"'
        assert f.quote("a\U0001f600b\xe9\u2028") == '"a\\ud83d\\ude00b\xe9\\u2028"'
        assert json.loads(f.quote("x\U0001f600y")) == "x\U0001f600y"

    def test_quote_lone_surrogates(self) -> None:
        f = self.frames
        assert f.quote("\ud800") == '"\\ud800"'
        assert f.quote("\udfff") == '"\\udfff"'
        assert f.quote("a\udc00\ud83d") == '"a\\udc00\\ud83d"'
        assert json.loads(f.quote("\udc00x\ud800")) == "\udc00x\ud800"

    @pytest.mark.parametrize(
        "text",
        ["\xe9", "\x80\xff", "\u0100", "\u65e5\u672c", "\u00e9\u2028", "\u0100\u2028\U0001f600"],
    )
    def test_quote_non_ascii_verbatim(self, text: str) -> None:
        assert self.frames.quote(text) == oracle_quote(text) == _frames_py.quote(text)

    def test_quote_output_kind_can_shrink(self) -> None:
        # UCS-2 / UCS-4 input whose non-ASCII characters are all escaped gives
        # an ASCII result that must compare equal to the twin's (canonical str).
        for text in ["\u2028", "ab\ud800", "\U0001f600", "\u2028\U0001f600\xe9"]:
            q = self.frames.quote(text)
            assert q == _frames_py.quote(text)
            assert q.isascii() == _frames_py.quote(text).isascii()
            assert hash(q) == hash(_frames_py.quote(text))

    def test_quote_every_bmp_code_point_round_trips(self) -> None:
        quote = self.frames.quote
        for cp in range(0x10000):
            ch = chr(cp)
            assert json.loads(quote(ch)) == ch, hex(cp)

    def test_quote_all_code_points_in_one_string(self) -> None:
        text = "".join(map(chr, range(0x110000)))
        assert self.frames.quote(text) == oracle_quote(text)

    def test_quote_str_subclass(self) -> None:
        class S(str):
            pass

        assert self.frames.quote(S('a"\u2028')) == '"a\\"\\u2028"'

    @pytest.mark.parametrize("bad", [None, 5, b"abc", ["a"]])
    def test_quote_rejects_non_str(self, bad: Any) -> None:
        with pytest.raises(TypeError):
            self.frames.quote(bad)

    # -- encode_messages / close_frame -----------------------------------------

    @pytest.mark.parametrize(
        ("messages", "expected"),
        [
            ([], "a[]"),
            (["a"], 'a["a"]'),
            (["a", "b\n"], 'a["a","b\\n"]'),
            (("x", ""), 'a["x",""]'),
            (["", "", ""], 'a["","",""]'),
            (
                ["\xe9", "\u2028", "\U0001f600", "\u65e5"],
                'a["\xe9","\\u2028","\\ud83d\\ude00","\u65e5"]',
            ),
        ],
    )
    def test_encode_messages(self, messages: Any, expected: str) -> None:
        assert self.frames.encode_messages(messages) == expected

    def test_encode_messages_iterables(self) -> None:
        f = self.frames
        assert f.encode_messages(m for m in ["a", "b"]) == 'a["a","b"]'
        assert f.encode_messages("ab") == 'a["a","b"]'

        class L(list):  # type: ignore[type-arg]
            def __iter__(self) -> Any:
                return iter(["iterated"])

        assert f.encode_messages(L(["stored"])) == _frames_py.encode_messages(L(["stored"]))

    def test_encode_messages_mixed_kinds_match_twin(self) -> None:
        msgs = [
            "plain",
            "\xe9t\xe9",
            "\u2028only",
            "\U0001f600",
            'q"\\',
            "\x00",
            "\u65e5\u672c\u8a9e",
        ]
        for i in range(len(msgs)):
            sub = msgs[i:] + msgs[:i]
            assert self.frames.encode_messages(sub) == _frames_py.encode_messages(sub)
            assert json.loads(self.frames.encode_messages(sub)[1:]) == sub

    @pytest.mark.parametrize("bad", [["a", 1], [None], [b"x"]])
    def test_encode_messages_rejects_non_str(self, bad: Any) -> None:
        with pytest.raises(TypeError):
            self.frames.encode_messages(bad)

    def test_encode_messages_rejects_non_iterable(self) -> None:
        with pytest.raises(TypeError):
            self.frames.encode_messages(5)

    @pytest.mark.parametrize(
        ("code", "reason", "expected"),
        [
            (3000, "Go away!", 'c[3000,"Go away!"]'),
            (2010, "Another connection still open", 'c[2010,"Another connection still open"]'),
            (1002, 'bad "frame"\n', 'c[1002,"bad \\"frame\\"\\n"]'),
            (1000, "", 'c[1000,""]'),
            (1000, "\u2028\U0001f600", 'c[1000,"\\u2028\\ud83d\\ude00"]'),
            (True, "x", 'c[1,"x"]'),
        ],
    )
    def test_close_frame(self, code: int, reason: str, expected: str) -> None:
        assert self.frames.close_frame(code, reason) == expected

    # -- decode_ws_message -----------------------------------------------------

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("", []),
            ("[]", []),
            ('["a","b"]', ["a", "b"]),
            ('"x"', ["x"]),
            ("5", [5]),
            ("null", [None]),
            ('{"a":[1]}', [{"a": [1]}]),
            ("[[1],[2]]", [[1], [2]]),
            ('["\\ud83d\\ude00"]', ["\U0001f600"]),
            ("[1] ", [1]),
            # Only the first character decides: sockjs-node looks at payload[0].
            (" [1,2]", [[1, 2]]),
        ],
    )
    def test_decode_ws_message(self, text: str, expected: list[Any]) -> None:
        assert self.frames.decode_ws_message(text) == expected

    @pytest.mark.parametrize(
        "text", ["[", '"abc', "abc", "[1,]", "1 2", "{", "'a'", "[1]]", " ", "\x00"]
    )
    def test_decode_ws_message_broken_json(self, text: str) -> None:
        with pytest.raises(ValueError):
            self.frames.decode_ws_message(text)

    @pytest.mark.parametrize(
        "text", ["NaN", "Infinity", "-Infinity", "[NaN]", '{"a":Infinity}', "[1,-Infinity]"]
    )
    def test_decode_ws_message_rejects_nan(self, text: str) -> None:
        with pytest.raises(ValueError):
            self.frames.decode_ws_message(text)

    # -- apply_mask --------------------------------------------------------------

    def test_apply_mask_rfc_vector(self) -> None:
        assert self.frames.apply_mask(RFC_HELLO_MASKED[6:], RFC_MASK) == b"Hello"
        assert self.frames.apply_mask(b"Hello", RFC_MASK) == RFC_HELLO_MASKED[6:]

    def test_apply_mask_known_vectors(self) -> None:
        f = self.frames
        assert (
            f.apply_mask(b"\x00" * 9, b"\x01\x02\x03\x04")
            == b"\x01\x02\x03\x04\x01\x02\x03\x04\x01"
        )
        assert f.apply_mask(b"\xff" * 5, b"\x0f\xf0\x00\xff") == b"\xf0\x0f\xff\x00\xf0"

    @pytest.mark.parametrize(
        "size", [*range(41), 63, 64, 65, 125, 126, 127, 1000, 65535, 65536, 65537, 200003]
    )
    def test_apply_mask_sizes(self, size: int) -> None:
        data = bytes((i * 31 + 7) & 0xFF for i in range(size))
        mask = b"\xa5\x3c\x0f\xf1"
        masked = self.frames.apply_mask(data, mask)
        assert type(masked) is bytes
        if size <= 1000:
            assert masked == naive_mask(data, mask)
        assert masked == _frames_py.apply_mask(data, mask)
        assert self.frames.apply_mask(masked, mask) == data

    def test_apply_mask_buffer_types(self) -> None:
        f = self.frames
        data = bytes(range(50))
        mask = b"\x10\x20\x30\x40"
        expected = naive_mask(data, mask)
        assert f.apply_mask(bytearray(data), mask) == expected
        assert f.apply_mask(memoryview(data), mask) == expected
        assert f.apply_mask(memoryview(data)[3:40], mask) == naive_mask(data[3:40], mask)
        assert f.apply_mask(data, bytearray(mask)) == expected
        # Non-contiguous views work in the twin (int.from_bytes copies).
        assert f.apply_mask(memoryview(data)[::3], mask) == naive_mask(data[::3], mask)
        assert type(f.apply_mask(bytearray(data), mask)) is bytes

    def test_apply_mask_empty_ignores_mask(self) -> None:
        assert self.frames.apply_mask(b"", b"") == b""
        assert self.frames.apply_mask(bytearray(), b"xyz") == b""

    @pytest.mark.parametrize("mask", [b"", b"abc", b"abcde"])
    def test_apply_mask_bad_mask(self, mask: bytes) -> None:
        with pytest.raises(ValueError):
            self.frames.apply_mask(b"data", mask)

    # -- parse_frames ---------------------------------------------------------

    def test_parse_rsv1_when_allowed(self) -> None:
        # permessage-deflate: RSV1 is reported as opcode + 0x40 on any frame (the
        # codec decides where it is allowed); RSV2 / RSV3 stay errors.
        f = self.frames
        buf = frame(1, b"z", rsv=0x40, fin=False) + frame(0, b"y") + frame(9, b"p", rsv=0x40)
        assert f.parse_frames(buf, 0, 100, True, True) == (
            [(False, 0x41, b"z"), (True, 0, b"y"), (True, 0x49, b"p")], len(buf), None
        )
        assert f.parse_frames(buf, 0, 100, rsv1=True) == f.parse_frames(buf, 0, 100, True, True)
        assert f.parse_frames(buf, 0, 100) == ([], 0, (1002, "reserved bits set"))
        for rsv in (0x20, 0x10, 0x60, 0x50):
            bad = frame(1, b"x", rsv=rsv)
            assert f.parse_frames(bad, 0, 100, True, True) == ([], 0, (1002, "reserved bits set"))
        # The other checks still apply to an RSV1 frame.
        assert f.parse_frames(frame(3, b"", rsv=0x40), 0, 100, True, True) == (
            [], 0, (1002, "unknown opcode")
        )
        assert f.parse_frames(frame(8, b"", rsv=0x40, fin=False), 0, 100, True, True) == (
            [], 0, (1002, "invalid control frame")
        )

    def test_build_rsv1(self) -> None:
        f = self.frames
        assert f.build_frame(1, b"ab", rsv1=True) == b"\xc1\x02ab"
        assert f.build_frame(2, b"ab", False, None, True) == b"\x42\x02ab"
        assert f.build_frame(1, b"ab", True, b"\x00\x00\x00\x00", True) == b"\xc1\x82\x00\x00\x00\x00ab"
        assert f.parse_frames(f.build_frame(1, b"hi", True, b"abcd", True), 0, 10, True, True) == (
            [(True, 0x41, b"hi")], 8, None
        )

    def test_parse_rfc_hello(self) -> None:
        assert self.frames.parse_frames(RFC_HELLO_MASKED, 0, 1000) == (
            [(True, 1, b"Hello")],
            11,
            None,
        )

    @pytest.mark.parametrize(
        ("size", "form"),
        [(0, 7), (5, 7), (125, 7), (126, 16), (300, 16), (65535, 16), (65536, 64), (70001, 64)],
    )
    def test_parse_length_forms(self, size: int, form: int) -> None:
        payload = bytes((i * 7) & 0xFF for i in range(size))
        buf = frame(2, payload)
        assert len(buf) == size + {7: 2, 16: 4, 64: 10}[form] + 4
        frames, pos, err = self.frames.parse_frames(buf, 0, BIG)
        assert (frames, pos, err) == ([(True, 2, payload)], len(buf), None)
        assert type(frames[0][2]) is bytes

    @pytest.mark.parametrize("form", [16, 64])
    def test_parse_non_minimal_lengths_accepted(self, form: int) -> None:
        buf = frame(1, b"hi", length_form=form)
        assert self.frames.parse_frames(buf, 0, 100) == ([(True, 1, b"hi")], len(buf), None)

    def test_parse_every_prefix(self) -> None:
        parts = [
            frame(1, b"Hello"),
            frame(2, bytes(range(200)), fin=False),
            frame(0, b"tail", length_form=64),
            frame(9, b"", mask=b"\xff\x00\xff\x00"),
            frame(0, b"x" * 126),
            frame(10, b"pong!" * 25),
        ]
        expected = [
            (True, 1, b"Hello"),
            (False, 2, bytes(range(200))),
            (True, 0, b"tail"),
            (True, 9, b""),
            (True, 0, b"x" * 126),
            (True, 10, b"pong!" * 25),
        ]
        lead = b"\x00\x01\x02"  # bytes before ``pos`` are never looked at
        buf = lead + b"".join(parts)
        ends = []
        at = len(lead)
        for p in parts:
            at += len(p)
            ends.append(at)
        for cut in range(len(lead), len(buf) + 1):
            done = sum(1 for e in ends if e <= cut)
            want = (expected[:done], ends[done - 1] if done else len(lead), None)
            assert self.frames.parse_frames(buf[:cut], len(lead), BIG) == want, cut
            assert self.frames.parse_frames(bytearray(buf[:cut]), len(lead), BIG) == want, cut

    def test_parse_resume_from_returned_pos(self) -> None:
        buf = frame(1, b"one") + frame(1, b"two" * 100) + frame(1, b"three")
        frames, pos, err = self.frames.parse_frames(buf[:20], 0, BIG)
        assert frames == [(True, 1, b"one")] and err is None
        frames, pos, err = self.frames.parse_frames(buf, pos, BIG)
        assert frames == [(True, 1, b"two" * 100), (True, 1, b"three")]
        assert (pos, err) == (len(buf), None)

    def test_parse_big_frame_prefixes(self) -> None:
        payload = bytes(range(256)) * 300  # 76800 bytes: 64-bit length
        buf = frame(2, payload)
        for cut in (0, 1, 2, 5, 9, 10, 13, 14, 15, 1000, len(buf) - 1):
            assert self.frames.parse_frames(buf[:cut], 0, BIG) == ([], 0, None), cut
        assert self.frames.parse_frames(buf, 0, BIG) == ([(True, 2, payload)], len(buf), None)

    def test_parse_fragmentation_flags(self) -> None:
        buf = (
            frame(1, b"a", fin=False) + frame(0, b"b", fin=False) + frame(9, b"p") + frame(0, b"c")
        )
        frames, pos, err = self.frames.parse_frames(buf, 0, 100)
        assert frames == [(False, 1, b"a"), (False, 0, b"b"), (True, 9, b"p"), (True, 0, b"c")]
        assert (pos, err) == (len(buf), None)

    @pytest.mark.parametrize("opcode", [8, 9, 10])
    def test_parse_control_frame_rules(self, opcode: int) -> None:
        f = self.frames
        ok = frame(opcode, b"z" * 125)
        assert f.parse_frames(ok, 0, 1000) == ([(True, opcode, b"z" * 125)], len(ok), None)
        good = frame(1, b"first")
        bad = frame(opcode, b"x", fin=False)
        assert f.parse_frames(good + bad, 0, 1000) == (
            [(True, 1, b"first")],
            len(good),
            (1002, "invalid control frame"),
        )
        too_long = frame(opcode, b"y" * 126)
        assert f.parse_frames(too_long, 0, 1000) == ([], 0, (1002, "invalid control frame"))
        # The error needs the extended length: not decided on 2 or 3 bytes.
        assert f.parse_frames(too_long[:3], 0, 1000) == ([], 0, None)
        assert f.parse_frames(too_long[:4], 0, 1000) == ([], 0, (1002, "invalid control frame"))
        # Checked before the size limit.
        assert f.parse_frames(too_long, 0, 10) == ([], 0, (1002, "invalid control frame"))
        # Non-minimal encoding of a short control payload is accepted.
        small16 = frame(opcode, b"ok", length_form=16)
        assert f.parse_frames(small16, 0, 1000) == ([(True, opcode, b"ok")], len(small16), None)

    @pytest.mark.parametrize("rsv", [0x40, 0x20, 0x10, 0x70])
    def test_parse_rsv_bits(self, rsv: int) -> None:
        good = frame(1, b"ok")
        buf = good + frame(1, b"bad", rsv=rsv)
        assert self.frames.parse_frames(buf, 0, 100) == (
            [(True, 1, b"ok")],
            len(good),
            (1002, "reserved bits set"),
        )
        # rsv is checked first, even with an unknown opcode and no mask, on 2 bytes.
        assert self.frames.parse_frames(bytes([rsv | 0x83, 0x01]), 0, 100) == (
            [],
            0,
            (1002, "reserved bits set"),
        )

    @pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
    def test_parse_unknown_opcodes(self, opcode: int) -> None:
        buf = frame(opcode, b"?")
        assert self.frames.parse_frames(buf, 0, 100) == ([], 0, (1002, "unknown opcode"))
        assert self.frames.parse_frames(buf[:2], 0, 100) == ([], 0, (1002, "unknown opcode"))
        # before the mask check
        unmasked = frame(opcode, b"?", mask=None)
        assert self.frames.parse_frames(unmasked, 0, 100) == ([], 0, (1002, "unknown opcode"))

    def test_parse_unmasked(self) -> None:
        f = self.frames
        good = frame(1, b"ok")
        buf = good + frame(1, b"plain", mask=None)
        assert f.parse_frames(buf, 0, 100) == (
            [(True, 1, b"ok")],
            len(good),
            (1002, "frame not masked"),
        )
        assert f.parse_frames(buf, 0, 100, True) == (
            [(True, 1, b"ok")],
            len(good),
            (1002, "frame not masked"),
        )
        # Server side of a client: unmasked frames are the norm, masked ones still decoded.
        assert f.parse_frames(buf, 0, 100, require_mask=False) == (
            [(True, 1, b"ok"), (True, 1, b"plain")],
            len(buf),
            None,
        )
        big = frame(2, b"q" * 70000, mask=None)
        assert f.parse_frames(big, 0, BIG, False) == ([(True, 2, b"q" * 70000)], len(big), None)

    @pytest.mark.parametrize("form", [7, 16, 64])
    def test_parse_oversized_announce(self, form: int) -> None:
        f = self.frames
        size = {7: 100, 16: 1000, 64: 100000}[form]
        buf = frame(2, b"\x00" * size, length_form=form)
        head = {7: 2, 16: 4, 64: 10}[form]
        # Only the header has arrived (not even the mask): error already.
        assert f.parse_frames(buf[:head], 0, size - 1) == ([], 0, (1009, "message too big"))
        assert f.parse_frames(buf, 0, size - 1) == ([], 0, (1009, "message too big"))
        # Exactly at the limit is fine.
        assert f.parse_frames(buf, 0, size) == ([(True, 2, b"\x00" * size)], len(buf), None)
        # Header incomplete: no verdict yet.
        assert f.parse_frames(buf[: head - 1], 0, 0) == ([], 0, None)

    def test_parse_max_payload_zero_and_negative(self) -> None:
        f = self.frames
        empty = frame(1, b"")
        assert f.parse_frames(empty, 0, 0) == ([(True, 1, b"")], len(empty), None)
        assert f.parse_frames(empty, 0, -1) == ([], 0, (1009, "message too big"))
        assert f.parse_frames(empty, 0, -(1 << 80)) == ([], 0, (1009, "message too big"))
        assert f.parse_frames(frame(1, b"x" * 10), 0, 1 << 80)[2] is None

    def test_parse_64bit_length_high_bit(self) -> None:
        f = self.frames
        head = bytes([0x82, 0xFF]) + struct.pack("!Q", 1 << 63)
        assert f.parse_frames(head, 0, 1 << 70) == ([], 0, (1002, "invalid payload length"))
        head = bytes([0x82, 0xFF]) + b"\xff" * 8
        assert f.parse_frames(head + b"mask", 0, 1 << 70) == (
            [],
            0,
            (1002, "invalid payload length"),
        )
        assert f.parse_frames(head[:9], 0, 1 << 70) == ([], 0, None)
        # Largest legal announce: too big for any limit we can hold, not invalid.
        head = bytes([0x82, 0xFF]) + struct.pack("!Q", (1 << 63) - 1)
        assert f.parse_frames(head, 0, 1 << 20) == ([], 0, (1009, "message too big"))
        assert f.parse_frames(head, 0, 1 << 70) == ([], 0, None)

    def test_parse_pos_at_or_past_end(self) -> None:
        f = self.frames
        buf = frame(1, b"abc")
        assert f.parse_frames(buf, len(buf), 100) == ([], len(buf), None)
        assert f.parse_frames(buf, len(buf) + 5, 100) == ([], len(buf) + 5, None)
        assert f.parse_frames(b"", 0, 100) == ([], 0, None)
        assert f.parse_frames(b"\x81", 0, 100) == ([], 0, None)

    def test_parse_buffer_types(self) -> None:
        buf = frame(1, b"Hello") + frame(2, b"\x00\xff")
        want = ([(True, 1, b"Hello"), (True, 2, b"\x00\xff")], len(buf), None)
        assert self.frames.parse_frames(buf, 0, 100) == want
        assert self.frames.parse_frames(bytearray(buf), 0, 100) == want
        assert self.frames.parse_frames(memoryview(buf), 0, 100) == want

    def test_parse_result_types(self) -> None:
        frames, pos, err = self.frames.parse_frames(bytearray(frame(1, b"x")), 0, 100)
        assert type(frames) is list and type(pos) is int and err is None
        fin, opcode, payload = frames[0]
        assert fin is True and type(opcode) is int and type(payload) is bytes
        _, _, err = self.frames.parse_frames(frame(3, b""), 0, 100)
        assert type(err) is tuple and type(err[0]) is int and type(err[1]) is str

    # -- build_frame -----------------------------------------------------------

    @pytest.mark.parametrize(
        ("n", "header"),
        [
            (0, b"\x81\x00"),
            (3, b"\x81\x03"),
            (125, b"\x81\x7d"),
            (126, b"\x81\x7e\x00\x7e"),
            (65535, b"\x81\x7e\xff\xff"),
            (65536, b"\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
            (70000, b"\x81\x7f" + (70000).to_bytes(8, "big")),
        ],
    )
    def test_build_frame_unmasked(self, n: int, header: bytes) -> None:
        payload = bytes((i * 13) & 0xFF for i in range(n))
        out = self.frames.build_frame(1, payload)
        assert out == header + payload
        assert type(out) is bytes
        assert self.frames.build_frame(1, bytearray(payload)) == header + payload

    @pytest.mark.parametrize(
        ("n", "header"),
        [
            (0, b"\x82\x80"),
            (5, b"\x82\x85"),
            (125, b"\x82\xfd"),
            (126, b"\x82\xfe\x00\x7e"),
            (65535, b"\x82\xfe\xff\xff"),
            (65536, b"\x82\xff\x00\x00\x00\x00\x00\x01\x00\x00"),
        ],
    )
    def test_build_frame_masked(self, n: int, header: bytes) -> None:
        payload = bytes((i * 13) & 0xFF for i in range(n))
        mask = b"\xde\xad\xbe\xef"
        out = self.frames.build_frame(2, payload, mask=mask)
        assert out == header + mask + naive_mask(payload, mask)
        assert self.frames.parse_frames(out, 0, BIG) == ([(True, 2, payload)], len(out), None)

    def test_build_frame_rfc_hello(self) -> None:
        assert self.frames.build_frame(1, b"Hello", mask=RFC_MASK) == RFC_HELLO_MASKED
        assert self.frames.build_frame(1, b"Hello") == b"\x81\x05Hello"

    def test_build_frame_flags(self) -> None:
        f = self.frames
        assert f.build_frame(1, b"ab", fin=False) == b"\x01\x02ab"
        assert f.build_frame(0, b"", False) == b"\x00\x00"
        assert f.build_frame(8, struct.pack("!H", 1000) + b"bye") == b"\x88\x05\x03\xe8bye"
        assert f.build_frame(0x19, b"") == b"\x89\x00"  # opcode & 0x0F
        assert f.build_frame(9, b"p", True, None) == b"\x89\x01p"

    def test_build_frame_empty_payload_mask_unchecked(self) -> None:
        # The twin appends the mask as given when there is nothing to mask.
        assert self.frames.build_frame(9, b"", mask=b"abcd") == b"\x89\x80abcd"
        assert self.frames.build_frame(9, b"", mask=b"ab") == _frames_py.build_frame(
            9, b"", mask=b"ab"
        )

    @pytest.mark.parametrize("mask", [b"", b"abc", b"abcde"])
    def test_build_frame_bad_mask(self, mask: bytes) -> None:
        with pytest.raises(ValueError):
            self.frames.build_frame(1, b"data", mask=mask)


    def test_negative_pos_rejected(self) -> None:
        # Both refuse, rather than index from the end of the buffer.
        with pytest.raises(ValueError):
            self.frames.parse_frames(b"\x81\x00", -1, 100)


class TestFramesPython(FramesSuite):
    frames = _frames_py

    def test_implementation_name(self) -> None:
        assert _frames_py.IMPLEMENTATION == "python"


class TestFramesCython(FramesSuite):
    frames: Any = _compiled

    @pytest.fixture(autouse=True)
    def _compiled_module(self) -> None:
        require_compiled()

    def test_implementation_name(self) -> None:
        assert self.frames.IMPLEMENTATION == "cython"

    def test_same_public_names(self) -> None:
        assert sorted(self.frames.__all__) == sorted(_frames_py.__all__)
        for name in _frames_py.__all__:
            assert hasattr(self.frames, name), name

