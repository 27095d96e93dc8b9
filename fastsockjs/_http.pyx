# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, binding=True
"""Request heads in, response heads out, compiled (same names, signatures and
results as ``_http_py``, its twin and specification: read that module).

``parse_request``: one pass over the head in C. The request line and every
header line are checked against byte tables, names are lower-cased into a stack
buffer, and only the strings the caller keeps are made (a name, a value, the
target).

``head``: the response head's size is summed first, then every piece is copied
once into the bytes object (latin-1 text is one byte per character already).
"""

from http import HTTPStatus

# Anything but (str, str) pairs of latin-1 text is the twin's to build (or refuse).
from fastsockjs import _http_py as _twin

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from cpython.dict cimport PyDict_GetItem, PyDict_SetItem
from cpython.ref cimport PyObject
from cpython.unicode cimport PyUnicode_DecodeLatin1
from libc.string cimport memcmp, memcpy

cdef extern from "Python.h":
    int PyUnicode_KIND(object o)
    void *PyUnicode_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    int PyUnicode_1BYTE_KIND

cdef extern from "string.h":
    void *memmem(const void *haystack, size_t haystacklen, const void *needle, size_t needlelen)

__all__ = ["FALLBACK", "IMPLEMENTATION", "NEED_MORE", "head", "parse_request"]

IMPLEMENTATION = "cython"
NEED_MORE = 0
FALLBACK = -1

cdef enum:
    MAX_NAME = 256  # longer header names go to the full parser
    MAX_DIGITS = 16

# Byte classes: 1 token (header name), 2 field value, 4 target.
cdef unsigned char CLASS[256]


cdef void _init_classes():
    cdef int c
    cdef bytes tchar = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    for c in range(256):
        CLASS[c] = 0
    for c in tchar:
        CLASS[c] |= 1
    for c in range(0x20, 0x7F):
        CLASS[c] |= 2
    CLASS[0x09] |= 2
    for c in range(0x80, 0x100):
        CLASS[c] |= 2
    for c in range(0x21, 0x7F):
        CLASS[c] |= 4


_init_classes()

cdef str S_GET = "GET"
cdef str S_POST = "POST"
cdef str S_OPTIONS = "OPTIONS"
cdef str S_HEAD = "HEAD"
cdef str S_PUT = "PUT"
cdef str S_DELETE = "DELETE"
cdef str S_PATCH = "PATCH"
cdef str V11 = "1.1"
cdef str V10 = "1.0"
cdef str H_HOST = "host"
cdef str SEP = ", "


# Header names browsers, proxies and sockjs-client send: a name found here is this
# str (made once, its hash kept) instead of a new one per request.
cdef tuple KNOWN_NAMES = (
    "accept", "accept-encoding", "accept-language", "access-control-request-headers",
    "access-control-request-method", "authorization", "cache-control", "connection",
    "content-length", "content-type", "cookie", "dnt", "forwarded", "if-modified-since",
    "if-none-match", "origin", "pragma", "priority", "referer", "sec-ch-ua",
    "sec-ch-ua-mobile", "sec-ch-ua-platform", "sec-fetch-dest", "sec-fetch-mode",
    "sec-fetch-site", "sec-fetch-user", "te", "upgrade-insecure-requests", "user-agent",
    "via", "x-forwarded-for", "x-forwarded-host", "x-forwarded-port", "x-forwarded-proto",
    "x-real-ip", "x-request-id", "x-requested-with",
)

cdef enum:
    MAX_KNOWN = 32  # the longest name above is 30 bytes

# KNOWN_NAMES sorted by length: those of length n are BY_LENGTH[FIRST[n]:FIRST[n + 1]].
cdef tuple BY_LENGTH = tuple(sorted(KNOWN_NAMES, key=len))
cdef Py_ssize_t FIRST[MAX_KNOWN + 2]


cdef void _init_known():
    cdef Py_ssize_t n, i = 0
    for n in range(MAX_KNOWN + 2):
        while i < len(BY_LENGTH) and len(BY_LENGTH[i]) < n:
            i += 1
        FIRST[n] = i


_init_known()


cdef inline object _known(const unsigned char *lowered, Py_ssize_t n):
    """The KNOWN_NAMES str equal to lowered[:n] (a borrowed reference), or None."""
    cdef Py_ssize_t i
    cdef object name
    if n > MAX_KNOWN:
        return None
    for i in range(FIRST[n], FIRST[n + 1]):
        name = <object>PyTuple_GET_ITEM(BY_LENGTH, i)
        if memcmp(PyUnicode_DATA(name), lowered, n) == 0:
            return name
    return None


cdef inline bint _is(const unsigned char *p, Py_ssize_t n, const char *lit, Py_ssize_t k):
    return n == k and memcmp(p, lit, k) == 0


cdef object _method(const unsigned char *p, Py_ssize_t n):
    if _is(p, n, b"GET", 3):
        return S_GET
    if _is(p, n, b"POST", 4):
        return S_POST
    if _is(p, n, b"OPTIONS", 7):
        return S_OPTIONS
    if _is(p, n, b"HEAD", 4):
        return S_HEAD
    if _is(p, n, b"PUT", 3):
        return S_PUT
    if _is(p, n, b"DELETE", 6):
        return S_DELETE
    if _is(p, n, b"PATCH", 5):
        return S_PATCH
    return None


cdef inline unsigned char _lower(unsigned char c):
    return c + 32 if 65 <= c <= 90 else c


cdef bint _ieq(const unsigned char *p, Py_ssize_t n, const char *lit, Py_ssize_t k):
    """p[:n] equals the lower-case literal, ignoring case."""
    cdef Py_ssize_t i
    if n != k:
        return False
    for i in range(n):
        if _lower(p[i]) != <unsigned char>lit[i]:
            return False
    return True


cdef bint _method_prefix(const unsigned char *p, Py_ssize_t n):
    """p[:n] begins one of the methods read here."""
    cdef const char *m
    for m in (b"GET", b"POST", b"OPTIONS", b"HEAD", b"PUT", b"DELETE", b"PATCH"):
        if n <= <Py_ssize_t>len(m) and memcmp(p, m, n) == 0:
            return True
    return False


cdef bint _plausible(const unsigned char *p, Py_ssize_t n):
    """p[:n] (no blank line yet) may still become a plain request: no control
    byte but tab, every LF after a CR and every CR before an LF (or last), and a
    known method (or the start of one)."""
    cdef Py_ssize_t i, end = n
    cdef unsigned char c
    for i in range(n):
        c = p[i]
        if c < 32 or c == 127:
            if c == 10:
                if i == 0 or p[i - 1] != 13:
                    return False
            elif c == 13:
                if i + 1 < n and p[i + 1] != 10:
                    return False
            elif c != 9:
                return False
        if end == n and (c == 32 or c == 13 or c == 10):
            end = i
    if end < n:
        return p[end] == 32 and _method(p, end) is not None
    return _method_prefix(p, n)


def parse_request(bytes buf, Py_ssize_t start, Py_ssize_t max_target,
                  Py_ssize_t max_headers, Py_ssize_t max_body):
    cdef const unsigned char *base = <const unsigned char *>PyBytes_AS_STRING(buf)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(buf)
    cdef const unsigned char *p
    cdef const unsigned char *found
    cdef Py_ssize_t stop, i, j, line_end, name_start, name_len, value_start, size = 0
    cdef Py_ssize_t length = -1, host_lines = 0, k, target_start, target_len, end
    cdef PyObject *found_old
    cdef bint keep_alive
    cdef int connection = 0  # 1 close, 2 keep-alive
    cdef unsigned char lowered[MAX_NAME]
    cdef object method, version, old, known
    cdef str name, text
    cdef dict headers
    if start < 0 or start > n:
        return FALLBACK
    found = <const unsigned char *>memmem(base + start, <size_t>(n - start), b"\r\n\r\n", 4)
    if found == NULL:
        return NEED_MORE if _plausible(base + start, n - start) else FALLBACK
    stop = found - base
    p = base
    # Request line: METHOD SP target SP HTTP/1.x CRLF
    i = start
    while i < stop and p[i] != 32:
        i += 1
    method = _method(p + start, i - start)
    if method is None or i >= stop:
        return FALLBACK
    i += 1
    if i >= stop or p[i] != 47:  # origin-form only ("/..."); the rest is rare
        return FALLBACK
    j = i
    while j < stop and CLASS[p[j]] & 4:
        j += 1
    if j == i or j >= stop or p[j] != 32 or j - i > max_target:
        return FALLBACK
    target_start = i
    target_len = j - i
    i = j + 1
    if stop - i < 8 or memcmp(p + i, b"HTTP/1.", 7) != 0:
        return FALLBACK
    if p[i + 7] == 49:
        version = V11
    elif p[i + 7] == 48:
        version = V10
    else:
        return FALLBACK
    i += 8
    if i != stop and (i + 1 >= stop or p[i] != 13 or p[i + 1] != 10):
        return FALLBACK
    headers = {}
    # Header lines: i is at the CRLF that ends the previous line (or at stop).
    while i < stop:
        i += 2
        name_start = i
        while i < stop and CLASS[p[i]] & 1:
            i += 1
        name_len = i - name_start
        if name_len == 0 or i >= stop or p[i] != 58 or name_len > MAX_NAME:
            return FALLBACK
        i += 1
        while i < stop and (p[i] == 32 or p[i] == 9):
            i += 1
        value_start = i
        while i < stop and CLASS[p[i]] & 2:
            i += 1
        if i < stop and (p[i] != 13 or i + 1 >= stop or p[i + 1] != 10):
            return FALLBACK  # a bare CR or LF, or another control byte
        line_end = i
        size += name_len + (line_end - value_start) + 4
        if size > max_headers:
            return FALLBACK
        for k in range(name_len):
            lowered[k] = _lower(p[name_start + k])
        # What only decides framing is checked before any string is made.
        if _is(lowered, name_len, b"content-length", 14):
            k = line_end - value_start
            if length >= 0 or k == 0 or k > MAX_DIGITS:
                return FALLBACK
            length = 0
            for j in range(value_start, line_end):
                if not 48 <= p[j] <= 57:
                    return FALLBACK
                length = length * 10 + (p[j] - 48)
            if length > max_body:
                return FALLBACK
        elif _is(lowered, name_len, b"connection", 10):
            if connection:
                return FALLBACK
            if _ieq(p + value_start, line_end - value_start, b"close", 5):
                connection = 1
            elif _ieq(p + value_start, line_end - value_start, b"keep-alive", 10):
                connection = 2
            else:
                return FALLBACK
        elif (_is(lowered, name_len, b"transfer-encoding", 17)
              or _is(lowered, name_len, b"upgrade", 7)):
            return FALLBACK
        if _is(lowered, name_len, b"host", 4):
            host_lines += 1
            name = H_HOST
        else:
            known = _known(lowered, name_len)
            if known is not None:
                name = <str>known
            else:
                name = PyUnicode_DecodeLatin1(<const char *>lowered, name_len, NULL)
        text = PyUnicode_DecodeLatin1(<const char *>(p + value_start), line_end - value_start, NULL)
        found_old = PyDict_GetItem(headers, name)
        if found_old == NULL:
            PyDict_SetItem(headers, name, text)
        else:
            old = <object>found_old
            PyDict_SetItem(headers, name, old + SEP + text)
        i = line_end
    if version is V11:
        keep_alive = connection != 1
    else:
        keep_alive = connection == 2
    end = stop + 4 + (length if length > 0 else 0)
    if end > stop + 4 and end <= n:
        body = buf[stop + 4:end]
    else:
        body = b""
    target = PyUnicode_DecodeLatin1(<const char *>(p + target_start), target_len, NULL)
    return end, method, target, version, headers, host_lines, keep_alive, body


cdef dict STATUS_LINES = {
    s.value: ("HTTP/1.1 %d %s\r\n" % (s.value, s.phrase)).encode("latin-1") for s in HTTPStatus
}
cdef bytes CHUNKED = b"Transfer-Encoding: chunked\r\n"
cdef bytes CLOSE = b"Connection: close\r\n"
cdef bytes KEEP_ALIVE = b"Connection: keep-alive\r\n"


cdef inline bint _latin1(object s):
    return type(s) is str and PyUnicode_KIND(s) == PyUnicode_1BYTE_KIND


cdef inline char *_put(char *out, object s):
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(s)
    memcpy(out, PyUnicode_DATA(s), n)
    return out + n


def head(int status, headers, *, str version="1.1", content_length=None,
         bint chunked=False, bint keep_alive=True):
    cdef object line = STATUS_LINES.get(status)
    cdef list items = headers if type(headers) is list else list(headers)
    cdef Py_ssize_t total, i, n = len(items)
    cdef object item, k, v
    cdef bytes length = None, framing = None, connection = None, out
    cdef char *w
    if line is None:
        line = ("HTTP/1.1 %d Unknown\r\n" % status).encode("latin-1")
    total = PyBytes_GET_SIZE(line) + 2
    for i in range(n):
        item = items[i]
        if type(item) is not tuple or PyTuple_GET_SIZE(item) != 2:
            return _twin.head(status, items, version=version, content_length=content_length,
                              chunked=chunked, keep_alive=keep_alive)
        k = <object>PyTuple_GET_ITEM(item, 0)
        v = <object>PyTuple_GET_ITEM(item, 1)
        if not (_latin1(k) and _latin1(v)):
            return _twin.head(status, items, version=version, content_length=content_length,
                              chunked=chunked, keep_alive=keep_alive)
        total += PyUnicode_GET_LENGTH(k) + PyUnicode_GET_LENGTH(v) + 4
    if content_length is not None:
        length = b"Content-Length: %d\r\n" % content_length
        total += PyBytes_GET_SIZE(length)
    elif chunked:
        framing = CHUNKED
        total += PyBytes_GET_SIZE(framing)
    if not keep_alive:
        connection = CLOSE
    elif version == "1.0":
        connection = KEEP_ALIVE
    if connection is not None:
        total += PyBytes_GET_SIZE(connection)
    out = PyBytes_FromStringAndSize(NULL, total)
    w = PyBytes_AS_STRING(out)
    memcpy(w, PyBytes_AS_STRING(line), PyBytes_GET_SIZE(line))
    w += PyBytes_GET_SIZE(line)
    for i in range(n):
        item = items[i]
        w = _put(w, <object>PyTuple_GET_ITEM(item, 0))
        w[0] = 58  # ": "
        w[1] = 32
        w = _put(w + 2, <object>PyTuple_GET_ITEM(item, 1))
        w[0] = 13
        w[1] = 10
        w += 2
    for extra in (length, framing, connection):
        if extra is not None:
            memcpy(w, PyBytes_AS_STRING(extra), PyBytes_GET_SIZE(extra))
            w += PyBytes_GET_SIZE(extra)
    w[0] = 13
    w[1] = 10
    return out
