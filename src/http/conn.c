/* http/conn.c - one HTTP/1.1 connection on its loop thread: parsing with
 * http-parser under strict limits, the exchange handed to the application,
 * pipelined responses queued and flushed with one write per read, keep-alive,
 * timeouts, lingering close, and the exchange API (respond, offload, defer).
 *
 * Storage: a connection owns a 16 KiB read buffer and a small inline arena for
 * the request target and the header values the application reads, so a small
 * keep-alive GET answered inline allocates nothing. Bigger requests spill the
 * arena to the heap (bounded by the limits); a body buffer exists only for
 * requests with a body. A connection's memory is freed only when its handle
 * is closed and no exchange is out with the application. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/http_int.h"
#include "util/log.h"

enum conn_phase {
        PH_HEADERS,  /* reading a request's head; header timeout runs */
        PH_BODY,     /* reading its body; idle timeout from headers end */
        PH_EXCHANGE, /* the application has it; no server timeout */
        PH_IDLE,     /* keep-alive, waiting for the next request */
        PH_LINGER,   /* FIN sent, draining what the client still sends */
};

enum hdr_id { H_OTHER, H_HOST, H_AUTH, H_CTYPE, H_XFF, H_UA, H_CL, H_TE, H_EXPECT, H_COUNT };

enum hcb_state { HCB_NONE, HCB_FIELD, HCB_VALUE };

struct span {
        size_t off, len;
};

struct kurz_http__conn {
        uv_tcp_t tcp;
        uv_write_t wreq;
        uv_shutdown_t sreq;
        struct kurz_http__loop *lp;
        struct kurz_http__conn *prev, *next; /* in lp->conns or lp->limbo */
        struct kurz_http__conn *ready_next;
        http_parser parser;
        struct kurz_http_exchange x;
        struct sockaddr_storage peer;

        struct kurz_buf out;  /* responses not yet handed to the kernel */
        struct kurz_buf wbuf; /* the part under uv_write; stable until on_write */
        struct kurz_buf body; /* request body; only for requests with one */

        uint64_t t_phase;  /* uv_now() when phase began */
        uint64_t t_write;  /* uv_now() of the last progress of the pending uv_write */
        size_t wq_seen;    /* write queue size the sweep saw last */
        uint64_t read_ns;  /* kurz_http_now_ns() of the current read */
        size_t roff, rlen; /* unparsed bytes in rbuf */
        unsigned batch;    /* requests answered in this parsing round */
        enum conn_phase phase;

        /* per request parse state */
        struct span url;
        size_t hdr_bytes;
        unsigned nhdr;
        struct span hv[H_COUNT];
        unsigned hcount[H_COUNT];
        struct span xff[KURZ_HTTP_MAX_XFF];
        struct span xff_joined;
        struct span *cur; /* where the current header value is stored, or NULL */
        enum hcb_state hcb;
        char hname[24];
        unsigned hname_len;
        bool hname_long;
        bool in_trailers;
        int err_status;
        const char *err_msg;

        /* strict framing gate (gate_scan): what it has approved for the
         * parser, and a violation found right after those bytes */
        uint8_t g_state;
        bool g_trailer;   /* field lines are a chunked trailer */
        uint32_t g_count; /* version index, chunk-size digits or extension bytes */
        uint64_t g_chunk; /* chunk size being read, then its data bytes left */
        size_t g_ahead;   /* approved bytes not yet fed to the parser */
        int g_err_status; /* violation waiting for g_ahead to reach 0 */
        const char *g_err_msg;

        bool reading, writing, closing, handle_closed;
        bool x_active;    /* the application holds x */
        bool keep_alive;  /* of the current request */
        bool close_after; /* close once the output is flushed */
        bool stop_parse;  /* never parse again on this connection */
        bool dead;        /* after a framing error: never answer again */
        bool in_parse, is_ready, shutdown_sent;
        bool parked;       /* a request was shed: not read before t_parked + PARK_MS */
        uint64_t t_parked; /* uv_now() of the shed */

        char *aheap; /* arena spilled to the heap, or NULL */
        size_t alen, acap;
        char arena[KURZ_HTTP_ARENA];
        char rbuf[KURZ_HTTP_RBUF];
};

static void conn_process(struct kurz_http__conn *c);
static void conn_close(struct kurz_http__conn *c);

static const struct kurz_http_config *cfg_of(const struct kurz_http__conn *c)
{
        return &c->lp->srv->cfg;
}

/* --- lists ---------------------------------------------------------------- */

static void list_add(struct kurz_http__conn **head, struct kurz_http__conn *c)
{
        c->prev = NULL;
        c->next = *head;
        if (*head)
                (*head)->prev = c;
        *head = c;
}

static void list_del(struct kurz_http__conn **head, struct kurz_http__conn *c)
{
        if (c->prev)
                c->prev->next = c->next;
        else
                *head = c->next;
        if (c->next)
                c->next->prev = c->prev;
        c->prev = c->next = NULL;
}

static void conn_free(struct kurz_http__conn *c)
{
        kurz_buf_free(&c->out);
        kurz_buf_free(&c->wbuf);
        kurz_buf_free(&c->body);
        free(c->aheap);
        free(c);
}

/* --- arena ---------------------------------------------------------------- */

static char *arena_base(struct kurz_http__conn *c)
{
        return c->aheap ? c->aheap : c->arena;
}

/* Makes room for n more bytes. The arena never outgrows what the limits
 * allow: target + header values + one joined X-Forwarded-For copy. */
static int arena_reserve(struct kurz_http__conn *c, size_t n)
{
        const struct kurz_http_config *cfg = cfg_of(c);
        size_t cap = c->aheap ? c->acap : sizeof(c->arena);
        size_t max = cfg->max_request_line + 2 * cfg->max_header_bytes + 64;
        size_t ncap;
        char *np;

        if (n <= cap - c->alen)
                return 0;
        if (n > max || c->alen > max - n)
                return -E2BIG;
        ncap = cap * 2;
        while (ncap < c->alen + n)
                ncap *= 2;
        if (ncap > max)
                ncap = max;
        if (c->aheap) {
                np = realloc(c->aheap, ncap);
                if (!np)
                        return -ENOMEM;
        } else {
                np = malloc(ncap);
                if (!np)
                        return -ENOMEM;
                memcpy(np, c->arena, c->alen);
        }
        c->aheap = np;
        c->acap = ncap;
        return 0;
}

static int arena_append(struct kurz_http__conn *c, const char *p, size_t n)
{
        int rc = arena_reserve(c, n);

        if (rc < 0)
                return rc;
        memcpy(arena_base(c) + c->alen, p, n);
        c->alen += n;
        return 0;
}

static void request_release(struct kurz_http__conn *c)
{
        kurz_buf_free(&c->body);
        free(c->aheap);
        c->aheap = NULL;
        c->acap = 0;
        c->alen = 0;
}

/* --- responses ------------------------------------------------------------ */

static const char *reason_phrase(int status)
{
        switch (status) {
        case 100:
                return "Continue";
        case 200:
                return "OK";
        case 201:
                return "Created";
        case 202:
                return "Accepted";
        case 204:
                return "No Content";
        case 301:
                return "Moved Permanently";
        case 302:
                return "Found";
        case 303:
                return "See Other";
        case 304:
                return "Not Modified";
        case 307:
                return "Temporary Redirect";
        case 308:
                return "Permanent Redirect";
        case 400:
                return "Bad Request";
        case 401:
                return "Unauthorized";
        case 403:
                return "Forbidden";
        case 404:
                return "Not Found";
        case 405:
                return "Method Not Allowed";
        case 406:
                return "Not Acceptable";
        case 408:
                return "Request Timeout";
        case 409:
                return "Conflict";
        case 410:
                return "Gone";
        case 411:
                return "Length Required";
        case 413:
                return "Payload Too Large";
        case 414:
                return "URI Too Long";
        case 415:
                return "Unsupported Media Type";
        case 417:
                return "Expectation Failed";
        case 422:
                return "Unprocessable Entity";
        case 429:
                return "Too Many Requests";
        case 431:
                return "Request Header Fields Too Large";
        case 500:
                return "Internal Server Error";
        case 501:
                return "Not Implemented";
        case 502:
                return "Bad Gateway";
        case 503:
                return "Service Unavailable";
        case 504:
                return "Gateway Timeout";
        case 505:
                return "HTTP Version Not Supported";
        default:
                return "Unknown";
        }
}

static char *put(char *w, const char *s, size_t n)
{
        memcpy(w, s, n);
        return w + n;
}

#define PUTLIT(w, lit) put((w), (lit), sizeof(lit) - 1)

static char *put_uint(char *w, size_t v)
{
        char tmp[24];
        size_t n = 0;

        do {
                tmp[n++] = (char)('0' + v % 10);
                v /= 10;
        } while (v);
        while (n)
                *w++ = tmp[--n];
        return w;
}

static bool has_ctl(const char *p, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                unsigned char ch = (unsigned char)p[i];
                if (ch == '\r' || ch == '\n' || ch == '\0')
                        return true;
        }
        return false;
}

static bool headers_ok(const struct kurz_http_header *h, size_t nh, const char *ctype)
{
        for (size_t i = 0; i < nh; i++) {
                if (h[i].name.len == 0 || !h[i].name.p || (h[i].value.len && !h[i].value.p))
                        return false;
                if (has_ctl(h[i].name.p, h[i].name.len) ||
                    memchr(h[i].name.p, ':', h[i].name.len) ||
                    has_ctl(h[i].value.p, h[i].value.len))
                        return false;
        }
        return !ctype || !has_ctl(ctype, strlen(ctype));
}

/* Appends one complete response to c->out. Returns 0 or a negative errno. */
static int append_response(struct kurz_http__conn *c, int status, const struct kurz_http_header *h,
                           size_t nh, const char *ctype, const char *body, size_t blen, bool head,
                           bool close, bool ka10)
{
        struct kurz_http__loop *lp = c->lp;
        bool nobody = status < 200 || status == 204 || status == 304;
        const char *reason = reason_phrase(status);
        size_t ctlen = ctype ? strlen(ctype) : 0;
        size_t need = 64 + strlen(reason) + lp->date_len + 48 + (ctype ? 16 + ctlen : 0);
        char *w;
        int rc;

        for (size_t i = 0; i < nh; i++)
                need += h[i].name.len + h[i].value.len + 4;
        if (!head && !nobody)
                need += blen;
        rc = kurz_buf_reserve(&c->out, need);
        if (rc < 0)
                return rc;
        w = c->out.p + c->out.len;
        w = PUTLIT(w, "HTTP/1.1 ");
        w = put_uint(w, (size_t)status);
        *w++ = ' ';
        w = put(w, reason, strlen(reason));
        w = PUTLIT(w, "\r\n");
        w = put(w, lp->date, lp->date_len);
        if (!nobody) {
                /* HEAD keeps the length of the body it would have had. */
                w = PUTLIT(w, "Content-Length: ");
                w = put_uint(w, blen);
                w = PUTLIT(w, "\r\n");
        }
        if (ctype) {
                w = PUTLIT(w, "Content-Type: ");
                w = put(w, ctype, ctlen);
                w = PUTLIT(w, "\r\n");
        }
        for (size_t i = 0; i < nh; i++) {
                w = put(w, h[i].name.p, h[i].name.len);
                w = PUTLIT(w, ": ");
                if (h[i].value.len)
                        w = put(w, h[i].value.p, h[i].value.len);
                w = PUTLIT(w, "\r\n");
        }
        if (close)
                w = PUTLIT(w, "Connection: close\r\n");
        else if (ka10)
                w = PUTLIT(w, "Connection: keep-alive\r\n");
        w = PUTLIT(w, "\r\n");
        if (!head && !nobody && blen)
                w = put(w, body, blen);
        c->out.len = (size_t)(w - c->out.p);
        return 0;
}

static const char *error_code(int status)
{
        if (status == 503)
                return "SERVICE_UNAVAILABLE";
        if (status == 501)
                return "NOT_IMPLEMENTED";
        if (status >= 500 && status != 505)
                return "INTERNAL_SERVER_ERROR";
        return "INVALID_INPUT";
}

/* Logs a refused request at debug level: the peer, the target as far as it
 * was read and the bytes where parsing stopped, all escaped (they are the
 * client's). Only runs when a connection fails, never on the hot path. */
static void log_failure(struct kurz_http__conn *c, int status, const char *msg)
{
        char addr[INET6_ADDRSTRLEN] = "?", target[160], near[160];
        const void *a = NULL;
        size_t from, len;

        if (c->peer.ss_family == AF_INET)
                a = &((const struct sockaddr_in *)&c->peer)->sin_addr;
        else if (c->peer.ss_family == AF_INET6)
                a = &((const struct sockaddr_in6 *)&c->peer)->sin6_addr;
        if (a)
                inet_ntop(c->peer.ss_family, a, addr, sizeof(addr));
        len = c->url.len < 96 ? c->url.len : 96;
        if (c->url.off + len > c->alen)
                len = 0; /* a finished request's target: gone */
        kurz_log_escape(target, sizeof(target), len ? arena_base(c) + c->url.off : "", len);
        from = c->roff > 16 ? c->roff - 16 : 0;
        len = c->rlen > from ? c->rlen - from : 0;
        if (len > 40)
                len = 40;
        kurz_log_escape(near, sizeof(near), c->rbuf + from, len);
        kurz_debug("http: thread %u: %s: %d %s (target \"%s\", near \"%s\")", c->lp->idx, addr,
                   status, msg, target, near);
}

/* Queues a JSON error, then the connection closes: nothing after it on this
 * connection is ever parsed or answered. msg is a static string. */
static void conn_fail(struct kurz_http__conn *c, int status, const char *msg)
{
        char body[256];
        int n;

        if (c->dead)
                return;
        c->dead = true;
        c->stop_parse = true;
        c->close_after = true;
        log_failure(c, status, msg);
        c->roff = c->rlen = 0;
        n = snprintf(body, sizeof(body),
                     "{\"success\":false,\"message\":\"%s\",\"errorCode\":\"%s\"}", msg,
                     error_code(status));
        if (n < 0 || (size_t)n >= sizeof(body))
                n = 0;
        if (append_response(c, status, NULL, 0, "application/json", body, (size_t)n, false, true,
                            false) < 0)
                conn_close(c);
        kurz_http__event(c->lp, status);
}

/* --- strict framing gate -------------------------------------------------- */

/* http-parser 2.9 is lenient where a lenient server becomes a request
 * smuggling target behind a proxy that reads the bytes differently: it takes
 * a bare LF as a line end, unfolds obsolete line folding, allows spaces in
 * header names ("Transfer-Encoding : chunked" is then an unknown header),
 * bytes >= 0x80 in the target, and chunk extensions of any length. The gate
 * is a tight byte scanner in front of it that enforces the RFC 9112 grammar of
 * what decides framing: the request line, the field lines of the head and of
 * a chunked trailer, and the chunk-size lines. The parser stays the authority
 * on everything else. The gate approves bytes up to the end of a head (so
 * on_headers_complete can say whether chunk lines follow) or of a message;
 * bytes of a Content-Length body pass unscanned. It allocates nothing. */

enum gate_state {
        G_START,    /* before a request line; empty lines (CRLF) are skipped */
        G_START_LF, /* LF of such an empty line */
        G_METHOD,
        G_TARGET0, /* first byte of the target: origin-form starts with '/' */
        G_TARGET,
        G_VERSION, /* "HTTP/d.d"; g_count indexes it */
        G_LINE_CR, /* CR ending the request line */
        G_LINE_LF, /* LF after the CR of a request or field line */
        G_FIELD0,  /* a field line's first byte, or the CR of the empty line */
        G_NAME,
        G_VALUE,
        G_END_LF,   /* LF of the empty line ending a head or trailer */
        G_PASS,     /* the parser frames what follows (Content-Length body) */
        G_CSIZE0,   /* first hex digit of a chunk size */
        G_CSIZE,    /* more hex digits, ';' or CR */
        G_CEXT,     /* chunk extension up to CR */
        G_CSIZE_LF, /* LF ending a chunk-size line */
        G_CDATA,    /* g_chunk data bytes */
        G_CDATA_CR, /* CR after chunk data */
        G_CDATA_LF, /* LF after chunk data */
};

#define GATE_MAX_CHUNK_EXT    4096u /* bytes of extensions on one chunk-size line */
#define GATE_MAX_CHUNK_DIGITS 16u   /* hex digits of a chunk size, leading zeros too */

/* tchar of RFC 9110 5.6.2 as a bitmap of ASCII. */
static bool is_tchar(unsigned ch)
{
        static const uint64_t lo = 0x03ff6cfa00000000ull, hi = 0x57ffffffc7fffffeull;

        return ch < 64 ? (lo >> ch) & 1 : ch < 128 && ((hi >> (ch - 64)) & 1);
}

static int hexval(unsigned ch)
{
        if (ch >= '0' && ch <= '9')
                return (int)(ch - '0');
        ch |= 0x20;
        if (ch >= 'a' && ch <= 'f')
                return (int)(ch - 'a' + 10);
        return -1;
}

/* Scans p[0..n) from the gate's state. Returns how many bytes the parser may
 * take now: all n, or fewer when a head or a whole message ends earlier, or
 * when byte i violates the grammar (then *status and *msg are set and i is
 * returned). */
static size_t gate_scan(struct kurz_http__conn *c, const unsigned char *p, size_t n, int *status,
                        const char **msg)
{
        static const char version[] = "HTTP/#.#";
        uint8_t st = c->g_state;
        size_t i = 0;

        for (; i < n; i++) {
                unsigned ch = p[i];

                switch ((enum gate_state)st) {
                case G_START:
                        if (ch == '\r') {
                                st = G_START_LF;
                        } else if (is_tchar(ch)) {
                                st = G_METHOD;
                        } else {
                                *msg = ch == '\n' ? "bare LF in request" : "malformed request line";
                                goto out_bad;
                        }
                        break;
                case G_START_LF:
                        if (ch != '\n') {
                                *msg = "bare CR in request";
                                goto out_bad;
                        }
                        st = G_START;
                        break;
                case G_METHOD:
                        if (ch == ' ') {
                                st = G_TARGET0;
                        } else if (!is_tchar(ch)) {
                                *msg = "invalid method";
                                goto out_bad;
                        }
                        break;
                case G_TARGET0:
                        if (ch != '/') {
                                *msg = "request target must be an absolute path";
                                goto out_bad;
                        }
                        st = G_TARGET;
                        break;
                case G_TARGET:
                        if (ch == ' ') {
                                st = G_VERSION;
                                c->g_count = 0;
                        } else if (ch < 0x21 || ch > 0x7e) {
                                *msg = "invalid character in request target";
                                goto out_bad;
                        }
                        break;
                case G_VERSION:
                        if (version[c->g_count] == '#' ? ch < '0' || ch > '9'
                                                       : ch != (unsigned char)version[c->g_count]) {
                                *msg = "invalid HTTP version";
                                goto out_bad;
                        }
                        if (++c->g_count == sizeof(version) - 1)
                                st = G_LINE_CR;
                        break;
                case G_LINE_CR:
                        if (ch != '\r') {
                                *msg = ch == '\n' ? "bare LF in request" : "invalid HTTP version";
                                goto out_bad;
                        }
                        st = G_LINE_LF;
                        break;
                case G_LINE_LF:
                        if (ch != '\n') {
                                *msg = "bare CR in request";
                                goto out_bad;
                        }
                        st = G_FIELD0;
                        break;
                case G_FIELD0:
                        if (ch == '\r') {
                                st = G_END_LF;
                        } else if (is_tchar(ch)) {
                                st = G_NAME;
                        } else {
                                *msg = ch == ' ' || ch == '\t' ? "obsolete line folding"
                                       : ch == '\n'            ? "bare LF in request"
                                                               : "invalid header name";
                                goto out_bad;
                        }
                        break;
                case G_NAME:
                        if (ch == ':') {
                                st = G_VALUE;
                        } else if (!is_tchar(ch)) {
                                *msg = "invalid header name";
                                goto out_bad;
                        }
                        break;
                case G_VALUE:
                        /* field-vchar, obs-text, SP and HTAB */
                        if (ch == '\r') {
                                st = G_LINE_LF;
                        } else if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
                                *msg = ch == '\n' ? "bare LF in request"
                                                  : "invalid character in header value";
                                goto out_bad;
                        }
                        break;
                case G_END_LF:
                        if (ch != '\n') {
                                *msg = "bare CR in request";
                                goto out_bad;
                        }
                        /* End of a head or trailer: the parser decides what
                         * comes next (on_headers_complete may start the
                         * chunk states, on_message_complete a new head). */
                        c->g_state = G_PASS;
                        return i + 1;
                case G_PASS:
                        c->g_state = G_PASS;
                        return n;
                case G_CSIZE0:
                case G_CSIZE: {
                        int v = hexval(ch);

                        if (v >= 0) {
                                if (st == G_CSIZE0) {
                                        c->g_chunk = 0;
                                        c->g_count = 0;
                                }
                                st = G_CSIZE;
                                c->g_chunk = c->g_chunk * 16 + (unsigned)v;
                                if (++c->g_count > GATE_MAX_CHUNK_DIGITS) {
                                        *msg = "invalid chunk size";
                                        goto out_bad;
                                }
                                if (c->g_chunk > cfg_of(c)->max_body) {
                                        *status = 413;
                                        *msg = "request body too large";
                                        return i;
                                }
                        } else if (st == G_CSIZE && (ch == ';' || ch == ' ' || ch == '\t')) {
                                st = G_CEXT;
                                c->g_count = 0;
                        } else if (st == G_CSIZE && ch == '\r') {
                                st = G_CSIZE_LF;
                        } else {
                                *msg = ch == '\n' ? "bare LF in chunk" : "invalid chunk size";
                                goto out_bad;
                        }
                        break;
                }
                case G_CEXT:
                        if (ch == '\r') {
                                st = G_CSIZE_LF;
                        } else if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
                                *msg = ch == '\n' ? "bare LF in chunk" : "invalid chunk extension";
                                goto out_bad;
                        } else if (++c->g_count > GATE_MAX_CHUNK_EXT) {
                                *msg = "chunk extension too long";
                                goto out_bad;
                        }
                        break;
                case G_CSIZE_LF:
                        if (ch != '\n') {
                                *msg = "bare CR in chunk";
                                goto out_bad;
                        }
                        if (c->g_chunk == 0) {
                                st = G_FIELD0; /* the last chunk: a trailer follows */
                                c->g_trailer = true;
                        } else {
                                st = G_CDATA;
                        }
                        break;
                case G_CDATA: {
                        size_t take = n - i < c->g_chunk ? n - i : (size_t)c->g_chunk;

                        c->g_chunk -= take;
                        i += take - 1;
                        if (c->g_chunk == 0)
                                st = G_CDATA_CR;
                        break;
                }
                case G_CDATA_CR:
                        if (ch != '\r') {
                                *msg = "malformed chunk";
                                goto out_bad;
                        }
                        st = G_CDATA_LF;
                        break;
                case G_CDATA_LF:
                        if (ch != '\n') {
                                *msg = "malformed chunk";
                                goto out_bad;
                        }
                        st = G_CSIZE0;
                        break;
                }
        }
        c->g_state = st;
        return n;

out_bad:
        c->g_state = st;
        *status = 400;
        return i;
}

/* Called when the parser has the head: chunk-size lines follow when the
 * message is chunked, else the parser frames the body by itself. */
static void gate_body(struct kurz_http__conn *c, bool chunked)
{
        c->g_state = chunked ? G_CSIZE0 : G_PASS;
        c->g_trailer = false;
}

/* A message ended: the next byte starts a new request line, and whatever
 * was approved beyond it (unscanned body passage) must be scanned again. */
static void gate_reset(struct kurz_http__conn *c)
{
        c->g_state = G_START;
        c->g_trailer = false;
        c->g_ahead = 0;
        c->g_err_status = 0;
        c->g_err_msg = NULL;
}

/* --- parser callbacks ----------------------------------------------------- */

static int reject(struct kurz_http__conn *c, int status, const char *msg)
{
        if (!c->err_status) {
                c->err_status = status;
                c->err_msg = msg;
        }
        return -1;
}

static int on_message_begin(http_parser *p)
{
        struct kurz_http__conn *c = p->data;

        if (c->phase != PH_HEADERS) {
                c->phase = PH_HEADERS;
                c->t_phase = uv_now(&c->lp->loop);
        }
        request_release(c);
        c->url = (struct span){0, 0};
        c->hdr_bytes = 0;
        c->nhdr = 0;
        memset(c->hv, 0, sizeof(c->hv));
        memset(c->hcount, 0, sizeof(c->hcount));
        c->xff_joined = (struct span){0, 0};
        c->cur = NULL;
        c->hcb = HCB_NONE;
        c->in_trailers = false;
        return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
        struct kurz_http__conn *c = p->data;

        if (len > cfg_of(c)->max_request_line - c->url.len)
                return reject(c, 414, "request target too long");
        if (c->url.len == 0)
                c->url.off = c->alen;
        if (arena_append(c, at, len) < 0)
                return reject(c, 414, "request target too long");
        c->url.len += len;
        return 0;
}

static int count_header_bytes(struct kurz_http__conn *c, size_t n)
{
        size_t max = cfg_of(c)->max_header_bytes;

        if (n > max || c->hdr_bytes > max - n)
                return reject(c, 431, "request headers too large");
        c->hdr_bytes += n;
        return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
        struct kurz_http__conn *c = p->data;

        if (c->hcb != HCB_FIELD) {
                if (++c->nhdr > cfg_of(c)->max_headers)
                        return reject(c, 431, "too many header fields");
                if (count_header_bytes(c, 4) < 0) /* ": " and CRLF */
                        return -1;
                c->hcb = HCB_FIELD;
                c->hname_len = 0;
                c->hname_long = false;
        }
        if (count_header_bytes(c, len) < 0)
                return -1;
        if (len > sizeof(c->hname) - c->hname_len) {
                c->hname_long = true;
        } else {
                memcpy(c->hname + c->hname_len, at, len);
                c->hname_len += (unsigned)len;
        }
        return 0;
}

static enum hdr_id classify(const struct kurz_http__conn *c)
{
        static const struct {
                const char *name;
                enum hdr_id id;
        } known[] = {
            {"host", H_HOST},
            {"authorization", H_AUTH},
            {"content-type", H_CTYPE},
            {"x-forwarded-for", H_XFF},
            {"user-agent", H_UA},
            {"content-length", H_CL},
            {"transfer-encoding", H_TE},
            {"expect", H_EXPECT},
        };
        struct kurz_str name = {c->hname, c->hname_len};

        if (c->hname_long || c->in_trailers)
                return H_OTHER;
        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
                if (kurz_str_ieq(name, kurz_str_c(known[i].name)))
                        return known[i].id;
        return H_OTHER;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
        struct kurz_http__conn *c = p->data;

        if (count_header_bytes(c, len) < 0)
                return -1;
        if (c->hcb != HCB_VALUE) {
                enum hdr_id id = classify(c);
                unsigned n;

                c->hcb = HCB_VALUE;
                c->cur = NULL;
                if (id != H_OTHER) {
                        n = c->hcount[id]++;
                        if (id == H_XFF) {
                                if (n >= KURZ_HTTP_MAX_XFF)
                                        return reject(c, 431, "too many X-Forwarded-For fields");
                                c->cur = &c->xff[n];
                        } else if (n == 0) {
                                c->cur = &c->hv[id]; /* the first one wins */
                        }
                        if (c->cur)
                                *c->cur = (struct span){c->alen, 0};
                }
        }
        if (c->cur && len) {
                /* Values of one field arrive back to back, so they stay
                 * contiguous in the arena. */
                if (arena_append(c, at, len) < 0)
                        return reject(c, 431, "request headers too large");
                c->cur->len += len;
        }
        return 0;
}

static void trim(const char *base, struct span *s)
{
        while (s->len && (base[s->off + s->len - 1] == ' ' || base[s->off + s->len - 1] == '\t'))
                s->len--;
}

static bool span_ieq(struct kurz_http__conn *c, struct span s, const char *lit)
{
        struct kurz_str v = {arena_base(c) + s.off, s.len};

        return kurz_str_ieq(v, kurz_str_c(lit));
}

static int join_xff(struct kurz_http__conn *c)
{
        unsigned n = c->hcount[H_XFF];
        size_t total = 0;
        char *base;

        for (unsigned i = 0; i < n; i++)
                trim(arena_base(c), &c->xff[i]);
        if (n == 1) {
                c->xff_joined = c->xff[0];
                return 0;
        }
        for (unsigned i = 0; i < n; i++)
                total += c->xff[i].len + 2;
        if (arena_reserve(c, total) < 0)
                return -1;
        base = arena_base(c); /* stable now */
        c->xff_joined = (struct span){c->alen, 0};
        for (unsigned i = 0; i < n; i++) {
                if (i) {
                        memcpy(base + c->alen, ", ", 2);
                        c->alen += 2;
                }
                memcpy(base + c->alen, base + c->xff[i].off, c->xff[i].len);
                c->alen += c->xff[i].len;
        }
        c->xff_joined.len = c->alen - c->xff_joined.off;
        return 0;
}

/* Transfer-Encoding must be exactly "chunked" in HTTP/1.1. Returns 0, 501
 * when chunked is the final coding after others kurz does not implement, or
 * 400 when the body length cannot be known (chunked not last, or HTTP/1.0),
 * as RFC 9112 6.1 and 6.3 ask. */
static int te_check(struct kurz_http__conn *c, unsigned http_minor)
{
        struct span te = c->hv[H_TE];
        const char *v = arena_base(c) + te.off;
        size_t n = te.len;

        if (http_minor == 0)
                return 400;
        if (span_ieq(c, te, "chunked"))
                return 0;
        if (n > 7 && kurz_str_ieq((struct kurz_str){v + n - 7, 7}, kurz_str_c("chunked"))) {
                n -= 7;
                while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
                        n--;
                if (n > 1 && v[n - 1] == ',')
                        return 501;
        }
        return 400;
}

/* Content-Length is 1*DIGIT (surrounding whitespace is already gone): the
 * parser accepts no sign either, but this does not depend on its version. */
static bool cl_ok(struct kurz_http__conn *c)
{
        struct span cl = c->hv[H_CL];
        const char *v = arena_base(c) + cl.off;

        if (cl.len == 0 || cl.len > 18)
                return false;
        for (size_t i = 0; i < cl.len; i++)
                if (v[i] < '0' || v[i] > '9')
                        return false;
        return true;
}

/* Host is uri-host [":" port]: unreserved, sub-delims, '%', ':' and the
 * brackets of an IP literal, as a bitmap of ASCII. Anything else (spaces,
 * '/', '@', quotes, bytes >= 0x80) could let the value escape a URL built
 * from it. An empty Host is allowed (RFC 9112 3.2). */
static bool host_ok(struct kurz_http__conn *c)
{
        static const uint64_t lo = 0x2fff7ff200000000ull, hi = 0x47fffffeaffffffeull;
        struct span h = c->hv[H_HOST];
        const unsigned char *v = (const unsigned char *)arena_base(c) + h.off;

        for (size_t i = 0; i < h.len; i++) {
                unsigned ch = v[i];
                if (!(ch < 64 ? (lo >> ch) & 1 : ch < 128 && ((hi >> (ch - 64)) & 1)))
                        return false;
        }
        return true;
}

static int on_headers_complete(http_parser *p)
{
        struct kurz_http__conn *c = p->data;
        const struct kurz_http_config *cfg = cfg_of(c);
        bool chunked = p->flags & F_CHUNKED;

        c->in_trailers = true; /* chunked trailers are counted, never stored */
        c->hcb = HCB_NONE;
        c->cur = NULL;
        if (p->http_major != 1 || p->http_minor > 1)
                return reject(c, 505, "HTTP version not supported");
        if (c->hcount[H_CL] > 1)
                return reject(c, 400, "more than one Content-Length");
        if (c->hcount[H_TE] > 1)
                return reject(c, 400, "more than one Transfer-Encoding");
        if (c->hcount[H_TE] && c->hcount[H_CL])
                return reject(c, 400, "both Content-Length and Transfer-Encoding");
        for (int i = H_HOST; i < H_COUNT; i++)
                if (i != H_XFF)
                        trim(arena_base(c), &c->hv[i]);
        if (c->hcount[H_TE]) {
                int st = te_check(c, p->http_minor);

                if (st || !chunked)
                        return reject(c, st ? st : 400,
                                      st == 501 ? "unsupported Transfer-Encoding"
                                                : "invalid Transfer-Encoding");
        }
        if (c->hcount[H_CL] && !cl_ok(c))
                return reject(c, 400, "invalid Content-Length");
        if (c->hcount[H_HOST] > 1)
                return reject(c, 400, "more than one Host");
        if (p->http_minor == 1 && c->hcount[H_HOST] == 0)
                return reject(c, 400, "missing Host");
        if (c->hcount[H_HOST] && !host_ok(c))
                return reject(c, 400, "invalid Host");
        if (c->hcount[H_CL] == 1 && p->content_length > cfg->max_body)
                return reject(c, 413, "request body too large");
        if (c->hcount[H_XFF] && join_xff(c) < 0)
                return reject(c, 431, "request headers too large");

        c->body.limit = cfg->max_body;
        if (chunked || (c->hcount[H_CL] == 1 && p->content_length > 0)) {
                if (!chunked && kurz_buf_reserve(&c->body, (size_t)p->content_length) < 0)
                        return reject(c, 503, "out of memory");
                c->phase = PH_BODY;
                c->t_phase = uv_now(&c->lp->loop);
                if (c->hcount[H_EXPECT] && p->http_minor == 1 &&
                    span_ieq(c, c->hv[H_EXPECT], "100-continue"))
                        kurz_buf_puts(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
        }
        gate_body(c, chunked);
        return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
        struct kurz_http__conn *c = p->data;

        if (len > cfg_of(c)->max_body - c->body.len)
                return reject(c, 413, "request body too large");
        if (kurz_buf_append(&c->body, at, len) < 0)
                return reject(c, 413, "request body too large");
        return 0;
}

static enum kurz_http_method map_method(unsigned m)
{
        switch (m) {
        case HTTP_GET:
                return KURZ_HTTP_GET;
        case HTTP_HEAD:
                return KURZ_HTTP_HEAD;
        case HTTP_POST:
                return KURZ_HTTP_POST;
        case HTTP_PUT:
                return KURZ_HTTP_PUT;
        case HTTP_DELETE:
                return KURZ_HTTP_DELETE;
        case HTTP_OPTIONS:
                return KURZ_HTTP_OPTIONS;
        case HTTP_PATCH:
                return KURZ_HTTP_PATCH;
        default:
                return KURZ_HTTP_OTHER;
        }
}

static struct kurz_str slice(const char *base, struct span s, bool present)
{
        if (!present)
                return (struct kurz_str){NULL, 0};
        return (struct kurz_str){base + s.off, s.len};
}

static size_t out_pending(const struct kurz_http__conn *c)
{
        return c->out.len + (c->writing ? c->wbuf.len : 0);
}

static int on_message_complete(http_parser *p)
{
        struct kurz_http__conn *c = p->data;
        struct kurz_http__loop *lp = c->lp;
        const struct kurz_http_config *cfg = cfg_of(c);
        struct kurz_http_request *r = &c->x.req;
        const char *base = arena_base(c);
        const char *q;

        r->method = map_method(p->method);
        r->method_name = kurz_str_c(http_method_str((enum http_method)p->method));
        r->target = (struct kurz_str){base + c->url.off, c->url.len};
        q = c->url.len ? memchr(r->target.p, '?', r->target.len) : NULL;
        if (q) {
                r->path = (struct kurz_str){r->target.p, (size_t)(q - r->target.p)};
                r->query = (struct kurz_str){q + 1, r->target.len - r->path.len - 1};
        } else {
                r->path = r->target;
                r->query = (struct kurz_str){r->target.p + r->target.len, 0};
        }
        r->host = slice(base, c->hv[H_HOST], c->hcount[H_HOST]);
        r->authorization = slice(base, c->hv[H_AUTH], c->hcount[H_AUTH]);
        r->content_type = slice(base, c->hv[H_CTYPE], c->hcount[H_CTYPE]);
        r->user_agent = slice(base, c->hv[H_UA], c->hcount[H_UA]);
        r->x_forwarded_for = slice(base, c->xff_joined, c->hcount[H_XFF]);
        r->body =
            c->body.len ? (struct kurz_str){c->body.p, c->body.len} : (struct kurz_str){NULL, 0};
        r->peer = c->peer;
        r->http_minor = p->http_minor;
        r->thread = lp->idx;
        r->start_ns = c->read_ns;

        gate_reset(c);
        c->keep_alive = http_should_keep_alive(p) && !p->upgrade;
        if (p->upgrade)
                c->stop_parse = true; /* the rest is another protocol: not ours */
        c->phase = PH_EXCHANGE;
        c->x_active = true;
        c->x.kind = KURZ_HTTP__X_INLINE;
        c->batch++;
        cfg->on_request(cfg->app, &c->x);
        /* Always hand control back to conn_process: the gate scans the
         * next request's head before the parser sees it, and a request not
         * answered inline holds the parser where it is. */
        http_parser_pause(p, 1);
        return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* --- I/O ------------------------------------------------------------------- */

static void on_closed(uv_handle_t *h)
{
        struct kurz_http__conn *c = h->data;
        struct kurz_http__loop *lp = c->lp;

        list_del(&lp->conns, c);
        if (c->is_ready) {
                struct kurz_http__conn **pp = &lp->ready;
                while (*pp && *pp != c)
                        pp = &(*pp)->ready_next;
                if (*pp)
                        *pp = c->ready_next;
                c->is_ready = false;
        }
        lp->nconns--;
        atomic_fetch_sub(&lp->srv->nconns, 1);
        c->handle_closed = true;
        if (c->x_active)
                list_add(&lp->limbo, c); /* freed when the application answers */
        else
                conn_free(c);
        kurz_http__maybe_finish(lp);
}

static void conn_close(struct kurz_http__conn *c)
{
        if (c->closing)
                return;
        c->closing = true;
        c->reading = false;
        uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
        struct kurz_http__conn *c = h->data;

        (void)hint;
        /* Reading only happens with no unparsed bytes left, so the whole
         * buffer is free. */
        buf->base = c->rbuf;
        buf->len = sizeof(c->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void conn_update_read(struct kurz_http__conn *c)
{
        bool want;

        if (c->closing)
                return;
        if (c->phase == PH_LINGER)
                want = true;
        else
                want = !c->dead && !c->stop_parse && !c->close_after && !c->x_active &&
                       !c->parked && c->roff >= c->rlen && out_pending(c) <= cfg_of(c)->max_output;
        if (want && !c->reading) {
                if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) {
                        conn_close(c);
                        return;
                }
                c->reading = true;
        } else if (!want && c->reading) {
                uv_read_stop((uv_stream_t *)&c->tcp);
                c->reading = false;
        }
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
        struct kurz_http__conn *c = req->data;

        if (c->closing)
                return;
        if (status < 0) {
                conn_close(c);
                return;
        }
        /* Drain what the client still sends until it closes, so closing with
         * unread bytes does not reset the connection under our response. */
        c->phase = PH_LINGER;
        c->t_phase = uv_now(&c->lp->loop);
        c->roff = c->rlen = 0;
        conn_update_read(c);
}

/* Everything queued has been written and the connection must close. */
static void conn_finish(struct kurz_http__conn *c)
{
        if (c->shutdown_sent || c->closing)
                return;
        c->shutdown_sent = true;
        c->stop_parse = true;
        c->roff = c->rlen = 0;
        if (c->reading) {
                uv_read_stop((uv_stream_t *)&c->tcp);
                c->reading = false;
        }
        c->sreq.data = c;
        if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) < 0)
                conn_close(c);
}

static void on_write(uv_write_t *req, int status)
{
        struct kurz_http__conn *c = req->data;
        struct kurz_http__loop *lp = c->lp;

        c->writing = false;
        c->wbuf.len = 0;
        if (c->wbuf.cap > 65536)
                kurz_buf_free(&c->wbuf);
        if (c->closing)
                return;
        if (status < 0) {
                conn_close(c);
                return;
        }
        kurz_http__enter(lp);
        conn_process(c);
        kurz_http__run_ready(lp);
}

/* One write for everything queued: try it synchronously, hand the rest to
 * uv_write. While that is pending, new responses collect in `out`. */
static void conn_flush(struct kurz_http__conn *c)
{
        struct kurz_buf t;
        uv_buf_t b;
        int n;

        if (c->writing || c->closing || c->out.len == 0)
                return;
        b = uv_buf_init(c->out.p, (unsigned)c->out.len);
        n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (n == UV_EAGAIN)
                n = 0;
        if (n < 0) {
                conn_close(c);
                return;
        }
        if ((size_t)n == c->out.len) {
                c->out.len = 0;
                if (c->out.cap > 65536)
                        kurz_buf_free(&c->out);
                return;
        }
        t = c->wbuf;
        c->wbuf = c->out;
        c->out = t;
        c->out.len = 0;
        b = uv_buf_init(c->wbuf.p + n, (unsigned)(c->wbuf.len - (size_t)n));
        c->wreq.data = c;
        if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write) < 0) {
                conn_close(c);
                return;
        }
        c->writing = true;
        c->t_write = uv_now(&c->lp->loop);
        c->wq_seen = c->tcp.write_queue_size;
}

static bool can_parse(const struct kurz_http__conn *c)
{
        const struct kurz_http_config *cfg = cfg_of(c);

        return !c->closing && !c->dead && !c->stop_parse && !c->close_after && !c->x_active &&
               !c->parked && c->batch < cfg->max_pipeline && out_pending(c) <= cfg->max_output;
}

static void parse_error(struct kurz_http__conn *c, enum http_errno e)
{
        if (c->err_status) {
                conn_fail(c, c->err_status, c->err_msg);
                return;
        }
        switch (e) {
        case HPE_HEADER_OVERFLOW:
                conn_fail(c, 431, "request headers too large");
                break;
        case HPE_INVALID_METHOD:
                conn_fail(c, 400, "invalid method");
                break;
        case HPE_INVALID_VERSION:
                conn_fail(c, 400, "invalid HTTP version");
                break;
        default:
                conn_fail(c, 400, "malformed request");
                break;
        }
}

/* Parses what is buffered as far as allowed, flushes the responses with one
 * write, and decides whether to keep reading. Runs after a read, after a
 * write completes and after a deferred exchange is answered. */
static void conn_process(struct kurz_http__conn *c)
{
        enum http_errno e;
        size_t n;

        c->batch = 0;
        for (;;) {
                while (c->roff < c->rlen && can_parse(c)) {
                        size_t len = c->rlen - c->roff;

                        if (c->g_ahead == 0 && !c->g_err_status)
                                c->g_ahead = gate_scan(c, (const unsigned char *)c->rbuf + c->roff,
                                                       len, &c->g_err_status, &c->g_err_msg);
                        if (c->g_ahead == 0) {
                                /* The violation is the next byte. */
                                conn_fail(c, c->g_err_status ? c->g_err_status : 400,
                                          c->g_err_msg ? c->g_err_msg : "malformed request");
                                break;
                        }
                        if (len > c->g_ahead)
                                len = c->g_ahead;
                        c->in_parse = true;
                        n = http_parser_execute(&c->parser, &parser_settings, c->rbuf + c->roff,
                                                len);
                        c->in_parse = false;
                        c->roff += n;
                        c->g_ahead = n < c->g_ahead ? c->g_ahead - n : 0;
                        e = HTTP_PARSER_ERRNO(&c->parser);
                        if (e == HPE_PAUSED) {
                                http_parser_pause(&c->parser, 0);
                                continue;
                        }
                        if (e != HPE_OK) {
                                parse_error(c, e);
                                break;
                        }
                        if (c->parser.upgrade)
                                c->stop_parse = true;
                }
                if (c->roff >= c->rlen || c->dead || c->stop_parse)
                        c->roff = c->rlen = 0;
                conn_flush(c);
                if (c->closing)
                        return;
                /* Stopped only by the pipeline batch limit and the output is
                 * gone already: start the next batch. */
                if (c->roff < c->rlen && !c->writing && !c->x_active && !c->close_after &&
                    !c->dead && !c->stop_parse && !c->parked) {
                        c->batch = 0;
                        continue;
                }
                break;
        }
        if (c->close_after && !c->x_active && !c->writing && c->out.len == 0) {
                conn_finish(c);
                return;
        }
        conn_update_read(c);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
        struct kurz_http__conn *c = s->data;
        struct kurz_http__loop *lp = c->lp;

        (void)buf;
        if (n == 0 || c->closing)
                return;
        kurz_http__enter(lp);
        if (c->phase == PH_LINGER) {
                if (n < 0)
                        conn_close(c);
                return;
        }
        if (n < 0) {
                /* EOF or error. Output still being written goes out first. */
                if (n == UV_EOF && c->writing) {
                        c->close_after = true;
                        c->stop_parse = true;
                        conn_update_read(c);
                        return;
                }
                conn_close(c);
                return;
        }
        lp->reads++;
        c->roff = 0;
        c->rlen = (size_t)n;
        c->read_ns = kurz_http_now_ns();
        conn_process(c);
        kurz_http__run_ready(lp);
}

static void free_unopened(uv_handle_t *h)
{
        free(h->data);
}

int kurz_http__conn_accept(struct kurz_http__loop *lp, int fd, const struct sockaddr_storage *peer)
{
        struct kurz_http__conn *c;
        int rc;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->lp = lp;
        c->x.c = c;
        c->peer = *peer;
        c->body.limit = lp->srv->cfg.max_body;
        rc = uv_tcp_init(&lp->loop, &c->tcp);
        if (rc < 0)
                goto out_free_conn;
        c->tcp.data = c;
        rc = uv_tcp_open(&c->tcp, fd);
        if (rc < 0) {
                /* The handle exists now; it must be closed, not freed. */
                uv_close((uv_handle_t *)&c->tcp, free_unopened);
                return rc;
        }
        uv_tcp_nodelay(&c->tcp, 1);
        http_parser_init(&c->parser, HTTP_REQUEST);
        c->parser.data = c;
        c->phase = PH_HEADERS; /* the first request's header timeout runs from accept */
        c->t_phase = uv_now(&lp->loop);
        list_add(&lp->conns, c);
        lp->nconns++;
        conn_update_read(c);
        return 0;

out_free_conn:
        free(c);
        return rc;
}

/* --- timeouts and stop ---------------------------------------------------- */

void kurz_http__conn_sweep(struct kurz_http__loop *lp, uint64_t now)
{
        const struct kurz_http_config *cfg = &lp->srv->cfg;
        unsigned linger =
            cfg->idle_timeout_ms < KURZ_HTTP_LINGER_MS ? cfg->idle_timeout_ms : KURZ_HTTP_LINGER_MS;
        struct kurz_http__conn *c, *next;

        for (c = lp->conns; c; c = next) {
                next = c->next;
                if (c->closing)
                        continue;
                if (c->writing && c->tcp.write_queue_size != c->wq_seen) {
                        c->wq_seen = c->tcp.write_queue_size; /* progress */
                        c->t_write = now;
                }
                if (c->parked && now - c->t_parked >= KURZ_HTTP_PARK_MS) {
                        c->parked = false;
                        if (!c->x_active) {
                                conn_process(c);
                                if (c->closing)
                                        continue;
                        }
                }
                if (c->writing && now - c->t_write >= cfg->idle_timeout_ms) {
                        /* The client does not read what we send. */
                        kurz_debug("http: thread %u: write stalled, closing", lp->idx);
                        kurz_http__event(lp, 0);
                        conn_close(c);
                        continue;
                }
                switch (c->phase) {
                case PH_HEADERS:
                        if (now - c->t_phase < cfg->header_timeout_ms)
                                break;
                        if (c->writing || c->out.len) {
                                kurz_http__event(lp, 0);
                                conn_close(c);
                        } else {
                                conn_fail(c, 408, "request headers timed out");
                                conn_process(c);
                        }
                        break;
                case PH_BODY:
                        if (now - c->t_phase < cfg->idle_timeout_ms)
                                break;
                        conn_fail(c, 408, "request body timed out");
                        conn_process(c);
                        break;
                case PH_IDLE:
                        if (now - c->t_phase >= cfg->idle_timeout_ms && !c->writing &&
                            c->out.len == 0) {
                                kurz_http__event(lp, 0);
                                conn_close(c);
                        }
                        break;
                case PH_LINGER:
                        if (now - c->t_phase >= linger)
                                conn_close(c);
                        break;
                case PH_EXCHANGE:
                        break;
                }
        }
}

void kurz_http__conn_stop_all(struct kurz_http__loop *lp)
{
        struct kurz_http__conn *c, *next;

        for (c = lp->conns; c; c = next) {
                next = c->next;
                if (c->closing)
                        continue;
                c->stop_parse = true;
                if (c->x_active)
                        continue; /* its response will carry Connection: close */
                if (c->writing || c->out.len) {
                        c->close_after = true;
                        conn_update_read(c);
                        continue;
                }
                conn_close(c);
        }
}

void kurz_http__conn_force_close(struct kurz_http__loop *lp)
{
        struct kurz_http__conn *c, *next;

        for (c = lp->conns; c; c = next) {
                next = c->next;
                conn_close(c);
        }
}

void kurz_http__conn_orphan(struct kurz_http__loop *lp)
{
        struct kurz_http__conn *c, *next;

        for (c = lp->limbo; c; c = next) {
                int expected = 0;

                next = c->next;
                if (c->x.kind != KURZ_HTTP__X_DEFER)
                        continue;
                if (!atomic_compare_exchange_strong(&c->x.dfr.state, &expected, 2))
                        continue; /* resumed: its message is on the way */
                /* kurz_http_resume() owns c from here and frees it. */
                kurz_error("http: thread %u: deferred exchange not resumed within the grace "
                           "period; abandoning it",
                           lp->idx);
                list_del(&lp->limbo, c);
                lp->outstanding--;
        }
}

void kurz_http__conn_free_limbo(struct kurz_http__loop *lp)
{
        while (lp->limbo) {
                struct kurz_http__conn *c = lp->limbo;
                list_del(&lp->limbo, c);
                conn_free(c);
        }
}

void kurz_http__run_ready(struct kurz_http__loop *lp)
{
        while (lp->ready) {
                struct kurz_http__conn *c = lp->ready;

                lp->ready = c->ready_next;
                c->ready_next = NULL;
                c->is_ready = false;
                if (!c->closing)
                        conn_process(c);
        }
}

/* --- exchange API ----------------------------------------------------------- */

const struct kurz_http_request *kurz_http_request(const struct kurz_http_exchange *x)
{
        return &x->req;
}

void kurz_http_respond(struct kurz_http_exchange *x, int status,
                       const struct kurz_http_header *headers, size_t nheaders,
                       const char *content_type, const char *body, size_t body_len, bool close)
{
        struct kurz_http__conn *c = x->c;
        struct kurz_http__loop *lp = c->lp;
        bool head = x->req.method == KURZ_HTTP_HEAD;
        bool shut;

        if (!c->x_active)
                return; /* answered twice: ignore rather than corrupt the stream */
        if (!c->closing && !c->dead) {
                shut = close || !c->keep_alive || lp->stopping || c->stop_parse;
                if (status < 100 || status > 999 || !headers_ok(headers, nheaders, content_type)) {
                        static const char msg[] = "{\"success\":false,\"message\":\"invalid "
                                                  "response\",\"errorCode\":"
                                                  "\"INTERNAL_SERVER_ERROR\"}";
                        kurz_error("http: thread %u: application sent an invalid response "
                                   "(status %d)",
                                   lp->idx, status);
                        status = 500;
                        headers = NULL;
                        nheaders = 0;
                        content_type = "application/json";
                        body = msg;
                        body_len = sizeof(msg) - 1;
                }
                if (append_response(c, status, headers, nheaders, content_type, body, body_len,
                                    head, shut, c->keep_alive && x->req.http_minor == 0) < 0) {
                        shut = true;
                        c->dead = true;
                }
                if (shut) {
                        c->close_after = true;
                        c->stop_parse = true;
                }
        }
        c->x_active = false;
        c->x.kind = KURZ_HTTP__X_INLINE;
        request_release(c);
        memset(&x->req, 0, sizeof(x->req));
        if (c->handle_closed) {
                list_del(&lp->limbo, c);
                conn_free(c);
                kurz_http__maybe_finish(lp);
                return;
        }
        c->phase = PH_IDLE;
        c->t_phase = uv_now(&lp->loop);
        if (!c->in_parse && !c->closing && !c->is_ready) {
                c->is_ready = true;
                c->ready_next = lp->ready;
                lp->ready = c;
        }
}

static void work_cb(uv_work_t *req)
{
        struct kurz_http_exchange *x = req->data;

        x->work_fn(x->arg);
}

/* lp->offloads changes on the loop thread only; the atomic store lets
 * kurz_http_server_offloads read it from another. */
static void offloads_add(struct kurz_http__loop *lp, int d)
{
        size_t n = atomic_load_explicit(&lp->offloads, memory_order_relaxed);

        atomic_store_explicit(&lp->offloads, n + (size_t)(ptrdiff_t)d, memory_order_relaxed);
}

static void after_work_cb(uv_work_t *req, int status)
{
        struct kurz_http_exchange *x = req->data;
        struct kurz_http__loop *lp = x->c->lp;

        (void)status;
        kurz_http__enter(lp);
        lp->outstanding--;
        offloads_add(lp, -1);
        x->kind = KURZ_HTTP__X_INLINE;
        x->done(x, x->arg);
        kurz_http__run_ready(lp);
        kurz_http__maybe_finish(lp);
}

int kurz_http_offload(struct kurz_http_exchange *x, void (*work)(void *arg),
                      void (*done)(struct kurz_http_exchange *x, void *arg), void *arg)
{
        struct kurz_http__loop *lp = x->c->lp;
        int rc;

        if (!work || !done)
                return -EINVAL;
        if (atomic_load_explicit(&lp->offloads, memory_order_relaxed) >= lp->srv->cfg.max_offload) {
                /* The caller sheds this request (503, Retry-After: 1). A
                 * client that answers it with the next request at once
                 * would turn the CPU the pool needs into more 503s: its
                 * connection is not read again for about a second. */
                x->c->parked = true;
                x->c->t_parked = uv_now(&lp->loop);
                return -EBUSY;
        }
        x->work_fn = work;
        x->done = done;
        x->arg = arg;
        x->work.data = x;
        rc = uv_queue_work(&lp->loop, &x->work, work_cb, after_work_cb);
        if (rc < 0)
                return rc;
        x->kind = KURZ_HTTP__X_OFFLOAD;
        lp->outstanding++;
        offloads_add(lp, 1);
        return 0;
}

struct kurz_http_deferred *kurz_http_defer(struct kurz_http_exchange *x)
{
        x->kind = KURZ_HTTP__X_DEFER;
        atomic_store(&x->dfr.state, 0);
        x->c->lp->outstanding++;
        return &x->dfr;
}

void kurz_http_resume(struct kurz_http_deferred *d,
                      void (*done)(struct kurz_http_exchange *x, void *arg), void *arg)
{
        struct kurz_http_exchange *x =
            (struct kurz_http_exchange *)((char *)d - offsetof(struct kurz_http_exchange, dfr));
        int expected = 0;

        if (!atomic_compare_exchange_strong(&d->state, &expected, 1)) {
                /* The server gave up on it while stopping: nobody else
                 * references the connection any more. */
                conn_free(x->c);
                return;
        }
        d->msg.kind = KURZ_HTTP__MSG_RESUME;
        d->msg.done = done;
        d->msg.arg = arg;
        d->msg.fn = NULL;
        kurz_http__mbox_push(x->c->lp, &d->msg);
}

void kurz_http__conn_resumed(struct kurz_http__loop *lp, struct kurz_http__msg *m)
{
        struct kurz_http_deferred *d =
            (struct kurz_http_deferred *)((char *)m - offsetof(struct kurz_http_deferred, msg));
        struct kurz_http_exchange *x =
            (struct kurz_http_exchange *)((char *)d - offsetof(struct kurz_http_exchange, dfr));

        lp->outstanding--;
        x->kind = KURZ_HTTP__X_INLINE;
        m->done(x, m->arg);
}
