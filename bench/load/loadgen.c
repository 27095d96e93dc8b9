/*
 * loadgen.c - the load generator of fastsockjs's server benchmark (bench/load).
 *
 * One single-threaded epoll loop drives every client connection: non-blocking
 * sockets, WebSocket frames masked in place, every frame queued for a socket
 * during one epoll round handed to the kernel in one write(). The benchmark
 * driver (bench/load/__main__.py) compiles it with the system C compiler and
 * runs it pinned to its own core; it prints one JSON object on stdout.
 *
 * Modes
 *   ws-echo       closed loop: each of --conns WebSocket sessions keeps
 *                 --inflight messages in flight (a new one per echo received)
 *   ws-rate       open loop: --rate messages/s spread over --conns sessions;
 *                 latency is measured from the *scheduled* send time, so a
 *                 stalled server cannot hide its queueing (no coordinated omission)
 *   ws-broadcast  --conns sessions on a broadcast service; conns[0] publishes,
 *                 keeping --inflight messages in flight: the next one leaves when
 *                 every session (the publisher too) has received an earlier one
 *   ws-idle       open --conns sessions, one echo each, then read the server's RSS
 *   xhr-stream    --conns sessions, each an xhr_streaming receiver plus an
 *                 xhr_send connection posting --batch messages per request while
 *                 fewer than --inflight messages are in flight
 *   xhr-poll      the same with xhr (polling) receivers
 *   es-stream     as xhr-stream with eventsource receivers (GET, data: <frame>)
 *   htmlfile-stream  as xhr-stream with htmlfile receivers (GET ?c=, p("<frame>"))
 *   jsonp-poll    as xhr-poll with jsonp receivers (GET ?c=) and jsonp_send posts
 *                 (a d=<urlencoded JSON> form, as sockjs-client sends it)
 *
 * Messages are 32 ASCII bytes: 16 hex digits of the send time (CLOCK_MONOTONIC
 * ns), then 8 + 8 hex digits (connection, sequence). A message is counted when
 * the client receives it, whether alone in a frame or coalesced in a["m1","m2"].
 * With --raw 1 (a plain WebSocket echo server) the frame payload is the message.
 *
 * Counters are taken over the measurement window only (after --warmup), along
 * with the generator's own CPU time (getrusage) and the server's, user and
 * kernel apart (utime and stime in clock ticks from /proc/PID/stat, read at the
 * window's edges). Latencies also come as a histogram of 16 buckets per octave
 * ("lat_hist": [[k, count], ...], bucket k holding [2^(k/16), 2^((k+1)/16)) ns)
 * so runs can be pooled.
 *
 * With --tls 1 every connection speaks TLS (OpenSSL, the system's libssl):
 * after the TCP connect, a non-blocking client handshake (TLS 1.2 or 1.3, the
 * library's default ciphers; --tls-ca FILE verifies the server's certificate
 * for 127.0.0.1 against that CA), then the same requests and frames through
 * SSL_write/SSL_read. Everything queued for a connection in one epoll round
 * still leaves in one SSL_write (one TLS record, one write() while it fits in
 * 16 KiB). The handshakes are part of the connect phase, not of the window.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/* ---------------------------------------------------------------- options */

enum { M_ECHO, M_RATE, M_BCAST, M_IDLE, M_XSTREAM, M_XPOLL };

/* HTTP transports: how receivers ask and how their bodies frame, how senders post */
enum { RT_XHR, RT_XHRS, RT_ES, RT_HTML, RT_JSONP };
enum { ST_XHR, ST_JSONP };

static int mode = M_ECHO;
static int rtrans = RT_XHRS, strans = ST_XHR;
static const char *mode_name = "ws-echo";
static int port = 0;
static const char *prefix = "/echo";
static int raw = 0;
static int nunits = 1;           /* WebSocket connections, or xhr sessions */
static int inflight = 8;
static double rate = 10000.0;
static double warmup = 1.0, duration = 3.0, hold = 0.5, timeout_s = 60.0;
static int server_pid = 0;
static int concurrency = 256;    /* connection handshakes in progress at once */
static int batch = 16;           /* messages per xhr_send */
static int refill = 1;           /* ws-echo: echoes collected per session before refilling */
static size_t latcap = 16u << 20;
static int use_tls = 0;          /* --tls 1: every connection over TLS */
static const char *tls_ca = NULL; /* --tls-ca FILE: verify the server against it */
static SSL_CTX *tls_ctx;

/* ---------------------------------------------------------------- buffers */

typedef struct {
    uint8_t *p;
    size_t off, len, cap; /* data is p[off..len) */
} buf_t;

static void buf_reserve(buf_t *b, size_t extra) {
    if (b->off == b->len) b->off = b->len = 0;
    if (b->cap - b->len >= extra) return;
    if (b->off) {
        memmove(b->p, b->p + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        if (b->cap - b->len >= extra) return;
    }
    size_t nc = b->cap ? b->cap * 2 : 4096;
    while (nc - b->len < extra) nc *= 2;
    b->p = realloc(b->p, nc);
    if (!b->p) { perror("realloc"); exit(3); }
    b->cap = nc;
}

static void buf_put(buf_t *b, const void *d, size_t n) {
    buf_reserve(b, n);
    memcpy(b->p + b->len, d, n);
    b->len += n;
}

/* ---------------------------------------------------------------- state */

enum { K_WS, K_HRECV, K_HSEND };
enum { S_IDLE, S_CONNECTING, S_TLS, S_HANDSHAKE, S_WSOPEN, S_READY, S_CLOSED };
enum { HS_HEAD, HS_CL, HS_CSIZE, HS_CDATA, HS_CCRLF, HS_CTRAILER, HS_EOF };

struct sess;

typedef struct conn {
    int fd, idx, kind, state;
    SSL *ssl; /* with --tls 1, once the TCP connect is done */
    int epout, dirty, counted, echoed;
    buf_t in, out, line;
    uint8_t mask[4];
    uint32_t seq;
    int pending;
    struct sess *s;
    /* HTTP response parsing */
    int hs, status, chunked, closing;
    long long left;
} conn_t;

typedef struct sess {
    conn_t *rc, *sc;
    char sid[24];
    int opened, busy;
    uint64_t sent, recvd;
} sess_t;

static conn_t *conns;
static int nconns;
static sess_t *sessions;
static int ep;
static conn_t **dirty;
static int ndirty;

static uint64_t t_begin;
static int phase;
enum { PH_CONNECT, PH_WARMUP, PH_MEASURE, PH_IDLE_WAIT, PH_HOLD, PH_DONE };
static int measuring;
static int started_units, ready_units;
static uint64_t t_ready;

static uint64_t recv_msgs, sent_msgs, frames_recv, http_sends, http_recvs;
static uint64_t errors, closed_conns, reconnects, idle_echoed;
static uint64_t n_reads, n_writes, n_waits;
static uint32_t *lat;
static size_t nlat;
static uint64_t lat_dropped;

/* broadcast */
#define RING 4096
static uint32_t ring_cnt[RING];
static uint64_t ring_ts[RING];
static uint64_t bc_sent, bc_done;

/* rate */
static int tfd = -1;
static uint64_t rate_t0, rate_sent;

static char hostport[64];
static const char HEX[] = "0123456789abcdef";
static int8_t UNHEX[256];

static inline uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double cpu_self(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* The server's utime and stime in clock ticks (all its threads); 0 on success. */
static int server_ticks(unsigned long long *ut, unsigned long long *st) {
    *ut = *st = 0;
    if (!server_pid) return -1;
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", server_pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    p += 2; /* field 3: state */
    int field = 3;
    while (*p && field < 14) {
        if (*p == ' ') field++;
        p++;
    }
    return sscanf(p, "%llu %llu", ut, st) == 2 ? 0 : -1;
}

static double cpu_server(void) {
    unsigned long long ut, st;
    if (server_ticks(&ut, &st) < 0) return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Busy and total jiffies of one core from /proc/stat (softirq included: on loopback
 * the kernel does much of a socket's work there, outside the process's own times). */
static int server_core = -1, gen_core = -1;

static void core_times(int core, unsigned long long *busy, unsigned long long *total) {
    *busy = *total = 0;
    if (core < 0) return;
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return;
    char line[512], want[16];
    int wl = snprintf(want, sizeof want, "cpu%d ", core);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, want, (size_t)wl)) continue;
        unsigned long long v[10] = {0};
        sscanf(line + wl, "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
               &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]);
        for (int i = 0; i < 8; i++) *total += v[i]; /* guest time is already in user */
        *busy = *total - v[3] - v[4];
        break;
    }
    fclose(f);
}

/* Seconds a task spent runnable but waiting for a CPU (/proc/PID/schedstat, field 2):
 * on a shared machine, the time other processes took from it. */
static double runq_wait(int pid) {
    char path[64];
    if (pid) snprintf(path, sizeof path, "/proc/%d/schedstat", pid);
    else snprintf(path, sizeof path, "/proc/self/schedstat");
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    unsigned long long run = 0, wait = 0;
    int n = fscanf(f, "%llu %llu", &run, &wait);
    fclose(f);
    return n == 2 ? wait / 1e9 : -1;
}

static long rss_server_kb(void) {
    if (!server_pid) return -1;
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", server_pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) { kb = atol(line + 6); break; }
    fclose(f);
    return kb;
}

/* ---------------------------------------------------------------- I/O helpers */

static void conn_fail(conn_t *c, const char *why);
static void try_send(sess_t *s);

static void ep_mod(conn_t *c, int out) {
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->epout = out;
}

static void mark_dirty(conn_t *c) {
    if (!c->dirty) {
        c->dirty = 1;
        dirty[ndirty++] = c;
    }
}

static void flush_tls(conn_t *c);

static void flush_conn(conn_t *c) {
    buf_t *b = &c->out;
    if (c->ssl) {
        flush_tls(c);
        return;
    }
    while (b->len > b->off) {
        ssize_t n = write(c->fd, b->p + b->off, b->len - b->off);
        n_writes++;
        if (n > 0) {
            b->off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            if (!c->epout) ep_mod(c, 1);
            return;
        } else {
            conn_fail(c, "write");
            return;
        }
    }
    b->off = b->len = 0;
    if (c->epout) ep_mod(c, 0);
}

/* c->out through SSL_write. A write that must be repeated is repeated with the same
 * bytes at the front (the buffer only grows at its end and may move: the SSL modes
 * set in tls_init allow both). */
static void flush_tls(conn_t *c) {
    buf_t *b = &c->out;
    while (b->len > b->off) {
        size_t len = b->len - b->off;
        int n = SSL_write(c->ssl, b->p + b->off, len > 1u << 30 ? 1 << 30 : (int)len);
        n_writes++;
        if (n > 0) {
            b->off += (size_t)n;
            continue;
        }
        int err = SSL_get_error(c->ssl, n);
        if (err == SSL_ERROR_WANT_WRITE) {
            if (!c->epout) ep_mod(c, 1);
            return;
        }
        if (err == SSL_ERROR_WANT_READ) return; /* retried after the next read */
        conn_fail(c, "tls write");
        return;
    }
    b->off = b->len = 0;
    if (c->epout) ep_mod(c, 0);
}

static void flush_dirty(void) {
    for (int i = 0; i < ndirty; i++) {
        conn_t *c = dirty[i];
        c->dirty = 0;
        if (c->state != S_CLOSED && c->state != S_CONNECTING && c->state != S_TLS && !c->epout)
            flush_conn(c);
    }
    ndirty = 0;
}

static inline void hexn(char *d, uint64_t v, int n) {
    for (int i = n - 1; i >= 0; i--) {
        d[i] = HEX[v & 15];
        v >>= 4;
    }
}

static inline int unhexn(const char *s, int n, uint64_t *out) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) {
        int d = UNHEX[(uint8_t)s[i]];
        if (d < 0) return -1;
        v = (v << 4) | (uint64_t)d;
    }
    *out = v;
    return 0;
}

static inline void make_msg(char *m, uint64_t ts, uint32_t a, uint32_t b) {
    hexn(m, ts, 16);
    hexn(m + 16, a, 8);
    hexn(m + 24, b, 8);
}

/* One masked text frame into c->out. */
static void ws_send_payload(conn_t *c, const char *pl, size_t n) {
    buf_reserve(&c->out, n + 14);
    uint8_t *o = c->out.p + c->out.len;
    size_t h;
    o[0] = 0x81;
    if (n < 126) {
        o[1] = (uint8_t)(0x80 | n);
        h = 2;
    } else if (n < 65536) {
        o[1] = 0x80 | 126;
        o[2] = (uint8_t)(n >> 8);
        o[3] = (uint8_t)n;
        h = 4;
    } else {
        o[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++) o[2 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
        h = 10;
    }
    memcpy(o + h, c->mask, 4);
    h += 4;
    for (size_t i = 0; i < n; i++) o[h + i] = (uint8_t)pl[i] ^ c->mask[i & 3];
    c->out.len += h + n;
    mark_dirty(c);
}

static void ws_send_msg(conn_t *c, uint64_t ts, uint32_t a, uint32_t b) {
    char p[40];
    if (raw) {
        make_msg(p, ts, a, b);
        ws_send_payload(c, p, 32);
    } else {
        p[0] = '[';
        p[1] = '"';
        make_msg(p + 2, ts, a, b);
        p[34] = '"';
        p[35] = ']';
        ws_send_payload(c, p, 36);
    }
    sent_msgs++;
}

static inline void record_lat(uint64_t now, uint64_t ts) {
    if (!measuring) return;
    uint64_t d = now > ts ? now - ts : 0;
    if (d > 0xFFFFFFFFull) d = 0xFFFFFFFFull;
    if (nlat < latcap) lat[nlat++] = (uint32_t)d;
    else lat_dropped++;
}

/* ---------------------------------------------------------------- connecting */

static void start_conn(conn_t *c) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) { perror("socket"); exit(3); }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    if (r < 0 && errno != EINPROGRESS) {
        fprintf(stderr, "loadgen: connect: %s\n", strerror(errno));
        close(fd);
        c->state = S_CLOSED;
        errors++;
        return;
    }
    c->fd = fd;
    c->state = S_CONNECTING;
    c->in.off = c->in.len = 0;
    c->out.off = c->out.len = 0;
    c->line.off = c->line.len = 0;
    c->hs = HS_HEAD;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    c->epout = 1;
}

static void ws_path(conn_t *c, char *out, size_t n) {
    if (raw) snprintf(out, n, "%s", prefix);
    else snprintf(out, n, "%s/%03d/ws%08x%08x/websocket", prefix, c->idx % 1000, c->idx, (unsigned)rand());
}

static void http_request(conn_t *c, const char *what, const char *ctype, const char *body,
                         size_t blen) {
    char head[512];
    int n = snprintf(head, sizeof head,
                     "POST %s/%03d/%s/%s HTTP/1.1\r\nHost: %s\r\n"
                     "Content-Type: %s\r\nContent-Length: %zu\r\n\r\n",
                     prefix, (int)(c->s - sessions) % 1000, c->s->sid, what, hostport, ctype, blen);
    buf_put(&c->out, head, (size_t)n);
    if (blen) buf_put(&c->out, body, blen);
    mark_dirty(c);
}

static void http_get(conn_t *c, const char *what) {
    char head[512];
    int n = snprintf(head, sizeof head, "GET %s/%03d/%s/%s HTTP/1.1\r\nHost: %s\r\n\r\n",
                     prefix, (int)(c->s - sessions) % 1000, c->s->sid, what, hostport);
    buf_put(&c->out, head, (size_t)n);
    mark_dirty(c);
}

static void recv_request(conn_t *c) {
    char what[64];
    switch (rtrans) {
    case RT_XHR:
        http_request(c, "xhr", "text/plain;charset=UTF-8", NULL, 0);
        break;
    case RT_XHRS:
        http_request(c, "xhr_streaming", "text/plain;charset=UTF-8", NULL, 0);
        break;
    case RT_ES:
        http_get(c, "eventsource");
        break;
    case RT_HTML: /* a callback name like sockjs-client's */
        snprintf(what, sizeof what, "htmlfile?c=_jp.a%06d", (int)(c->s - sessions));
        http_get(c, what);
        break;
    case RT_JSONP:
        snprintf(what, sizeof what, "jsonp?c=_jp.a%06d", (int)(c->s - sessions));
        http_get(c, what);
        break;
    }
}

static void on_connected(conn_t *c);

/* One step of the client TLS handshake; on_connected once it is done. */
static void tls_step(conn_t *c) {
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        if (c->epout) ep_mod(c, 0);
        on_connected(c);
        return;
    }
    int err = SSL_get_error(c->ssl, r);
    if (err == SSL_ERROR_WANT_READ) {
        if (c->epout) ep_mod(c, 0);
    } else if (err == SSL_ERROR_WANT_WRITE) {
        if (!c->epout) ep_mod(c, 1);
    } else {
        char why[160];
        unsigned long e = ERR_get_error();
        snprintf(why, sizeof why, "tls handshake: %s", e ? ERR_error_string(e, NULL) : "closed");
        ERR_clear_error();
        conn_fail(c, why);
    }
}

static void tls_start(conn_t *c) {
    c->ssl = SSL_new(tls_ctx);
    if (!c->ssl || !SSL_set_fd(c->ssl, c->fd)) {
        fprintf(stderr, "loadgen: SSL_new failed\n");
        exit(3);
    }
    if (tls_ca) X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), "127.0.0.1");
    SSL_set_connect_state(c->ssl);
    c->state = S_TLS;
    tls_step(c);
}

static void tls_init(void) {
    tls_ctx = SSL_CTX_new(TLS_client_method());
    if (!tls_ctx) { fprintf(stderr, "loadgen: SSL_CTX_new failed\n"); exit(3); }
    SSL_CTX_set_min_proto_version(tls_ctx, TLS1_2_VERSION);
    /* SSL_write may return having written part of the buffer, and be retried with
     * the buffer moved (buf_reserve) and grown; an EOF without close_notify reads
     * as an EOF (the HTTP modes reconnect on it) */
    SSL_CTX_set_mode(tls_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    SSL_CTX_set_options(tls_ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(tls_ctx, alpn, sizeof alpn - 1);
    if (tls_ca) {
        if (SSL_CTX_load_verify_locations(tls_ctx, tls_ca, NULL) != 1) {
            fprintf(stderr, "loadgen: cannot load --tls-ca %s\n", tls_ca);
            exit(2);
        }
        SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL);
    }
}

static void on_connected(conn_t *c) {
    c->state = S_HANDSHAKE;
    if (c->kind == K_WS) {
        char path[256], req[768];
        ws_path(c, path, sizeof path);
        int n = snprintf(req, sizeof req,
                         "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                         "Sec-WebSocket-Version: 13\r\n\r\n",
                         path, hostport);
        buf_put(&c->out, req, (size_t)n);
        mark_dirty(c);
    } else if (c->kind == K_HRECV) {
        c->state = S_READY;
        recv_request(c);
    } else {
        c->state = S_READY;
        try_send(c->s);
    }
}

static void unit_ready(void) {
    ready_units++;
    if (ready_units == nunits) t_ready = now_ns();
}

/* ---------------------------------------------------------------- workload */

static void bc_publish(uint64_t now) {
    uint64_t seq = bc_sent++;
    ring_ts[seq % RING] = now;
    ring_cnt[seq % RING] = 0;
    ws_send_msg(&conns[0], now, 0, (uint32_t)seq);
}

/* One message (32 bytes) received on c. */
static void on_msg(conn_t *c, const char *m, size_t n, uint64_t now) {
    recv_msgs++;
    uint64_t ts = 0, seq = 0;
    if (n < 32 || unhexn(m, 16, &ts) < 0) return;
    switch (mode) {
    case M_ECHO:
        record_lat(now, ts);
        if (++c->pending >= refill) {
            for (; c->pending > 0; c->pending--) ws_send_msg(c, now, (uint32_t)c->idx, ++c->seq);
        }
        break;
    case M_RATE:
        record_lat(now, ts);
        break;
    case M_IDLE:
        if (!c->echoed) { c->echoed = 1; idle_echoed++; }
        break;
    case M_BCAST:
        if (unhexn(m + 24, 8, &seq) < 0) return;
        {
            uint32_t slot = (uint32_t)(seq % RING);
            if (++ring_cnt[slot] == (uint32_t)nconns) {
                record_lat(now, ring_ts[slot]);
                bc_done++;
                if (phase != PH_DONE) bc_publish(now);
            }
        }
        break;
    case M_XSTREAM:
    case M_XPOLL:
        record_lat(now, ts);
        c->s->recvd++;
        break;
    }
}

/* Messages of one a[...] frame (our messages need no escapes). */
static void on_array(conn_t *c, const char *p, size_t n, uint64_t now) {
    size_t i = 1;
    while (i < n) {
        const char *q = memchr(p + i, '"', n - i);
        if (!q) break;
        size_t start = (size_t)(q - p) + 1;
        const char *e = memchr(p + start, '"', n - start);
        if (!e) break;
        on_msg(c, p + start, (size_t)(e - (p + start)), now);
        i = (size_t)(e - p) + 1;
    }
}

/* One SockJS frame (o, h, a[...], c[...]) received on c. */
static void on_sockjs_frame(conn_t *c, const char *p, size_t n, uint64_t now) {
    if (!n) return;
    switch (p[0]) {
    case 'o':
        if (c->kind == K_WS) {
            if (c->state != S_READY) {
                c->state = S_READY;
                unit_ready();
            }
        } else if (!c->s->opened) {
            c->s->opened = 1;
            unit_ready();
        }
        break;
    case 'a':
        on_array(c, p + 1, n - 1, now);
        break;
    case 'h':
        break;
    case 'c':
        if (phase != PH_DONE) {
            fprintf(stderr, "loadgen: server closed a session: %.*s\n", (int)(n > 80 ? 80 : n), p);
            errors++;
        }
        break;
    default:
        errors++;
    }
}

static void ws_on_frame(conn_t *c, int op, const uint8_t *p, size_t n, uint64_t now) {
    frames_recv++;
    if (op == 1 || op == 2 || op == 0) {
        if (raw) {
            on_msg(c, (const char *)p, n, now);
        } else {
            on_sockjs_frame(c, (const char *)p, n, now);
        }
    } else if (op == 8) {
        if (phase != PH_DONE) {
            fprintf(stderr, "loadgen: server sent a close frame\n");
            errors++;
        }
    } else if (op == 9) { /* ping: answer with a masked pong */
        buf_reserve(&c->out, n + 6);
        uint8_t *o = c->out.p + c->out.len;
        o[0] = 0x8A;
        o[1] = (uint8_t)(0x80 | n);
        memcpy(o + 2, c->mask, 4);
        for (size_t i = 0; i < n; i++) o[6 + i] = p[i] ^ c->mask[i & 3];
        c->out.len += 6 + n;
        mark_dirty(c);
    }
}

static void ws_feed(conn_t *c, uint64_t now) {
    buf_t *b = &c->in;
    if (c->state == S_HANDSHAKE) {
        uint8_t *end = memmem(b->p + b->off, b->len - b->off, "\r\n\r\n", 4);
        if (!end) return;
        if (b->len - b->off < 12 || memcmp(b->p + b->off + 9, "101", 3) != 0) {
            fprintf(stderr, "loadgen: upgrade refused: %.40s\n", (char *)b->p + b->off);
            conn_fail(c, "upgrade");
            return;
        }
        b->off = (size_t)(end + 4 - b->p);
        c->state = S_WSOPEN;
        if (raw) {
            c->state = S_READY;
            unit_ready();
        }
    }
    while (b->len - b->off >= 2) {
        const uint8_t *p = b->p + b->off;
        size_t avail = b->len - b->off;
        int op = p[0] & 0x0F;
        uint64_t n = p[1] & 0x7F;
        size_t h = 2;
        if (n == 126) {
            if (avail < 4) break;
            n = ((uint64_t)p[2] << 8) | p[3];
            h = 4;
        } else if (n == 127) {
            if (avail < 10) break;
            n = 0;
            for (int i = 0; i < 8; i++) n = (n << 8) | p[2 + i];
            h = 10;
        }
        if (p[1] & 0x80) h += 4; /* servers do not mask; skip a key if one came */
        if (avail < h + n) break;
        b->off += h + (size_t)n;
        ws_on_frame(c, op, p + h, (size_t)n, now);
        if (c->state == S_CLOSED) return;
    }
}

/* ---------------------------------------------------------------- HTTP (xhr) */

/* A JS string literal's contents (between the quotes) unescaped into out; its length. */
static size_t js_unescape(const char *p, size_t n, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\\' || i + 1 == n) { out[o++] = p[i]; continue; }
        char e = p[++i];
        switch (e) {
        case 'n': out[o++] = '\n'; break;
        case 'r': out[o++] = '\r'; break;
        case 't': out[o++] = '\t'; break;
        case 'b': out[o++] = '\b'; break;
        case 'f': out[o++] = '\f'; break;
        case 'u': {
            uint64_t v = 0;
            if (i + 4 < n && unhexn(p + i + 1, 4, &v) == 0) {
                i += 4;
                if (v < 0x80) out[o++] = (char)v;
                else if (v < 0x800) {
                    out[o++] = (char)(0xC0 | (v >> 6));
                    out[o++] = (char)(0x80 | (v & 0x3F));
                } else {
                    out[o++] = (char)(0xE0 | (v >> 12));
                    out[o++] = (char)(0x80 | ((v >> 6) & 0x3F));
                    out[o++] = (char)(0x80 | (v & 0x3F));
                }
            }
            break;
        }
        default: out[o++] = e; /* \" \\ \/ */
        }
    }
    return o;
}

/* One line of a receiver's body (without its '\n'), framed as its transport frames. */
static void on_body_line(conn_t *c, const char *p, size_t n, uint64_t now) {
    switch (rtrans) {
    case RT_XHR:
    case RT_XHRS:
        on_sockjs_frame(c, p, n, now);
        return;
    case RT_ES: /* "data: <frame>\r"; the blank lines between events carry nothing */
        if (n && p[n - 1] == '\r') n--;
        if (n >= 6 && !memcmp(p, "data: ", 6)) on_sockjs_frame(c, p + 6, n - 6, now);
        return;
    case RT_HTML: /* p("<frame>"); */
    case RT_JSONP: { /* callback("<frame>");\r after a comment */
        const char *a = memmem(p, n, "(\"", 2);
        if (!a) return;
        a += 2;
        const char *e = p + n;
        while (e > a && !(e[-1] == '"' && e < p + n && e[0] == ')')) e--;
        if (e <= a) return;
        size_t len = (size_t)(e - 1 - a);
        char stackbuf[4096];
        char *out = len <= sizeof stackbuf ? stackbuf : malloc(len);
        if (!out) return;
        on_sockjs_frame(c, out, js_unescape(a, len, out), now);
        if (out != stackbuf) free(out);
        return;
    }
    }
}

static void http_body(conn_t *c, const uint8_t *p, size_t n, uint64_t now) {
    if (c->kind != K_HRECV) return;
    buf_t *l = &c->line;
    while (n) {
        const uint8_t *nl = memchr(p, '\n', n);
        if (!nl) {
            buf_put(l, p, n);
            return;
        }
        size_t k = (size_t)(nl - p);
        if (l->len > l->off) {
            buf_put(l, p, k);
            on_body_line(c, (const char *)l->p + l->off, l->len - l->off, now);
            l->off = l->len = 0;
        } else {
            on_body_line(c, (const char *)p, k, now);
        }
        p += k + 1;
        n -= k + 1;
    }
}

static void http_done(conn_t *c) {
    sess_t *s = c->s;
    if (c->kind == K_HRECV) {
        http_recvs++;
        if (c->status != 200) {
            fprintf(stderr, "loadgen: receiver got HTTP %d\n", c->status);
            errors++;
        }
        c->line.off = c->line.len = 0;
        if (!c->closing) recv_request(c);
    } else {
        http_sends++;
        if (c->status != 204 && c->status != 200) {
            fprintf(stderr, "loadgen: xhr_send got HTTP %d\n", c->status);
            errors++;
        }
        s->busy = 0;
    }
}

static void http_feed(conn_t *c, uint64_t now) {
    buf_t *b = &c->in;
    for (;;) {
        uint8_t *p = b->p + b->off;
        size_t avail = b->len - b->off;
        switch (c->hs) {
        case HS_HEAD: {
            if (!avail) return;
            uint8_t *end = memmem(p, avail, "\r\n\r\n", 4);
            if (!end) return;
            *end = 0; /* headers end; the byte was '\r' */
            c->status = avail > 12 ? atoi((char *)p + 9) : 0;
            c->chunked = 0;
            c->closing = 0;
            long long cl = -1;
            char *line = strstr((char *)p, "\r\n");
            while (line && *line) {
                line += 2;
                if (!strncasecmp(line, "content-length:", 15)) cl = atoll(line + 15);
                else if (!strncasecmp(line, "transfer-encoding:", 18)) {
                    char *e = strstr(line, "\r\n");
                    if (e) *e = 0;
                    if (strcasestr(line, "chunked")) c->chunked = 1;
                    if (e) *e = '\r';
                } else if (!strncasecmp(line, "connection:", 11)) {
                    char *e = strstr(line, "\r\n");
                    if (e) *e = 0;
                    if (strcasestr(line, "close")) c->closing = 1;
                    if (e) *e = '\r';
                }
                line = strstr(line, "\r\n");
            }
            b->off = (size_t)(end + 4 - b->p);
            if (c->status == 204 || c->status == 304 || c->status / 100 == 1 || (cl == 0 && !c->chunked)) {
                http_done(c);
                continue;
            }
            if (c->chunked) c->hs = HS_CSIZE;
            else if (cl > 0) { c->hs = HS_CL; c->left = cl; }
            else c->hs = HS_EOF;
            continue;
        }
        case HS_CL:
        case HS_CDATA: {
            if (!avail) return;
            size_t take = avail < (size_t)c->left ? avail : (size_t)c->left;
            b->off += take;
            c->left -= (long long)take;
            http_body(c, p, take, now);
            if (c->state == S_CLOSED) return;
            if (c->left == 0) {
                if (c->hs == HS_CL) {
                    c->hs = HS_HEAD;
                    http_done(c);
                } else {
                    c->hs = HS_CCRLF;
                }
            }
            continue;
        }
        case HS_CCRLF:
            if (avail < 2) return;
            b->off += 2;
            c->hs = HS_CSIZE;
            continue;
        case HS_CSIZE: {
            uint8_t *e = memmem(p, avail, "\r\n", 2);
            if (!e) return;
            long long size = strtoll((char *)p, NULL, 16);
            b->off = (size_t)(e + 2 - b->p);
            if (size == 0) c->hs = HS_CTRAILER;
            else { c->hs = HS_CDATA; c->left = size; }
            continue;
        }
        case HS_CTRAILER: {
            uint8_t *e = memmem(p, avail, "\r\n", 2);
            if (!e) return;
            b->off = (size_t)(e + 2 - b->p);
            if (e == p) {
                c->hs = HS_HEAD;
                http_done(c);
            }
            continue;
        }
        case HS_EOF:
            if (!avail) return;
            b->off += avail;
            http_body(c, p, avail, now);
            return;
        }
    }
}

static void try_send(sess_t *s) {
    if (!s->opened || s->busy || phase == PH_DONE || phase == PH_CONNECT) return;
    conn_t *sc = s->sc;
    if (sc->state != S_READY) return;
    if (s->sent - s->recvd + (uint64_t)batch > (uint64_t)inflight) return;
    char body[64 * 48 + 16];
    size_t n = 0;
    /* jsonp_send: the form a browser submits, d=<the JSON, urlencoded> */
    int form = strans == ST_JSONP;
    const char *lb = form ? "d=%5B" : "[", *rb = form ? "%5D" : "]";
    const char *q = form ? "%22" : "\"", *comma = form ? "%2C" : ",";
    size_t ql = strlen(q), cl = strlen(comma);
    memcpy(body + n, lb, strlen(lb));
    n += strlen(lb);
    uint64_t now = now_ns();
    for (int i = 0; i < batch; i++) {
        if (i) { memcpy(body + n, comma, cl); n += cl; }
        memcpy(body + n, q, ql);
        n += ql;
        make_msg(body + n, now, (uint32_t)(s - sessions), (uint32_t)(s->sent + (uint64_t)i));
        n += 32;
        memcpy(body + n, q, ql);
        n += ql;
    }
    memcpy(body + n, rb, strlen(rb));
    n += strlen(rb);
    s->busy = 1;
    s->sent += (uint64_t)batch;
    sent_msgs += (uint64_t)batch;
    if (form)
        http_request(sc, "jsonp_send", "application/x-www-form-urlencoded", body, n);
    else
        http_request(sc, "xhr_send", "text/plain;charset=UTF-8", body, n);
}

/* ---------------------------------------------------------------- events */

static void conn_fail(conn_t *c, const char *why) {
    if (c->state == S_CLOSED) return;
    int was_http_idle = c->kind != K_WS && c->hs == HS_HEAD && c->in.len == c->in.off;
    if (c->kind != K_WS && c->hs == HS_EOF) { /* body ended by the close */
        c->hs = HS_HEAD;
        c->closing = 1;
        http_done(c);
        was_http_idle = 1;
    }
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    if (c->ssl) { /* no close_notify: the server sees the TCP close, as without TLS */
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    close(c->fd);
    c->fd = -1;
    c->state = S_CLOSED;
    c->epout = 0;
    if (phase == PH_DONE) return;
    if (c->kind != K_WS && was_http_idle && (c->closing || !strcmp(why, "eof"))) {
        /* keep-alive ended by the server between requests: reconnect */
        reconnects++;
        c->closing = 0;
        start_conn(c);
        return;
    }
    closed_conns++;
    errors++;
    if (errors <= 5) fprintf(stderr, "loadgen: connection %d lost (%s)\n", c->idx, why);
}

/* Everything readable on a TLS connection into c->in; 0, or -1 once c is closed. */
static int read_tls(conn_t *c) {
    for (;;) {
        buf_reserve(&c->in, 65536);
        size_t space = c->in.cap - c->in.len;
        int n = SSL_read(c->ssl, c->in.p + c->in.len, space > 1u << 30 ? 1 << 30 : (int)space);
        n_reads++;
        if (n > 0) {
            c->in.len += (size_t)n;
            continue;
        }
        int err = SSL_get_error(c->ssl, n);
        if (err == SSL_ERROR_WANT_READ) break;
        if (err == SSL_ERROR_WANT_WRITE) { /* a post-handshake message to answer */
            if (!c->epout) ep_mod(c, 1);
            break;
        }
        conn_fail(c, err == SSL_ERROR_ZERO_RETURN ? "eof" : "tls read");
        return -1;
    }
    if (c->out.len > c->out.off) mark_dirty(c); /* a write that waited for this read */
    return 0;
}

static void on_readable(conn_t *c) {
    if (c->ssl) {
        if (read_tls(c) < 0) return;
        goto feed;
    }
    for (;;) {
        buf_reserve(&c->in, 65536);
        size_t space = c->in.cap - c->in.len;
        ssize_t n = read(c->fd, c->in.p + c->in.len, space);
        n_reads++;
        if (n > 0) {
            c->in.len += (size_t)n;
            if ((size_t)n < space) break; /* a short read drained the socket */
            continue;
        }
        if (n == 0) { conn_fail(c, "eof"); return; }
        if (errno == EINTR) continue;
        if (errno == EAGAIN) break;
        conn_fail(c, "read");
        return;
    }
feed:;
    uint64_t now = now_ns();
    if (c->kind == K_WS) ws_feed(c, now);
    else http_feed(c, now);
    if (c->kind != K_WS && c->state != S_CLOSED) try_send(c->s);
}

static void start_next_units(void) {
    while (started_units < nunits && started_units - ready_units < concurrency) {
        int u = started_units++;
        if (mode == M_XSTREAM || mode == M_XPOLL) {
            start_conn(sessions[u].rc);
            start_conn(sessions[u].sc);
        } else {
            start_conn(&conns[u]);
        }
    }
}

static void on_timer(void) {
    uint64_t exp;
    if (read(tfd, &exp, sizeof exp) < 0) return;
    if (phase != PH_WARMUP && phase != PH_MEASURE) return;
    uint64_t now = now_ns();
    uint64_t due = (uint64_t)((double)(now - rate_t0) * rate / 1e9);
    while (rate_sent < due) {
        conn_t *c = &conns[rate_sent % (uint64_t)nconns];
        uint64_t ts = rate_t0 + (uint64_t)((double)rate_sent * 1e9 / rate);
        ws_send_msg(c, ts, (uint32_t)c->idx, ++c->seq);
        rate_sent++;
    }
}

static void begin_workload(void) {
    uint64_t now = now_ns();
    switch (mode) {
    case M_ECHO:
        for (int i = 0; i < nconns; i++)
            for (int k = 0; k < inflight; k++) ws_send_msg(&conns[i], now, (uint32_t)i, ++conns[i].seq);
        break;
    case M_RATE: {
        tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        struct itimerspec its = {.it_interval = {0, 100000}, .it_value = {0, 100000}};
        timerfd_settime(tfd, 0, &its, NULL);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
        epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
        rate_t0 = now;
        break;
    }
    case M_BCAST:
        for (int k = 0; k < inflight; k++) bc_publish(now);
        break;
    case M_IDLE:
        for (int i = 0; i < nconns; i++) ws_send_msg(&conns[i], now, (uint32_t)i, 1);
        break;
    default:
        break;
    }
}

/* ---------------------------------------------------------------- main */

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(double q) {
    if (!nlat) return -1;
    size_t i = (size_t)(q * (double)(nlat - 1) + 0.5);
    return lat[i] / 1e6; /* ms */
}

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen --mode ws-echo|ws-rate|ws-broadcast|ws-idle|xhr-stream|xhr-poll|\n"
            "                     es-stream|htmlfile-stream|jsonp-poll\n"
            "  --port N --prefix /echo --raw 0|1 --conns N --inflight N --rate R --batch N\n"
            "  --warmup S --duration S --hold S --timeout S --pid SERVER_PID --concurrency N\n"
            "  --tls 0|1 --tls-ca CA.pem\n");
    exit(2);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i];
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (!strcmp(k, "--mode")) {
            mode_name = v;
            if (!strcmp(v, "ws-echo")) mode = M_ECHO;
            else if (!strcmp(v, "ws-rate")) mode = M_RATE;
            else if (!strcmp(v, "ws-broadcast")) mode = M_BCAST;
            else if (!strcmp(v, "ws-idle")) mode = M_IDLE;
            else if (!strcmp(v, "xhr-stream")) { mode = M_XSTREAM; rtrans = RT_XHRS; }
            else if (!strcmp(v, "xhr-poll")) { mode = M_XPOLL; rtrans = RT_XHR; }
            else if (!strcmp(v, "es-stream")) { mode = M_XSTREAM; rtrans = RT_ES; }
            else if (!strcmp(v, "htmlfile-stream")) { mode = M_XSTREAM; rtrans = RT_HTML; }
            else if (!strcmp(v, "jsonp-poll")) { mode = M_XPOLL; rtrans = RT_JSONP; strans = ST_JSONP; }
            else usage();
        } else if (!strcmp(k, "--port")) port = atoi(v);
        else if (!strcmp(k, "--prefix")) prefix = v;
        else if (!strcmp(k, "--raw")) raw = atoi(v);
        else if (!strcmp(k, "--conns")) nunits = atoi(v);
        else if (!strcmp(k, "--inflight")) inflight = atoi(v);
        else if (!strcmp(k, "--rate")) rate = atof(v);
        else if (!strcmp(k, "--batch")) batch = atoi(v);
        else if (!strcmp(k, "--refill")) refill = atoi(v);
        else if (!strcmp(k, "--warmup")) warmup = atof(v);
        else if (!strcmp(k, "--duration")) duration = atof(v);
        else if (!strcmp(k, "--hold")) hold = atof(v);
        else if (!strcmp(k, "--timeout")) timeout_s = atof(v);
        else if (!strcmp(k, "--pid")) server_pid = atoi(v);
        else if (!strcmp(k, "--server-core")) server_core = atoi(v);
        else if (!strcmp(k, "--gen-core")) gen_core = atoi(v);
        else if (!strcmp(k, "--concurrency")) concurrency = atoi(v);
        else if (!strcmp(k, "--tls")) use_tls = atoi(v);
        else if (!strcmp(k, "--tls-ca")) tls_ca = v;
        else usage();
    }
    if (!port || nunits < 1 || inflight < 1 || batch < 1 || batch > 64) usage();
    if (mode == M_BCAST && inflight >= RING) inflight = RING - 1;
    if (refill < 1) refill = 1;
    if (refill > inflight) refill = inflight;

    signal(SIGPIPE, SIG_IGN);
    if (use_tls) tls_init();
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    memset(UNHEX, -1, sizeof UNHEX);
    for (int i = 0; i < 16; i++) UNHEX[(uint8_t)HEX[i]] = (int8_t)i;
    snprintf(hostport, sizeof hostport, "127.0.0.1:%d", port);
    srand((unsigned)getpid() ^ (unsigned)now_ns());

    int xhr = mode == M_XSTREAM || mode == M_XPOLL;
    nconns = xhr ? 2 * nunits : nunits;
    conns = calloc((size_t)nconns, sizeof *conns);
    dirty = calloc((size_t)nconns + 1, sizeof *dirty);
    if (mode != M_IDLE) lat = malloc(latcap * sizeof *lat);
    for (int i = 0; i < nconns; i++) {
        conn_t *c = &conns[i];
        c->idx = i;
        c->fd = -1;
        c->kind = K_WS;
        uint32_t m = (uint32_t)rand() | 0x01010101u;
        memcpy(c->mask, &m, 4);
    }
    if (xhr) {
        sessions = calloc((size_t)nunits, sizeof *sessions);
        for (int u = 0; u < nunits; u++) {
            sess_t *s = &sessions[u];
            s->rc = &conns[2 * u];
            s->sc = &conns[2 * u + 1];
            s->rc->kind = K_HRECV;
            s->sc->kind = K_HSEND;
            s->rc->s = s->sc->s = s;
            snprintf(s->sid, sizeof s->sid, "x%08x%06d", (unsigned)rand(), u);
        }
        if (inflight < batch) inflight = batch;
    }

    ep = epoll_create1(EPOLL_CLOEXEC);
    long rss_before = rss_server_kb();
    t_begin = now_ns();
    uint64_t hard_stop = t_begin + (uint64_t)((timeout_s + warmup + duration + hold + 10) * 1e9);
    uint64_t connect_deadline = t_begin + (uint64_t)(timeout_s * 1e9);
    uint64_t t_phase_end = 0, t_meas0 = 0, t_meas1 = 0;
    double gen0 = 0, gen1 = 0, srv0 = 0, srv1 = 0;
    uint64_t r0 = 0, r1 = 0, f0 = 0, f1 = 0, hs0 = 0, hs1 = 0, hr0 = 0, hr1 = 0, b0 = 0, b1 = 0, e0 = 0;
    unsigned long long cb0[4] = {0, 0, 0, 0}, cb1[4] = {0, 0, 0, 0};
    double wq0[2] = {-1, -1}, wq1[2] = {-1, -1};
    uint64_t s0 = 0, s1 = 0, sys0[3] = {0, 0, 0}, sys1[3] = {0, 0, 0};
    long rss_after = -1;
    double connect_s = -1, srv_connect_cpu = -1, srv_cpu_begin = cpu_server();
    /* server utime/stime ticks: [0] connect start, [1] sessions open, [2] window start, [3] end */
    unsigned long long tk_u[4] = {0, 0, 0, 0}, tk_s[4] = {0, 0, 0, 0};
    int tk_ok[4] = {0, 0, 0, 0};
    tk_ok[0] = server_ticks(&tk_u[0], &tk_s[0]) == 0;
    const char *failure = NULL;

    phase = PH_CONNECT;
    start_next_units();
    flush_dirty();

    struct epoll_event evs[1024];
    while (phase != PH_DONE) {
        int n = epoll_wait(ep, evs, 1024, 5);
        n_waits++;
        if (n < 0 && errno != EINTR) { perror("epoll_wait"); break; }
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (!c) { on_timer(); continue; }
            if (c->state == S_CLOSED) continue;
            uint32_t e = evs[i].events;
            if (c->state == S_CONNECTING) {
                if (e & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
                    int err = 0;
                    socklen_t len = sizeof err;
                    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                    if (err) { conn_fail(c, strerror(err)); continue; }
                    ep_mod(c, 0);
                    if (use_tls) tls_start(c);
                    else on_connected(c);
                }
                continue;
            }
            if (c->state == S_TLS) {
                tls_step(c);
                continue;
            }
            if (e & EPOLLIN) on_readable(c);
            else if (e & (EPOLLERR | EPOLLHUP)) conn_fail(c, "hangup");
            if (c->state != S_CLOSED && (e & EPOLLOUT)) flush_conn(c);
        }
        if (phase == PH_CONNECT) start_next_units();
        flush_dirty();

        uint64_t now = now_ns();
        if (now > hard_stop) { failure = "hard timeout"; break; }
        switch (phase) {
        case PH_CONNECT:
            if (ready_units == nunits) {
                connect_s = (double)(t_ready - t_begin) / 1e9;
                srv_connect_cpu = cpu_server() - srv_cpu_begin;
                tk_ok[1] = server_ticks(&tk_u[1], &tk_s[1]) == 0;
                fprintf(stderr, "loadgen: %d sessions open in %.2fs\n", nunits, connect_s);
                phase = mode == M_IDLE ? PH_IDLE_WAIT : PH_WARMUP;
                t_phase_end = now + (uint64_t)(warmup * 1e9);
                begin_workload();
                if (xhr)
                    for (int u = 0; u < nunits; u++) try_send(&sessions[u]);
                flush_dirty();
            } else if (now > connect_deadline) {
                failure = "connect timeout";
                phase = PH_DONE;
            }
            break;
        case PH_WARMUP:
            if (now >= t_phase_end) {
                e0 = errors;
                core_times(server_core, &cb0[0], &cb0[1]);
                core_times(gen_core, &cb0[2], &cb0[3]);
                gen0 = cpu_self();
                srv0 = cpu_server();
                tk_ok[2] = server_ticks(&tk_u[2], &tk_s[2]) == 0;
                wq0[0] = server_pid ? runq_wait(server_pid) : -1;
                wq0[1] = runq_wait(0);
                sys0[0] = n_reads; sys0[1] = n_writes; sys0[2] = n_waits;
                r0 = recv_msgs; f0 = frames_recv; hs0 = http_sends; hr0 = http_recvs; b0 = bc_done; s0 = sent_msgs;
                nlat = 0;
                measuring = 1;
                t_meas0 = now_ns();
                t_phase_end = t_meas0 + (uint64_t)(duration * 1e9);
                phase = PH_MEASURE;
            }
            break;
        case PH_MEASURE:
            if (now >= t_phase_end) {
                t_meas1 = now_ns();
                gen1 = cpu_self();
                srv1 = cpu_server();
                tk_ok[3] = server_ticks(&tk_u[3], &tk_s[3]) == 0;
                wq1[0] = server_pid ? runq_wait(server_pid) : -1;
                wq1[1] = runq_wait(0);
                core_times(server_core, &cb1[0], &cb1[1]);
                core_times(gen_core, &cb1[2], &cb1[3]);
                sys1[0] = n_reads; sys1[1] = n_writes; sys1[2] = n_waits;
                r1 = recv_msgs; f1 = frames_recv; hs1 = http_sends; hr1 = http_recvs; b1 = bc_done; s1 = sent_msgs;
                measuring = 0;
                phase = PH_DONE;
            }
            break;
        case PH_IDLE_WAIT:
            if (idle_echoed == (uint64_t)nconns) {
                phase = PH_HOLD;
                t_phase_end = now + (uint64_t)(hold * 1e9);
            } else if (now > connect_deadline + (uint64_t)(10e9)) {
                failure = "idle echo timeout";
                phase = PH_DONE;
            }
            break;
        case PH_HOLD:
            if (now >= t_phase_end) {
                rss_after = rss_server_kb();
                phase = PH_DONE;
            }
            break;
        }
    }
    phase = PH_DONE;

    double wall = (double)(t_meas1 - t_meas0) / 1e9;
    if (nlat) qsort(lat, nlat, sizeof *lat, cmp_u32);
    printf("{\"mode\":\"%s\",\"units\":%d,\"connections\":%d,\"raw\":%d,\"tls\":%d,", mode_name,
           nunits, nconns, raw, use_tls);
    printf("\"ok\":%s,\"failure\":%s%s%s,", failure ? "false" : "true", failure ? "\"" : "",
           failure ? failure : "null", failure ? "\"" : "");
    printf("\"connect_s\":%.4f,\"server_connect_cpu_s\":%.3f,", connect_s, srv_connect_cpu);
    double tck = (double)sysconf(_SC_CLK_TCK);
    printf("\"clk_tck\":%.0f,", tck);
    if (tk_ok[0] && tk_ok[1])
        printf("\"server_connect_utime_s\":%.4f,\"server_connect_stime_s\":%.4f,",
               (double)(tk_u[1] - tk_u[0]) / tck, (double)(tk_s[1] - tk_s[0]) / tck);
    if (tk_ok[2] && tk_ok[3])
        printf("\"server_ticks\":{\"utime\":%llu,\"stime\":%llu},"
               "\"server_utime_s\":%.4f,\"server_stime_s\":%.4f,",
               tk_u[3] - tk_u[2], tk_s[3] - tk_s[2], (double)(tk_u[3] - tk_u[2]) / tck,
               (double)(tk_s[3] - tk_s[2]) / tck);
    if (mode == M_IDLE) {
        printf("\"rss_before_kb\":%ld,\"rss_after_kb\":%ld,\"echoed\":%llu,", rss_before, rss_after,
               (unsigned long long)idle_echoed);
    } else if (wall > 0) {
        printf("\"window_s\":%.4f,\"msgs\":%llu,\"msgs_per_s\":%.1f,\"sent\":%llu,\"frames\":%llu,",
               wall, (unsigned long long)(r1 - r0), (double)(r1 - r0) / wall,
               (unsigned long long)(s1 - s0), (unsigned long long)(f1 - f0));
        printf("\"gen_cpu_s\":%.4f,\"gen_busy\":%.4f,\"server_cpu_s\":%.4f,", gen1 - gen0,
               (gen1 - gen0) / wall, srv1 - srv0);
        printf("\"http_sends\":%llu,\"http_recvs\":%llu,\"requests_per_s\":%.1f,",
               (unsigned long long)(hs1 - hs0), (unsigned long long)(hr1 - hr0),
               (double)(hs1 - hs0 + hr1 - hr0) / wall);
        printf("\"broadcasts\":%llu,", (unsigned long long)(b1 - b0));
        printf("\"server_runq_wait_s\":%.4f,\"gen_runq_wait_s\":%.4f,",
               wq0[0] >= 0 && wq1[0] >= 0 ? wq1[0] - wq0[0] : -1.0,
               wq0[1] >= 0 && wq1[1] >= 0 ? wq1[1] - wq0[1] : -1.0);
        printf("\"server_core_busy\":%.4f,\"gen_core_busy\":%.4f,",
               cb1[1] > cb0[1] ? (double)(cb1[0] - cb0[0]) / (double)(cb1[1] - cb0[1]) : -1.0,
               cb1[3] > cb0[3] ? (double)(cb1[2] - cb0[2]) / (double)(cb1[3] - cb0[3]) : -1.0);
        printf("\"gen_syscalls\":{\"read\":%llu,\"write\":%llu,\"epoll_wait\":%llu},",
               (unsigned long long)(sys1[0] - sys0[0]), (unsigned long long)(sys1[1] - sys0[1]),
               (unsigned long long)(sys1[2] - sys0[2]));
        printf("\"lat_ms\":{\"n\":%zu,\"dropped\":%llu,\"p50\":%.4f,\"p90\":%.4f,\"p99\":%.4f,"
               "\"p999\":%.4f,\"max\":%.4f},",
               nlat, (unsigned long long)lat_dropped, pct(0.5), pct(0.9), pct(0.99), pct(0.999),
               nlat ? lat[nlat - 1] / 1e6 : -1.0);
        printf("\"errors_in_window\":%llu,", (unsigned long long)(errors - e0));
        /* the histogram (16 buckets per octave of ns), non-empty buckets only */
        printf("\"lat_hist\":[");
        int first = 1;
        for (size_t i = 0; i < nlat;) {
            int k = lat[i] ? (int)floor(16.0 * log2((double)lat[i])) : 0;
            size_t j = i;
            double hi = exp2((k + 1) / 16.0);
            while (j < nlat && (double)lat[j] < hi) j++;
            if (j == i) j++; /* rounding at an edge: count it here */
            printf("%s[%d,%zu]", first ? "" : ",", k, j - i);
            first = 0;
            i = j;
        }
        printf("],");
    }
    printf("\"errors\":%llu,\"closed\":%llu,\"reconnects\":%llu}\n", (unsigned long long)errors,
           (unsigned long long)closed_conns, (unsigned long long)reconnects);
    fflush(stdout);
    return failure ? 1 : 0;
}
