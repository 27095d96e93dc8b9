# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, binding=True
"""Cython kernels for fastsockjs (same names, signatures and results as ``_frames_py``).

``_frames_py`` is the specification: every public function here must return
exactly what its twin returns (and raise the same exception types) for every
input the twin documents. The tests run one suite against both modules.

Kernels:

* SockJS string quoting (JSON plus the extra escapes of sockjs-node's
  ``quote()``) and frame assembly (``a[...]``, ``c[code,"reason"]``), written
  straight into a preallocated ``str`` of the exact final size and kind.
* Decoding of what a client sends in one WebSocket message.
* RFC 6455 frame parsing, building and (un)masking, 8 bytes at a time.
* The bodies of the HTTP transports that wrap each frame (a JS string literal,
  an event-stream event), written from the frame's UTF-8 in one pass, and the
  form decoding of ``jsonp_send``.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.list cimport PyList_Append
from cpython.object cimport Py_TYPE
from cpython.ref cimport PyObject
from cpython.sequence cimport PySequence_Fast_GET_SIZE, PySequence_Fast_ITEMS
from cpython.unicode cimport PyUnicode_AsUTF8AndSize, PyUnicode_Check, PyUnicode_DecodeUTF8
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy

__all__ = [
    "quote",
    "encode_messages",
    "close_frame",
    "decode_ws_message",
    "apply_mask",
    "parse_frames",
    "build_frame",
    "wrap_js_string",
    "event_stream_data",
    "unquote_plus",
    "IMPLEMENTATION",
]

IMPLEMENTATION = "cython"


cdef extern from *:
    """
    /* Compact-unicode access; PyUnicode_READY only exists (and matters)
       before Python 3.12. */
    #if PY_VERSION_HEX < 0x030C0000
    #define fsj_unicode_ready(o) PyUnicode_READY(o)
    #else
    #define fsj_unicode_ready(o) 0
    #endif
    #define fsj_unicode_kind(o) ((int)PyUnicode_KIND(o))
    #define fsj_unicode_data(o) PyUnicode_DATA(o)
    #define fsj_unicode_len(o) PyUnicode_GET_LENGTH(o)
    #define fsj_unicode_is_ascii(o) PyUnicode_IS_ASCII(o)
    """
    int fsj_unicode_ready(object o) except -1
    int fsj_unicode_kind(object o)
    void* fsj_unicode_data(object o)
    Py_ssize_t fsj_unicode_len(object o)
    bint fsj_unicode_is_ascii(object o)
    object PyUnicode_New(Py_ssize_t size, uint32_t maxchar)


# --------------------------------------------------------------------------
# quote
# --------------------------------------------------------------------------

ctypedef fused in_t:
    uint8_t
    uint16_t
    uint32_t

ctypedef fused out_t:
    uint8_t
    uint16_t

cdef const char* _HEX = b"0123456789abcdef"

# Extra output characters needed for each ASCII character (0, 1 or 5), and the
# short escape letter (0 when the \u00XX form is used).
cdef uint8_t _ASCII_EXTRA[128]
cdef char _ASCII_SHORT[128]


cdef void _init_tables() noexcept:
    cdef int c, e
    for c in range(128):
        _ASCII_SHORT[c] = 0
        if c < 0x20:
            _ASCII_EXTRA[c] = 5
        else:
            _ASCII_EXTRA[c] = 0
    for c, e in ((0x22, 0x22), (0x5C, 0x5C), (0x08, 0x62), (0x0C, 0x66),
                 (0x0A, 0x6E), (0x0D, 0x72), (0x09, 0x74)):
        _ASCII_EXTRA[c] = 1
        _ASCII_SHORT[c] = <char>e


_init_tables()


cdef inline bint _sockjs_escaped(uint32_t c) noexcept nogil:
    """True for a BMP non-ASCII code point sockjs-node writes as \\uXXXX."""
    if c < 0x200C:
        return False
    if c <= 0x206F:
        return c <= 0x200F or (0x2028 <= c <= 0x202F) or c >= 0x2060
    if c < 0xD800:
        return False
    if c <= 0xDFFF:
        return True
    return 0xFFF0 <= c <= 0xFFFF


# SWAR ("SIMD within a register") helpers: 8 one-byte code points at a time.
cdef uint64_t _ONES = 0x0101010101010101
cdef uint64_t _HIGHS = 0x0101010101010101 * 0x80


cdef inline uint64_t _load8(const uint8_t* p) noexcept nogil:
    cdef uint64_t w
    memcpy(&w, p, 8)  # unaligned-safe load
    return w


cdef inline bint _escape_in8(uint64_t x) noexcept nogil:
    """Whether any of the 8 bytes of ``x`` is < 0x20, '"' or '\\'.

    Exact as an existence test (the classic has-zero-byte / has-less-than
    tricks), and independent of byte order.
    """
    cdef uint64_t q = x ^ (_ONES * 0x22)
    cdef uint64_t b = x ^ (_ONES * 0x5C)
    return ((((x - _ONES * 0x20) & ~x) | ((q - _ONES) & ~q) | ((b - _ONES) & ~b))
            & _HIGHS) != 0


cdef Py_ssize_t _measure1(const uint8_t* p, Py_ssize_t n) noexcept nogil:
    """Length of the quoted form of a 1-byte-kind string (Latin-1 needs no
    SockJS escape: only ASCII controls, '"' and '\\' grow)."""
    cdef Py_ssize_t i = 0, k, extra = 0
    cdef uint8_t c
    while n - i >= 8:
        if _escape_in8(_load8(p + i)):
            for k in range(i, i + 8):
                c = p[k]
                if c < 0x80:
                    extra += _ASCII_EXTRA[c]
        i += 8
    while i < n:
        c = p[i]
        if c < 0x80:
            extra += _ASCII_EXTRA[c]
        i += 1
    return n + extra + 2


cdef Py_ssize_t _measure(const in_t* p, Py_ssize_t n, uint32_t* maxc) noexcept nogil:
    """Length of the quoted form (with its two quotes) of a 2- or 4-byte-kind
    string; raises ``*maxc`` to the largest code point copied verbatim."""
    cdef Py_ssize_t i, extra = 0
    cdef uint32_t c, m = maxc[0]
    for i in range(n):
        c = p[i]
        if c < 0x80:
            extra += _ASCII_EXTRA[c]
        elif in_t is uint32_t and c > 0xFFFF:
            extra += 11
        elif _sockjs_escaped(c):
            extra += 5
        elif c > m:
            m = c
    maxc[0] = m
    return n + extra + 2


cdef inline Py_ssize_t _put_u(out_t* o, Py_ssize_t j, uint32_t c) noexcept nogil:
    o[j] = 0x5C  # backslash
    o[j + 1] = 0x75  # 'u'
    o[j + 2] = _HEX[(c >> 12) & 0xF]
    o[j + 3] = _HEX[(c >> 8) & 0xF]
    o[j + 4] = _HEX[(c >> 4) & 0xF]
    o[j + 5] = _HEX[c & 0xF]
    return j + 6


cdef Py_ssize_t _write(const in_t* p, Py_ssize_t n, out_t* o, Py_ssize_t j) noexcept nogil:
    """Write the quoted form of ``p[:n]`` at ``o[j:]``; return the new end."""
    cdef Py_ssize_t i, run
    cdef uint32_t c
    cdef char e
    o[j] = 0x22
    j += 1
    i = 0
    while i < n:
        c = p[i]
        if c < 0x80:
            if _ASCII_EXTRA[c] == 0:
                if in_t is uint8_t and out_t is uint8_t:
                    # Copy the whole run of characters that need no escape.
                    run = i + 1
                    while n - run >= 8 and not _escape_in8(_load8(p + run)):
                        run += 8
                    while run < n and (p[run] >= 0x80 or _ASCII_EXTRA[p[run]] == 0):
                        run += 1
                    memcpy(o + j, p + i, <size_t>(run - i))
                    j += run - i
                    i = run - 1
                else:
                    o[j] = <out_t>c
                    j += 1
            else:
                e = _ASCII_SHORT[c]
                if e:
                    o[j] = 0x5C
                    o[j + 1] = <out_t>e
                    j += 2
                else:
                    j = _put_u(o, j, c)
        elif in_t is uint8_t:
            o[j] = <out_t>c
            j += 1
        elif in_t is uint32_t and c > 0xFFFF:
            c -= 0x10000
            j = _put_u(o, j, 0xD800 | (c >> 10))
            j = _put_u(o, j, 0xDC00 | (c & 0x3FF))
        elif _sockjs_escaped(c):
            j = _put_u(o, j, c)
        else:
            o[j] = <out_t>c
            j += 1
        i += 1
    o[j] = 0x22
    return j + 1


cdef int _check_str(object s) except -1:
    if not PyUnicode_Check(s):
        # Same message as json.encoder.encode_basestring.
        raise TypeError("first argument must be a string, not "
                        + (<bytes>Py_TYPE(s).tp_name)[:80].decode("utf-8", "replace"))
    fsj_unicode_ready(s)
    return 0


cdef Py_ssize_t _measure_str(object s, uint32_t* maxc) noexcept:
    cdef int kind = fsj_unicode_kind(s)
    cdef void* data = fsj_unicode_data(s)
    cdef Py_ssize_t n = fsj_unicode_len(s)
    if kind == 1:
        # A non-ASCII 1-byte string keeps a code point >= 0x80 verbatim.
        if not fsj_unicode_is_ascii(s) and maxc[0] < 0xFF:
            maxc[0] = 0xFF
        return _measure1(<const uint8_t*>data, n)
    if kind == 2:
        return _measure(<const uint16_t*>data, n, maxc)
    return _measure(<const uint32_t*>data, n, maxc)


cdef Py_ssize_t _write_str(object s, void* out, int okind, Py_ssize_t j) noexcept:
    cdef int kind = fsj_unicode_kind(s)
    cdef void* data = fsj_unicode_data(s)
    cdef Py_ssize_t n = fsj_unicode_len(s)
    if okind == 1:
        if kind == 1:
            return _write(<const uint8_t*>data, n, <uint8_t*>out, j)
        if kind == 2:
            return _write(<const uint16_t*>data, n, <uint8_t*>out, j)
        return _write(<const uint32_t*>data, n, <uint8_t*>out, j)
    if kind == 1:
        return _write(<const uint8_t*>data, n, <uint16_t*>out, j)
    if kind == 2:
        return _write(<const uint16_t*>data, n, <uint16_t*>out, j)
    return _write(<const uint32_t*>data, n, <uint16_t*>out, j)


cdef inline void _put_ascii(object out, Py_ssize_t j, uint8_t c) noexcept:
    cdef void* d = fsj_unicode_data(out)
    if fsj_unicode_kind(out) == 1:
        (<uint8_t*>d)[j] = c
    else:
        (<uint16_t*>d)[j] = c


cpdef str quote(s):
    """JSON-encode ``s`` as a string literal, with SockJS's extra escapes."""
    cdef uint32_t maxc = 0x7F
    cdef Py_ssize_t n
    _check_str(s)
    n = _measure_str(s, &maxc)
    # Output never holds a code point above U+FFEF: 1- or 2-byte kind.
    out = PyUnicode_New(n, maxc)
    _write_str(s, fsj_unicode_data(out), fsj_unicode_kind(out), 0)
    return out


def encode_messages(messages):
    """The ``a[...]`` frame carrying ``messages`` in order."""
    cdef object seq
    cdef Py_ssize_t count, i, j, total
    cdef PyObject** items
    cdef uint32_t maxc = 0x7F
    cdef int okind
    cdef void* data
    if type(messages) is list or type(messages) is tuple:
        seq = messages
    else:
        # Iterate exactly as the twin's list comprehension does (__iter__).
        seq = [m for m in messages]
    count = PySequence_Fast_GET_SIZE(seq)
    items = PySequence_Fast_ITEMS(seq)
    # "a[" + "]" + separators
    total = 3 + (count - 1 if count > 0 else 0)
    for i in range(count):
        item = <object>items[i]
        _check_str(item)
        total += _measure_str(item, &maxc)
    out = PyUnicode_New(total, maxc)
    okind = fsj_unicode_kind(out)
    data = fsj_unicode_data(out)
    _put_ascii(out, 0, 0x61)  # 'a'
    _put_ascii(out, 1, 0x5B)  # '['
    j = 2
    for i in range(count):
        if i:
            _put_ascii(out, j, 0x2C)  # ','
            j += 1
        j = _write_str(<object>items[i], data, okind, j)
    _put_ascii(out, j, 0x5D)  # ']'
    return out


def close_frame(code, reason):
    """The ``c[code,"reason"]`` frame."""
    return "c[" + str(int(code)) + "," + quote(reason) + "]"


# --------------------------------------------------------------------------
# decode_ws_message
# --------------------------------------------------------------------------

# The twin's decoder (json's C scanner, with NaN / Infinity refused): one
# definition for both modules. Compiling decode_ws_message's own few lines
# still pays (bench/README.md, "What is compiled").
from fastsockjs._frames_py import _decode, _scan_once


def decode_ws_message(text):
    """Messages carried by one client WebSocket message.

    An empty message yields nothing; a JSON array yields its elements in order;
    any other JSON value is one message. Broken JSON raises ``ValueError``.
    """
    if not text:
        return []
    try:
        if text[0] != "[":
            return [_decode(text)]
        try:
            value, end = _scan_once(text, 0)
        except StopIteration:
            value = end = None
        if end != len(text):
            # Broken, or followed by whitespace or junk: the full decoder
            # decides (and raises the proper error).
            value = _decode(text)
    except RecursionError:
        # Nesting deeper than the interpreter's stack is broken framing too.
        raise ValueError("JSON nested too deeply") from None
    if type(value) is list:
        return value
    return [value]


# --------------------------------------------------------------------------
# masking
# --------------------------------------------------------------------------

cdef void _xor_mask(const uint8_t* src, uint8_t* dst, Py_ssize_t n,
                    const uint8_t* mask) noexcept nogil:
    """``dst[i] = src[i] ^ mask[i % 4]``; ``src`` may equal ``dst``."""
    cdef uint8_t m8[8]
    cdef uint64_t k, w0, w1, w2, w3
    cdef Py_ssize_t i = 0
    memcpy(m8, mask, 4)
    memcpy(m8 + 4, mask, 4)
    memcpy(&k, m8, 8)  # byte order independent: XOR is done on memory images
    while n - i >= 32:
        memcpy(&w0, src + i, 8)
        memcpy(&w1, src + i + 8, 8)
        memcpy(&w2, src + i + 16, 8)
        memcpy(&w3, src + i + 24, 8)
        w0 ^= k
        w1 ^= k
        w2 ^= k
        w3 ^= k
        memcpy(dst + i, &w0, 8)
        memcpy(dst + i + 8, &w1, 8)
        memcpy(dst + i + 16, &w2, 8)
        memcpy(dst + i + 24, &w3, 8)
        i += 32
    while n - i >= 8:
        memcpy(&w0, src + i, 8)
        w0 ^= k
        memcpy(dst + i, &w0, 8)
        i += 8
    while i < n:
        dst[i] = src[i] ^ m8[i & 7]
        i += 1


cdef enum:
    # Above this many bytes the XOR runs without the GIL.
    _NOGIL_MIN = 65536
    # Longest payload of a control frame.
    _CONTROL_MAX = 125

# Largest payload length RFC 6455 allows (the 64-bit form's top bit is 0).
cdef long long _LEN_MAX = 0x7FFFFFFFFFFFFFFF


cdef inline void _xor_maybe_nogil(const uint8_t* src, uint8_t* dst, Py_ssize_t n,
                                  const uint8_t* mask) noexcept:
    if n >= _NOGIL_MIN:
        with nogil:
            _xor_mask(src, dst, n, mask)
    else:
        _xor_mask(src, dst, n, mask)


cdef int _get_buffer(object obj, Py_buffer* view) except -1:
    PyObject_GetBuffer(obj, view, PyBUF_SIMPLE)
    return 0


def apply_mask(data, mask):
    """XOR ``data`` with the 4-byte ``mask`` repeated (RFC 6455 section 5.3)."""
    cdef Py_buffer dv
    cdef Py_buffer mv
    cdef Py_ssize_t n = len(data)
    if n == 0:
        return b""
    if len(mask) != 4:
        raise ValueError("mask must be 4 bytes")
    try:
        _get_buffer(data, &dv)
    except (BufferError, TypeError):
        # Non-contiguous memoryview, iterable of ints...: what int.from_bytes
        # accepts in the twin.
        data = bytes(data)
        _get_buffer(data, &dv)
    try:
        try:
            _get_buffer(mask, &mv)
        except (BufferError, TypeError):
            mask = bytes(mask)
            _get_buffer(mask, &mv)
        try:
            if mv.len != 4:
                raise ValueError("mask must be 4 bytes")
            out = PyBytes_FromStringAndSize(NULL, dv.len)
            _xor_maybe_nogil(<const uint8_t*>dv.buf, <uint8_t*>PyBytes_AS_STRING(out),
                             dv.len, <const uint8_t*>mv.buf)
            return out
        finally:
            PyBuffer_Release(&mv)
    finally:
        PyBuffer_Release(&dv)


# --------------------------------------------------------------------------
# RFC 6455 frames
# --------------------------------------------------------------------------

cdef inline bint _known_opcode(unsigned int op) noexcept nogil:
    return op <= 0x2 or (0x8 <= op <= 0xA)


cdef long long _payload_cap(object max_payload) except? -2:
    # Python-int semantics of ``length > max_payload`` for 0 <= length < 2**63.
    if max_payload >= _LEN_MAX:
        return _LEN_MAX
    if max_payload < 0:
        return -1
    return int(max_payload)


def parse_frames(buf, Py_ssize_t pos, max_payload, bint require_mask=True, bint rsv1=False):
    """Parse every complete frame in ``buf[pos:]``.

    Returns ``(frames, new_pos, error)``: ``frames`` is a list of
    ``(fin, opcode, unmasked_payload)``, ``new_pos`` the offset of the first
    byte not consumed, and ``error`` ``None`` or ``(close_code, reason)`` for a
    protocol violation found at ``new_pos`` (frames before it stay valid).
    A frame whose header announces more than ``max_payload`` bytes is an error
    (1009) as soon as its header is complete, before its payload arrives.
    With ``rsv1`` (permessage-deflate negotiated, RFC 7692) a frame may have
    RSV1 set: its opcode is then reported with ``0x40`` added; whether RSV1
    is allowed on that frame is the caller's to decide. RSV2 and RSV3 are
    always errors.
    """
    cdef Py_buffer view
    cdef const uint8_t* p
    cdef Py_ssize_t end, start, head
    cdef unsigned long long length
    cdef unsigned int b0, b1, opcode
    cdef bint fin, masked
    cdef long long cap
    cdef int k
    cdef list frames = []
    err = None
    if pos < 0:
        raise ValueError("pos must not be negative")
    cap = _payload_cap(max_payload)
    try:
        _get_buffer(buf, &view)
    except (BufferError, TypeError):
        buf = bytes(buf)
        _get_buffer(buf, &view)
    try:
        p = <const uint8_t*>view.buf
        end = view.len
        while end - pos >= 2:
            b0 = p[pos]
            b1 = p[pos + 1]
            if (b0 & 0x70) and ((b0 & 0x30) or not rsv1):
                err = (1002, "reserved bits set")
                break
            opcode = b0 & 0x0F
            if not _known_opcode(opcode):
                err = (1002, "unknown opcode")
                break
            fin = (b0 & 0x80) != 0
            masked = (b1 & 0x80) != 0
            if require_mask and not masked:
                err = (1002, "frame not masked")
                break
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if end - pos < 4:
                    break
                length = (<unsigned long long>p[pos + 2] << 8) | p[pos + 3]
                head = 4
            elif length == 127:
                if end - pos < 10:
                    break
                length = 0
                for k in range(2, 10):
                    length = (length << 8) | p[pos + k]
                if length >> 63:
                    err = (1002, "invalid payload length")
                    break
                head = 10
            if opcode >= 0x8 and (not fin or length > _CONTROL_MAX):
                err = (1002, "invalid control frame")
                break
            if <long long>length > cap:
                err = (1009, "message too big")
                break
            if masked:
                head += 4
            # end - pos - head >= -12: no overflow, unlike pos + head + length
            if <long long>(end - pos - head) < <long long>length:
                break
            start = pos + head
            payload = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>length)
            if masked:
                _xor_maybe_nogil(p + start, <uint8_t*>PyBytes_AS_STRING(payload),
                                 <Py_ssize_t>length, p + start - 4)
            elif length:
                memcpy(PyBytes_AS_STRING(payload), p + start, <size_t>length)
            PyList_Append(frames, (fin, <int>(opcode | (b0 & 0x40)), payload))
            pos = start + <Py_ssize_t>length
    finally:
        PyBuffer_Release(&view)
    return frames, pos, err


def build_frame(opcode, payload, fin=True, mask=None, rsv1=False):
    """One RFC 6455 frame; servers send unmasked, clients pass a 4-byte mask.
    ``rsv1`` marks the first frame of a compressed message (RFC 7692)."""
    cdef Py_buffer pv
    cdef Py_buffer mv
    cdef Py_ssize_t n = len(payload)
    cdef Py_ssize_t hlen, k
    cdef uint8_t head[14]
    cdef uint8_t* o
    cdef unsigned int b0 = ((0x80 if fin else 0) | (0x40 if rsv1 else 0)
                            | <unsigned int>(opcode & 0x0F))
    cdef unsigned int mbit = 0x80 if mask is not None else 0
    head[0] = <uint8_t>b0
    if n < 126:
        head[1] = <uint8_t>(mbit | <unsigned int>n)
        hlen = 2
    elif n < 0x10000:
        head[1] = <uint8_t>(mbit | 126)
        head[2] = <uint8_t>(n >> 8)
        head[3] = <uint8_t>n
        hlen = 4
    else:
        head[1] = <uint8_t>(mbit | 127)
        for k in range(8):
            head[2 + k] = <uint8_t>((<unsigned long long>n) >> (56 - 8 * k))
        hlen = 10
    if mask is not None and n == 0:
        # The twin does ``head + mask + b""`` without checking the mask.
        return PyBytes_FromStringAndSize(<char*>head, hlen) + mask
    _get_buffer(payload, &pv)
    try:
        if mask is None:
            out = PyBytes_FromStringAndSize(NULL, hlen + pv.len)
            o = <uint8_t*>PyBytes_AS_STRING(out)
            memcpy(o, head, <size_t>hlen)
            memcpy(o + hlen, pv.buf, <size_t>pv.len)
            return out
        _get_buffer(mask, &mv)
        try:
            if mv.len != 4:
                raise ValueError("mask must be 4 bytes")
            out = PyBytes_FromStringAndSize(NULL, hlen + 4 + pv.len)
            o = <uint8_t*>PyBytes_AS_STRING(out)
            memcpy(o, head, <size_t>hlen)
            memcpy(o + hlen, mv.buf, 4)
            _xor_maybe_nogil(<const uint8_t*>pv.buf, o + hlen + 4, pv.len,
                             <const uint8_t*>mv.buf)
            return out
        finally:
            PyBuffer_Release(&mv)
    finally:
        PyBuffer_Release(&pv)


# --------------------------------------------------------------------------
# HTTP transport bodies: wrap_js_string, event_stream_data, unquote_plus
# --------------------------------------------------------------------------
#
# Both escapings only ever touch ASCII, and in UTF-8 every byte of a non-ASCII
# character is >= 0x80: so they work on the frame's UTF-8 bytes (for an ASCII
# str, its own buffer: no copy), and the result is the bytes the twin encodes.

cdef const char* _HEX_UPPER = b"0123456789ABCDEF"

# Extra output bytes of each byte in a JS string literal (0, 1 or 5):
# json.dumps's escapes (controls, '"', '\\'), and '<' as \u003c.
cdef uint8_t _JS_EXTRA[256]
# 1 for the bytes an event's data escapes: '%', CR, LF, NUL.
cdef uint8_t _EVENT_ESCAPED[256]
# The value of a hex digit, -1 for any other byte.
cdef signed char _HEX_VALUE[256]


cdef void _init_http_tables() noexcept:
    cdef int c
    for c in range(256):
        _JS_EXTRA[c] = _ASCII_EXTRA[c] if c < 128 else 0
        _EVENT_ESCAPED[c] = 0
        _HEX_VALUE[c] = -1
    _JS_EXTRA[0x3C] = 5
    for c in (0x25, 0x0D, 0x0A, 0x00):
        _EVENT_ESCAPED[c] = 1
    for c in range(10):
        _HEX_VALUE[0x30 + c] = <signed char>c
    for c in range(6):
        _HEX_VALUE[0x41 + c] = <signed char>(10 + c)
        _HEX_VALUE[0x61 + c] = <signed char>(10 + c)


_init_http_tables()


cdef inline bint _js_escape_in8(uint64_t x) noexcept nogil:
    """Whether any of the 8 bytes of ``x`` is < 0x20, '"', '\\' or '<'."""
    cdef uint64_t lt = x ^ (_ONES * 0x3C)
    return _escape_in8(x) or (((lt - _ONES) & ~lt & _HIGHS) != 0)


cdef inline bint _event_escape_in8(uint64_t x) noexcept nogil:
    """Whether any of the 8 bytes of ``x`` may be '%', CR, LF or NUL (any byte
    < 0x0E counts: the caller checks each byte then)."""
    cdef uint64_t pc = x ^ (_ONES * 0x25)
    return ((((x - _ONES * 0x0E) & ~x) | ((pc - _ONES) & ~pc)) & _HIGHS) != 0


def wrap_js_string(bytes prefix not None, text, bytes suffix not None):
    """``prefix``, ``text`` as a JS string literal in UTF-8, ``suffix``."""
    cdef Py_ssize_t n, i = 0, k, j, run, extra = 0
    cdef const uint8_t* p = <const uint8_t*>PyUnicode_AsUTF8AndSize(text, &n)
    cdef Py_ssize_t np = len(prefix), ns = len(suffix)
    cdef uint8_t c
    cdef char e
    cdef uint8_t* o
    while n - i >= 8:
        if _js_escape_in8(_load8(p + i)):
            for k in range(i, i + 8):
                extra += _JS_EXTRA[p[k]]
        i += 8
    while i < n:
        extra += _JS_EXTRA[p[i]]
        i += 1
    out = PyBytes_FromStringAndSize(NULL, np + n + extra + 2 + ns)
    o = <uint8_t*>PyBytes_AS_STRING(out)
    memcpy(o, PyBytes_AS_STRING(prefix), <size_t>np)
    j = np
    o[j] = 0x22
    j += 1
    if extra == 0:
        memcpy(o + j, p, <size_t>n)
        j += n
    else:
        i = 0
        while i < n:
            run = i
            while n - run >= 8 and not _js_escape_in8(_load8(p + run)):
                run += 8
            while run < n and _JS_EXTRA[p[run]] == 0:
                run += 1
            memcpy(o + j, p + i, <size_t>(run - i))
            j += run - i
            if run == n:
                break
            c = p[run]  # ASCII: only ASCII bytes are escaped
            e = _ASCII_SHORT[c]
            if e:
                o[j] = 0x5C
                o[j + 1] = <uint8_t>e
                j += 2
            else:
                j = _put_u(o, j, c)
            i = run + 1
    o[j] = 0x22
    memcpy(o + j + 1, PyBytes_AS_STRING(suffix), <size_t>ns)
    return out


def event_stream_data(text):
    """``text`` as one ``data:`` event of a text/event-stream, in UTF-8, with
    ``%``, CR, LF and NUL percent-escaped."""
    cdef Py_ssize_t n, i = 0, k, j, run, count = 0
    cdef const uint8_t* p = <const uint8_t*>PyUnicode_AsUTF8AndSize(text, &n)
    cdef uint8_t c
    cdef uint8_t* o
    while n - i >= 8:
        if _event_escape_in8(_load8(p + i)):
            for k in range(i, i + 8):
                count += _EVENT_ESCAPED[p[k]]
        i += 8
    while i < n:
        count += _EVENT_ESCAPED[p[i]]
        i += 1
    out = PyBytes_FromStringAndSize(NULL, 6 + n + 2 * count + 4)
    o = <uint8_t*>PyBytes_AS_STRING(out)
    memcpy(o, b"data: ", 6)
    j = 6
    if count == 0:
        memcpy(o + j, p, <size_t>n)
        j += n
    else:
        i = 0
        while i < n:
            run = i
            while n - run >= 8 and not _event_escape_in8(_load8(p + run)):
                run += 8
            while run < n and not _EVENT_ESCAPED[p[run]]:
                run += 1
            memcpy(o + j, p + i, <size_t>(run - i))
            j += run - i
            if run == n:
                break
            c = p[run]
            o[j] = 0x25
            o[j + 1] = _HEX_UPPER[c >> 4]
            o[j + 2] = _HEX_UPPER[c & 0xF]
            j += 3
            i = run + 1
    memcpy(o + j, b"\r\n\r\n", 4)
    return out


from fastsockjs._frames_py import unquote_plus as _twin_unquote_plus


def unquote_plus(text):
    """``urllib.parse.unquote_plus(text)``: '+' is a space, ``%XX`` a byte, the
    bytes UTF-8 (an invalid sequence becomes U+FFFD), a '%' without two hex
    digits stays."""
    cdef Py_ssize_t n, i = 0, j = 0
    cdef const uint8_t* p
    cdef uint8_t* o
    cdef uint8_t c
    cdef signed char hi, lo
    # Only an ASCII str decodes as one run of bytes (urllib keeps the
    # non-ASCII characters between its runs as they are): the rest, the twin.
    if type(text) is not str or not fsj_unicode_is_ascii(text):
        return _twin_unquote_plus(text)
    n = fsj_unicode_len(text)
    p = <const uint8_t*>fsj_unicode_data(text)
    buf = PyBytes_FromStringAndSize(NULL, n)
    o = <uint8_t*>PyBytes_AS_STRING(buf)
    while i < n:
        c = p[i]
        if c == 0x2B:  # '+'
            c = 0x20
        elif c == 0x25 and n - i >= 3:  # '%'
            hi = _HEX_VALUE[p[i + 1]]
            lo = _HEX_VALUE[p[i + 2]]
            if hi >= 0 and lo >= 0:
                c = <uint8_t>((hi << 4) | lo)
                i += 2
        o[j] = c
        j += 1
        i += 1
    return PyUnicode_DecodeUTF8(<char*>o, j, "replace")
