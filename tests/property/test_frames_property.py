"""Property tests: compiled ``fastsockjs._frames`` == twin ``_frames_py`` == oracle.

Oracle checks run against both implementations; equality checks need the
extension and skip without it (fail under ``CI=true`` unless
``FASTSOCKJS_BUILD_EXTENSION=skip``).
"""

from __future__ import annotations

import json
import random
import struct
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastsockjs import _frames_py
from tests.helpers import compiled_frames

_compiled = compiled_frames()
require_compiled = compiled_frames.require


def impl(name: str) -> ModuleType:
    return _frames_py if name == "python" else require_compiled()


IMPLS = pytest.mark.parametrize("name", ["python", "cython"])
# Names of the tests that compare the extension to the twin.
_COMPILED_ONLY: set[str] = set()


def needs_compiled(fn: Any) -> Any:
    _COMPILED_ONLY.add(fn.__name__)
    return fn


@pytest.fixture(autouse=True)
def _skip_or_fail_early(request: pytest.FixtureRequest) -> None:
    # Decide before hypothesis starts generating examples, so a missing
    # extension is one clear skip/failure, not a shrunk "falsifying example".
    callspec = getattr(request.node, "callspec", None)
    wants = request.node.originalname in _COMPILED_ONLY
    if wants or (callspec is not None and callspec.params.get("name") == "cython"):
        require_compiled()


bounded = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# ---------------------------------------------------------------------------
# strategies
# ---------------------------------------------------------------------------

# Every code point, lone surrogates included.
any_char = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=())
# Characters on the edges of every escaping rule, to make them frequent.
edge_char = st.sampled_from(
    [
        chr(c)
        for c in (
            0x00,
            0x07,
            0x08,
            0x09,
            0x0A,
            0x0C,
            0x0D,
            0x1F,
            0x20,
            0x22,
            0x2F,
            0x5C,
            0x7E,
            0x7F,
            0x80,
            0xFF,
            0x100,
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
            0xFFFF,
            0x10000,
            0x1F600,
            0x10FFFF,
        )
    ]
)
texts = st.one_of(
    st.text(),
    st.text(any_char),
    st.text(st.one_of(any_char, edge_char)),
    st.text(st.characters(max_codepoint=0xFF)),
    st.text(st.characters(max_codepoint=0x7F), min_size=20),
)


def utf16_view(s: str) -> str:
    """``s`` as a UTF-16 reader sees it: adjacent high+low surrogates pair up.

    ``quote`` writes astral characters as escaped surrogate pairs (as
    sockjs-node does), so a lone high surrogate followed by a lone low one
    decodes back as the astral character they spell.
    """
    return s.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def check_quote_output(q: str) -> None:
    assert q[0] == q[-1] == '"'
    for ch in q:
        o = ord(ch)
        assert o >= 0x20 and o <= 0xFFFF
        assert not (0x200C <= o <= 0x200F or 0x2028 <= o <= 0x202F or 0x2060 <= o <= 0x206F)
        assert not (0xD800 <= o <= 0xDFFF or o >= 0xFFF0)


# ---------------------------------------------------------------------------
# quote / encode_messages / close_frame
# ---------------------------------------------------------------------------


@IMPLS
@bounded
@given(s=texts)
def test_quote_oracle(name: str, s: str) -> None:
    q = impl(name).quote(s)
    check_quote_output(q)
    assert json.loads(q) == utf16_view(s)


@needs_compiled
@bounded
@given(s=texts)
def test_quote_compiled_equals_twin(s: str) -> None:
    q = require_compiled().quote(s)
    t = _frames_py.quote(s)
    assert q == t
    assert hash(q) == hash(t)


@IMPLS
@bounded
@given(msgs=st.lists(texts, max_size=8))
def test_encode_messages_oracle(name: str, msgs: list[str]) -> None:
    out = impl(name).encode_messages(msgs)
    assert out[0] == "a"
    assert json.loads(out[1:]) == [utf16_view(m) for m in msgs]


@needs_compiled
@bounded
@given(msgs=st.lists(texts, max_size=8), as_tuple=st.booleans())
def test_encode_messages_compiled_equals_twin(msgs: list[str], as_tuple: bool) -> None:
    seq: Any = tuple(msgs) if as_tuple else msgs
    assert require_compiled().encode_messages(seq) == _frames_py.encode_messages(seq)


@needs_compiled
@bounded
@given(code=st.integers(min_value=0, max_value=9999), reason=texts)
def test_close_frame_compiled_equals_twin(code: int, reason: str) -> None:
    out = require_compiled().close_frame(code, reason)
    assert out == _frames_py.close_frame(code, reason)
    assert json.loads(out[1:]) == [code, utf16_view(reason)]


# ---------------------------------------------------------------------------
# wrap_js_string / event_stream_data / unquote_plus (the HTTP transports)
# ---------------------------------------------------------------------------

# Characters the HTTP escapings turn on, frequent.
http_char = st.sampled_from(list('"\\<>/%+&=\x00\x01\x1f\r\n\t\x7f') + ["\u2028", "\u00e9", "\U0001f600"])
http_texts = st.one_of(texts, st.text(st.one_of(http_char, st.characters(max_codepoint=0x7F))))
# Frames as sessions write them: quoted messages in an array (quote() escapes
# surrogates, so these always encode).
quoted_frames = st.lists(texts, max_size=6).map(_frames_py.encode_messages)


def http_outcome(fn: Any, *args: Any) -> Any:
    """What ``fn(*args)`` returns, or the type of what it raises."""
    try:
        return fn(*args)
    except Exception as exc:  # the types must match, not the messages
        return type(exc)


def old_js_string_bytes(text: str) -> bytes:
    return json.dumps(text, ensure_ascii=False).replace("<", "\\u003c").encode("utf-8")


_OLD_EVENT = str.maketrans({"%": "%25", "\r": "%0D", "\n": "%0A", "\x00": "%00"})


@IMPLS
@bounded
@given(text=st.one_of(http_texts, quoted_frames), prefix=st.binary(max_size=12))
def test_wrap_js_string_oracle(name: str, text: str, prefix: bytes) -> None:
    expected = http_outcome(lambda: prefix + old_js_string_bytes(text) + b");")
    assert http_outcome(impl(name).wrap_js_string, prefix, text, b");") == expected


@needs_compiled
@bounded
@given(text=st.one_of(http_texts, quoted_frames), prefix=st.binary(max_size=12),
       suffix=st.binary(max_size=12))
def test_wrap_js_string_compiled_equals_twin(text: str, prefix: bytes, suffix: bytes) -> None:
    assert http_outcome(require_compiled().wrap_js_string, prefix, text, suffix) == http_outcome(
        _frames_py.wrap_js_string, prefix, text, suffix
    )


@IMPLS
@bounded
@given(text=st.one_of(http_texts, quoted_frames))
def test_event_stream_data_oracle(name: str, text: str) -> None:
    expected = http_outcome(lambda: ("data: " + text.translate(_OLD_EVENT) + "\r\n\r\n").encode())
    assert http_outcome(impl(name).event_stream_data, text) == expected


@needs_compiled
@bounded
@given(text=st.one_of(http_texts, quoted_frames))
def test_event_stream_data_compiled_equals_twin(text: str) -> None:
    assert http_outcome(require_compiled().event_stream_data, text) == http_outcome(
        _frames_py.event_stream_data, text
    )


form_texts = st.one_of(
    http_texts,
    st.text(st.sampled_from("%+0123456789abcdefABCDEFgG&=d")),
    st.binary(max_size=40).map(lambda b: "".join("%%%02x" % c for c in b)),
)


@needs_compiled
@bounded
@given(text=form_texts)
def test_unquote_plus_compiled_equals_twin(text: str) -> None:
    from urllib.parse import unquote_plus

    out = require_compiled().unquote_plus(text)
    assert out == _frames_py.unquote_plus(text) == unquote_plus(text)


# ---------------------------------------------------------------------------
# decode_ws_message
# ---------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)


def outcome(fn: Any, *args: Any) -> Any:
    try:
        return ("ok", fn(*args))
    except ValueError:
        return ("ValueError",)


@needs_compiled
@bounded
@given(value=json_values, pad=st.sampled_from(["", " ", "\n", " \t"]))
def test_decode_ws_message_json(value: Any, pad: str) -> None:
    text = json.dumps(value) + pad
    got = require_compiled().decode_ws_message(text)
    assert got == _frames_py.decode_ws_message(text)
    assert got == (value if isinstance(value, list) else [value])


@needs_compiled
@bounded
@given(text=st.one_of(st.text(), st.text(st.sampled_from('[]{}",:0123456789.eE+-tnfaNI \\u'))))
def test_decode_ws_message_arbitrary_text(text: str) -> None:
    assert outcome(require_compiled().decode_ws_message, text) == outcome(
        _frames_py.decode_ws_message, text
    )


# ---------------------------------------------------------------------------
# apply_mask
# ---------------------------------------------------------------------------

mask_sizes = st.one_of(
    st.integers(min_value=0, max_value=9),
    st.sampled_from([15, 16, 17, 31, 32, 33, 125, 126, 127, 4096, 65535, 65536, 65537, 300001]),
    st.integers(min_value=0, max_value=2000),
)


def random_bytes(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


@IMPLS
@bounded
@given(size=mask_sizes, seed=st.integers(0, 2**32), mask=st.binary(min_size=4, max_size=4))
def test_apply_mask_round_trip(name: str, size: int, seed: int, mask: bytes) -> None:
    f = impl(name)
    data = random_bytes(seed, size)
    masked = f.apply_mask(data, mask)
    assert len(masked) == size
    assert f.apply_mask(masked, mask) == data
    if size <= 64:
        assert masked == bytes(b ^ mask[i % 4] for i, b in enumerate(data))


@needs_compiled
@bounded
@given(
    size=mask_sizes,
    seed=st.integers(0, 2**32),
    mask=st.binary(min_size=4, max_size=4),
    kind=st.sampled_from(["bytes", "bytearray", "memoryview", "offset-view"]),
)
def test_apply_mask_compiled_equals_twin(size: int, seed: int, mask: bytes, kind: str) -> None:
    raw = random_bytes(seed, size + 3)
    data: Any = {
        "bytes": raw[:size],
        "bytearray": bytearray(raw[:size]),
        "memoryview": memoryview(raw)[:size],
        "offset-view": memoryview(raw)[3:],  # unaligned start
    }[kind]
    assert require_compiled().apply_mask(data, mask) == _frames_py.apply_mask(data, mask)


# ---------------------------------------------------------------------------
# parse_frames / build_frame
# ---------------------------------------------------------------------------


@st.composite
def frame_specs(draw: Any) -> tuple[bool, int, bytes, bytes | None]:
    control = draw(st.booleans())
    if control:
        opcode = draw(st.sampled_from([8, 9, 10]))
        fin = True
        payload = draw(st.binary(max_size=125))
    else:
        opcode = draw(st.sampled_from([0, 1, 2]))
        fin = draw(st.booleans())
        size = draw(
            st.one_of(st.integers(0, 300), st.sampled_from([125, 126, 65535, 65536, 70000]))
        )
        payload = random_bytes(draw(st.integers(0, 2**32)), size)
    mask = draw(st.one_of(st.none(), st.binary(min_size=4, max_size=4)))
    return fin, opcode, payload, mask


@IMPLS
@bounded
@given(specs=st.lists(frame_specs(), min_size=1, max_size=5), split=st.integers(min_value=0))
def test_parse_build_round_trip(name: str, specs: list[Any], split: int) -> None:
    f = impl(name)
    wire = [f.build_frame(op, payload, fin, mask) for fin, op, payload, mask in specs]
    assert wire == [
        _frames_py.build_frame(op, payload, fin, mask) for fin, op, payload, mask in specs
    ]
    buf = b"".join(wire)
    want = [(fin, op, payload) for fin, op, payload, _ in specs]
    require_mask = all(mask is not None for *_, mask in specs)
    assert f.parse_frames(buf, 0, 1 << 20, require_mask) == (want, len(buf), None)
    # Parsing a prefix, then resuming from the returned position, is lossless.
    cut = split % (len(buf) + 1)
    first, pos, err = f.parse_frames(buf[:cut], 0, 1 << 20, False)
    assert err is None and pos <= cut
    rest, end, err = f.parse_frames(buf, pos, 1 << 20, False)
    assert (first + rest, end, err) == (want, len(buf), None)


def _header_byte0() -> st.SearchStrategy[int]:
    return st.one_of(
        st.integers(0, 255), st.sampled_from([0x81, 0x82, 0x80, 0x01, 0x88, 0x89, 0x8A, 0x09, 0xC1, 0x41, 0xC9, 0xA1])
    )


def _header_byte1() -> st.SearchStrategy[int]:
    return st.one_of(
        st.integers(0, 255), st.sampled_from([0x80, 0xFD, 0xFE, 0xFF, 0x7E, 0x7F, 0x85])
    )


@st.composite
def frame_soup(draw: Any) -> bytes:
    """Valid frames, near-valid headers and raw garbage, concatenated."""
    chunks = []
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(["frame", "header", "garbage"]))
        if kind == "frame":
            fin, op, payload, mask = draw(frame_specs())
            if len(payload) > 1000:
                payload = payload[:1000]
            chunks.append(_frames_py.build_frame(op, payload, fin, mask))
        elif kind == "header":
            b1 = draw(_header_byte1())
            ext = b""
            if b1 & 0x7F == 126:
                ext = struct.pack("!H", draw(st.integers(0, 0xFFFF)))
            elif b1 & 0x7F == 127:
                ext = struct.pack(
                    "!Q", draw(st.one_of(st.integers(0, 2**64 - 1), st.integers(0, 300)))
                )
            chunks.append(bytes([draw(_header_byte0()), b1]) + ext + draw(st.binary(max_size=40)))
        else:
            chunks.append(draw(st.binary(max_size=60)))
    return b"".join(chunks)


@needs_compiled
@bounded
@given(
    buf=st.one_of(st.binary(max_size=300), frame_soup()),
    pos_seed=st.integers(min_value=0),
    max_payload=st.one_of(
        st.sampled_from([0, 1, 125, 126, 1 << 16, 1 << 63, 1 << 80, -1]), st.integers(0, 2000)
    ),
    require_mask=st.booleans(),
    as_bytearray=st.booleans(),
    rsv1=st.booleans(),
)
def test_parse_compiled_equals_twin(
    buf: bytes, pos_seed: int, max_payload: int, require_mask: bool, as_bytearray: bool,
    rsv1: bool,
) -> None:
    pos = pos_seed % (len(buf) + 3)
    data: Any = bytearray(buf) if as_bytearray else buf
    got = require_compiled().parse_frames(data, pos, max_payload, require_mask, rsv1)
    assert got == _frames_py.parse_frames(data, pos, max_payload, require_mask, rsv1)


@needs_compiled
@bounded
@given(
    opcode=st.integers(0, 255),
    payload=st.one_of(
        st.binary(max_size=200), st.sampled_from([b"x" * 125, b"y" * 126, b"z" * 65536])
    ),
    fin=st.booleans(),
    mask=st.one_of(st.none(), st.binary(min_size=4, max_size=4)),
    rsv1=st.booleans(),
)
def test_build_frame_compiled_equals_twin(
    opcode: int, payload: bytes, fin: bool, mask: bytes | None, rsv1: bool
) -> None:
    got = require_compiled().build_frame(opcode, payload, fin, mask, rsv1)
    assert got == _frames_py.build_frame(opcode, payload, fin, mask, rsv1)
    assert bool(got[0] & 0x40) == rsv1
