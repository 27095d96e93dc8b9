# Compiles _connection_py.py (pure-Python mode) into fastsockjs.aio._connection
# (Cython finds this file by the name of the module it builds):
# both classes become cdef classes. Every attribute the module sets is declared
# here (a compiled instance has no __dict__); "public" keeps it readable and
# writable from Python (the listener, the WebSocket, tests). The cpdef methods
# are the per-request ones: called from inside the module they are C calls.

cdef class HttpProtocol:
    cdef public object listener
    cdef public object loop
    cdef public object transport
    cdef public object parser
    cdef public object remote
    cdef public object forwarded
    cdef public object ws
    cdef public object endpoint
    cdef public bint write_paused
    cdef public bint closed
    cdef public object _url
    cdef public object _headers
    cdef public object _body
    cdef public Py_ssize_t _body_size
    cdef public bint _too_big
    cdef public object _queue
    cdef public object _active
    cdef public object _tail
    cdef public bint _upgraded
    cdef public bint _discard_tail
    cdef public bint _lingering
    cdef public bint _reading_paused
    cdef public Py_ssize_t _header_bytes
    cdef public int _host_lines
    cdef public object _valid_host
    cdef public object _reject
    cdef public object _deadline
    cdef public int _deadline_kind
    cdef public object _linger
    cdef public object _fast
    cdef public list _pending
    cdef public Py_ssize_t _pending_size
    cdef public Py_ssize_t _need
    cdef public int _head_reads
    cdef object __weakref__

    cpdef send(self, data)
    cpdef _set_deadline(self, int kind, double delay)
    cpdef clear_deadline(self)
    cpdef _read_fast(self, data)
    cpdef _complete(self, method, url, version, headers, int host_lines, keep_alive, body,
                    upgrade=*)
    cpdef _next(self)
    cpdef _finished(self, Exchange exchange, keep_alive)


cdef class Exchange:
    cdef public HttpProtocol proto
    cdef public object request
    cdef public bint done
    cdef public bint chunked
    cdef public bint keep_alive
    cdef public int status
    cdef public double started
    cdef public bytes _head
    cdef public object _owner
    cdef public bint _streaming

    cpdef respond(self, int status, headers, body=*)
    cpdef write(self, data)
    cpdef end(self, last=*)
