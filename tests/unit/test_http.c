/* tests/unit/test_http.c - the HTTP layer end to end: a real server on
 * 127.0.0.1 (port 0) with a toy application, driven by raw sockets from the
 * test thread, with short timeouts so the whole file runs in a few seconds. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "http/server.h"
#include "test.h"
#include "util/qsbr.h"

static struct kurz_http_server *srv;
static atomic_int sentinel_hits;
static atomic_int events[600];
static atomic_int last_method;
static atomic_int big_hits;
static pthread_t main_thread;
static struct kurz_qsbr *qsbr; /* only for the QSBR server */
static atomic_int qsbr_freed;
static atomic_long qsbr_pending_inside = -1;

/* --- the toy application ------------------------------------------------ */

static void text(struct kurz_http_exchange *x, int status, const char *s, bool close)
{
        kurz_http_respond(x, status, NULL, 0, "text/plain", s, strlen(s), close);
}

static void deferred_done(struct kurz_http_exchange *x, void *arg)
{
        (void)arg;
        text(x, 200, "deferred", false);
}

struct defer_job {
        struct kurz_http_deferred *d;
        unsigned ms;
};

static void *defer_thread(void *arg)
{
        struct defer_job *j = arg;

        usleep(j->ms * 1000);
        kurz_http_resume(j->d, deferred_done, NULL);
        free(j);
        return NULL;
}

static void defer_for(struct kurz_http_exchange *x, unsigned ms)
{
        struct defer_job *j = malloc(sizeof(*j));
        pthread_t t;

        j->d = kurz_http_defer(x);
        j->ms = ms;
        pthread_create(&t, NULL, defer_thread, j);
        pthread_detach(t);
}

struct offload_job {
        int value;
        pthread_t worker;
};

static void offload_work(void *arg)
{
        struct offload_job *j = arg;

        usleep(10000);
        j->worker = pthread_self();
        j->value = 42;
}

static void offload_done(struct kurz_http_exchange *x, void *arg)
{
        struct offload_job *j = arg;
        char buf[64];

        snprintf(buf, sizeof(buf), "offloaded %d %s", j->value,
                 pthread_equal(j->worker, main_thread) ? "main" : "pool");
        free(j);
        text(x, 200, buf, false);
}

static void qsbr_free(void *p)
{
        free(p);
        atomic_fetch_add(&qsbr_freed, 1);
}

static bool path_is(const struct kurz_http_request *r, const char *p)
{
        return kurz_str_eq_lit(r->path, p);
}

static void on_request(void *app, struct kurz_http_exchange *x)
{
        const struct kurz_http_request *r = kurz_http_request(x);
        char buf[1024];

        (void)app;
        atomic_store(&last_method, (int)r->method);
        if (path_is(r, "/hello")) {
                text(x, 200, "hello", false);
        } else if (path_is(r, "/sentinel")) {
                atomic_fetch_add(&sentinel_hits, 1);
                text(x, 200, "sentinel", false);
        } else if (path_is(r, "/echo")) {
                kurz_http_respond(x, 200, NULL, 0, "application/octet-stream", r->body.p,
                                  r->body.len, false);
        } else if (path_is(r, "/info")) {
                snprintf(buf, sizeof(buf), "q=%.*s host=%.*s xff=%.*s ua=%.*s auth=%.*s minor=%u",
                         (int)r->query.len, r->query.p ? r->query.p : "", (int)r->host.len,
                         r->host.p ? r->host.p : "", (int)r->x_forwarded_for.len,
                         r->x_forwarded_for.p ? r->x_forwarded_for.p : "", (int)r->user_agent.len,
                         r->user_agent.p ? r->user_agent.p : "", (int)r->authorization.len,
                         r->authorization.p ? r->authorization.p : "", r->http_minor);
                text(x, 200, buf, false);
        } else if (path_is(r, "/close")) {
                text(x, 200, "bye", true);
        } else if (path_is(r, "/redirect")) {
                struct kurz_http_header h = {KURZ_STR_LIT("Location"), KURZ_STR_LIT("/hello")};
                kurz_http_respond(x, 302, &h, 1, NULL, NULL, 0, false);
        } else if (path_is(r, "/offload")) {
                struct offload_job *j = calloc(1, sizeof(*j));
                if (kurz_http_offload(x, offload_work, offload_done, j) < 0) {
                        free(j);
                        text(x, 500, "offload failed", false);
                }
        } else if (path_is(r, "/defer")) {
                defer_for(x, 50);
        } else if (path_is(r, "/defer-slow")) {
                defer_for(x, 300);
        } else if (path_is(r, "/big")) {
                static char big[200000];
                atomic_fetch_add(&big_hits, 1);
                memset(big, 'z', sizeof(big));
                kurz_http_respond(x, 200, NULL, 0, NULL, big, sizeof(big), false);
        } else if (path_is(r, "/qsbr") && qsbr) {
                /* The loop thread is an online reader while it runs us, so
                 * an object retired now cannot be freed before we return. */
                kurz_qsbr_retire(qsbr, malloc(16), qsbr_free);
                kurz_qsbr_reclaim(qsbr);
                atomic_store(&qsbr_pending_inside, (long)kurz_qsbr_pending(qsbr));
                text(x, 200, "qsbr", false);
        } else if (r->method == KURZ_HTTP_OTHER) {
                text(x, 405, "method", false);
        } else {
                text(x, 404, "not found", false);
        }
}

static void on_event(void *app, unsigned thread, int status)
{
        (void)app;
        (void)thread;
        if (status >= 0 && status < 600)
                atomic_fetch_add(&events[status], 1);
}

static size_t test_max_output; /* 0: default */

static struct kurz_http_server *start_server_q(unsigned threads, size_t max_conns,
                                               struct kurz_qsbr *q)
{
        struct kurz_http_config cfg;
        struct kurz_http_server *s = NULL;

        kurz_http_config_defaults(&cfg);
        cfg.host = "127.0.0.1";
        cfg.port = 0;
        cfg.threads = threads;
        cfg.max_connections = max_conns;
        cfg.header_timeout_ms = 300;
        cfg.idle_timeout_ms = 700;
        cfg.on_request = on_request;
        cfg.on_event = on_event;
        cfg.qsbr = q;
        cfg.max_output = test_max_output;
        if (kurz_http_server_new(&cfg, &s) < 0 || kurz_http_server_start(s) < 0) {
                fprintf(stderr, "cannot start server\n");
                exit(2);
        }
        return s;
}

static struct kurz_http_server *start_server(unsigned threads, size_t max_conns)
{
        return start_server_q(threads, max_conns, NULL);
}

/* --- a raw client ---------------------------------------------------------- */

struct client {
        int fd;
        int nrecv;
        size_t len;
        char buf[1 << 18];
};

struct resp {
        int status;
        char head[4096];
        long clen; /* -1 when absent */
        bool close, keepalive;
        size_t blen;
        char body[1 << 17];
};

static struct client *cl_open_port(unsigned port)
{
        struct client *c = calloc(1, sizeof(*c));
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        struct timeval tv = {.tv_sec = 2};
        int one = 1;

        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        c->fd = socket(AF_INET, SOCK_STREAM, 0);
        setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                close(c->fd);
                free(c);
                return NULL;
        }
        return c;
}

static struct client *cl_open(void)
{
        return cl_open_port(kurz_http_server_port(srv));
}

static void cl_free(struct client *c)
{
        if (c) {
                close(c->fd);
                free(c);
        }
}

static void cl_sendn(struct client *c, const char *s, size_t n)
{
        while (n) {
                ssize_t k = send(c->fd, s, n, MSG_NOSIGNAL);
                if (k <= 0)
                        return;
                s += k;
                n -= (size_t)k;
        }
}

static void cl_send(struct client *c, const char *s)
{
        cl_sendn(c, s, strlen(s));
}

static int cl_fill(struct client *c)
{
        ssize_t k = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);

        if (k <= 0)
                return -1;
        c->nrecv++;
        c->len += (size_t)k;
        return 0;
}

static bool head_has(const struct resp *r, const char *line)
{
        return strcasestr(r->head, line) != NULL;
}

/* Reads one response; head: the request was HEAD (no body follows). */
static int cl_read(struct client *c, struct resp *r, bool head)
{
        char *end;
        size_t hlen;
        const char *cl;

        memset(r, 0, sizeof(*r));
        for (;;) {
                end = memmem(c->buf, c->len, "\r\n\r\n", 4);
                if (end)
                        break;
                if (cl_fill(c) < 0)
                        return -1;
        }
        hlen = (size_t)(end - c->buf) + 4;
        if (hlen >= sizeof(r->head))
                return -1;
        memcpy(r->head, c->buf, hlen);
        r->head[hlen] = '\0';
        if (sscanf(r->head, "HTTP/1.1 %d", &r->status) != 1)
                return -1;
        cl = strcasestr(r->head, "\r\nContent-Length: ");
        r->clen = cl ? atol(cl + 18) : -1;
        r->close = head_has(r, "\r\nConnection: close\r\n");
        r->keepalive = head_has(r, "\r\nConnection: keep-alive\r\n");
        r->blen = head || r->clen < 0 ? 0 : (size_t)r->clen;
        if (r->blen >= sizeof(r->body))
                return -1;
        while (c->len < hlen + r->blen)
                if (cl_fill(c) < 0)
                        return -1;
        memcpy(r->body, c->buf + hlen, r->blen);
        r->body[r->blen] = '\0';
        memmove(c->buf, c->buf + hlen + r->blen, c->len - hlen - r->blen);
        c->len -= hlen + r->blen;
        return 0;
}

/* True when the server closes the connection within ms and sent nothing
 * more (buffered bytes count as "more"). */
static bool cl_closed_within(struct client *c, unsigned ms)
{
        struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
        char b[4096];
        ssize_t k;

        if (c->len)
                return false;
        setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        k = recv(c->fd, b, sizeof(b), 0);
        return k == 0 || (k < 0 && errno == ECONNRESET);
}

static uint64_t now_ms(void)
{
        return kurz_http_now_ns() / 1000000u;
}

/* One request, one response on a fresh connection. */
static int roundtrip(const char *req, struct resp *r)
{
        struct client *c = cl_open();
        int rc;

        if (!c)
                return -1;
        cl_send(c, req);
        rc = cl_read(c, r, false);
        cl_free(c);
        return rc;
}

static struct resp R; /* big; one at a time */

/* --- tests ----------------------------------------------------------------- */

static void test_get_inline(void)
{
        struct client *c = cl_open();

        CHECK(c != NULL);
        cl_send(c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
        CHECK_EQ_INT(cl_read(c, &R, false), 0);
        CHECK_EQ_INT(R.status, 200);
        CHECK_EQ_STR(R.body, "hello");
        CHECK_EQ_INT(R.clen, 5);
        CHECK(head_has(&R, "\r\nDate: "));
        CHECK(head_has(&R, "\r\nContent-Type: text/plain\r\n"));
        CHECK(!R.close);
        CHECK_EQ_INT(atomic_load(&last_method), KURZ_HTTP_GET);
        cl_free(c);
}

static void test_keepalive(void)
{
        struct client *c = cl_open();

        for (int i = 0; i < 5; i++) {
                cl_send(c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
                CHECK_EQ_INT(cl_read(c, &R, false), 0);
                CHECK_EQ_INT(R.status, 200);
                CHECK_EQ_STR(R.body, "hello");
        }
        cl_send(c, "GET /close HTTP/1.1\r\nHost: t\r\n\r\n");
        CHECK_EQ_INT(cl_read(c, &R, false), 0);
        CHECK_EQ_STR(R.body, "bye");
        CHECK(R.close);
        CHECK(cl_closed_within(c, 1000));
        cl_free(c);
}

static void test_pipeline(void)
{
        struct client *c = cl_open();
        char req[4096];
        size_t n = 0;
        char want[64];

        for (int i = 0; i < 10; i++)
                n += (size_t)snprintf(req + n, sizeof(req) - n,
                                      "GET /info?i=%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
        cl_sendn(c, req, n);
        for (int i = 0; i < 10; i++) {
                CHECK_EQ_INT(cl_read(c, &R, false), 0);
                CHECK_EQ_INT(R.status, 200);
                snprintf(want, sizeof(want), "q=i=%d host=t ", i);
                CHECK(strncmp(R.body, want, strlen(want)) == 0);
        }
        /* All ten answers left in one write, so they arrive together. */
        CHECK(c->nrecv <= 2);
        CHECK_EQ_INT((long)c->len, 0);
        cl_free(c);
}

static void test_split_bytes(void)
{
        const char *req = "GET /info?split=1 HTTP/1.1\r\nHost: bytes\r\nUser-Agent: slow\r\n\r\n";
        struct client *c = cl_open();

        for (size_t i = 0; req[i]; i++) {
                cl_sendn(c, req + i, 1);
                usleep(1000);
        }
        CHECK_EQ_INT(cl_read(c, &R, false), 0);
        CHECK_EQ_INT(R.status, 200);
        CHECK(strstr(R.body, "q=split=1 host=bytes ") == R.body);
        CHECK(strstr(R.body, "ua=slow") != NULL);
        cl_free(c);
}

static void test_head(void)
{
        struct client *c = cl_open();

        cl_send(c, "HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\nGET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
        CHECK_EQ_INT(cl_read(c, &R, true), 0);
        CHECK_EQ_INT(R.status, 200);
        CHECK_EQ_INT(R.clen, 5);
        CHECK_EQ_INT(atomic_load(&last_method), KURZ_HTTP_GET);
        /* The next bytes are the second response: the HEAD one had no body. */
        CHECK_EQ_INT(cl_read(c, &R, false), 0);
        CHECK_EQ_INT(R.status, 200);
        CHECK_EQ_STR(R.body, "hello");
        cl_free(c);
}

static void test_redirect_has_length(void)
{
        CHECK_EQ_INT(roundtrip("GET /redirect HTTP/1.1\r\nHost: t\r\n\r\n", &R), 0);
        CHECK_EQ_INT(R.status, 302);
        CHECK_EQ_INT(R.clen, 0);
        CHECK(head_has(&R, "\r\nLocation: /hello\r\n"));
        CHECK(strncmp(R.head, "HTTP/1.1 302 Found\r\n", 20) == 0);
}

static void test_method_other(void)
{
        CHECK_EQ_INT(roundtrip("PROPFIND /x HTTP/1.1\r\nHost: t\r\n\r\n", &R), 0);
        CHECK_EQ_INT(R.status, 405);
        CHECK_EQ_INT(atomic_load(&last_method), KURZ_HTTP_OTHER);
}

static void test_headers_copied(void)
{
        CHECK_EQ_INT(roundtrip("GET /info HTTP/1.1\r\nhOST: example.org  \r\n"
                               "X-Forwarded-For: 1.1.1.1\r\nUser-Agent: ua/1\r\n"
                               "x-forwarded-for: 2.2.2.2\r\nAuthorization: Bearer k\r\n\r\n",
                               &R),
                     0);
        CHECK_EQ_STR(R.body, "q= host=example.org xff=1.1.1.1, 2.2.2.2 ua=ua/1 auth=Bearer k "
                             "minor=1");
}

/* Sends a bad request followed by a good one; expects `status`, a closed
 * connection, and the good one never reaching the application. */
static void expect_reject(const char *bad, size_t badlen, int status)
{
        struct client *c = cl_open();
        int before = atomic_load(&sentinel_hits);
        int ev = atomic_load(&events[status]);

        cl_sendn(c, bad, badlen);
        cl_send(c, "GET /sentinel HTTP/1.1\r\nHost: t\r\n\r\n");
        CHECK_EQ_INT(cl_read(c, &R, false), 0);
        CHECK_EQ_INT(R.status, status);
        CHECK(R.close);
        CHECK(strstr(R.body, "\"success\":false") != NULL);
        CHECK(strstr(R.body, "\"errorCode\":\"INVALID_INPUT\"") != NULL);
        CHECK(cl_closed_within(c, 1500));
        CHECK_EQ_INT(atomic_load(&sentinel_hits), before);
        CHECK(atomic_load(&events[status]) > ev);
        cl_free(c);
}

static void test_414(void)
{
        size_t n = 9000;
        char *req = malloc(n + 64);
        size_t k = 0;

        k += (size_t)sprintf(req, "GET /");
        memset(req + k, 'a', n);
        k += n;
        k += (size_t)sprintf(req + k, " HTTP/1.1\r\nHost: t\r\n\r\n");
        expect_reject(req, k, 414);
        free(req);
}

static void test_431_size(void)
{
        size_t n = 9000;
        char *req = malloc(n + 128);
        size_t k = 0;

        k += (size_t)sprintf(req, "GET /hello HTTP/1.1\r\nHost: t\r\nX-Big: ");
        memset(req + k, 'b', n);
        k += n;
        k += (size_t)sprintf(req + k, "\r\n\r\n");
        expect_reject(req, k, 431);
        free(req);
}

static void test_431_count(void)
{
        char req[8192];
        size_t k = (size_t)sprintf(req, "GET /hello HTTP/1.1\r\nHost: t\r\n");

        for (int i = 0; i < 101; i++)
                k += (size_t)sprintf(req + k, "X-H%d: v\r\n", i);
        k += (size_t)sprintf(req + k, "\r\n");
        expect_reject(req, k, 431);
}

static void test_413_content_length(void)
{
        struct client *c = cl_open();
        uint64_t t0 = now_ms();

        /* The body is never sent: the answer must come from the header. */
        cl_send(c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n");
        CHECK_EQ_INT(cl_read(c, &R, false), 0);
        CHECK_EQ_INT(R.status, 413);
        CHECK(R.close);
        CHECK(now_ms() - t0 < 250);
        CHECK(cl_closed_within(c, 1500));
        cl_free(c);
}

static void test_413_chunked(void)
{
        struct client *c = cl_open();
        static char chunk[16384];

        memset(chunk, 'c', sizeof(chunk));
        cl_send(c, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
        for (int i = 0; i < 5; i++) {
                cl_send(c, "4000\r\n");
                cl_sendn(c, chunk, sizeof(chunk));
                cl_send(c, "\r\n");
        }
        cl_send(c, "0\r\n\r\n");
        CHECK_EQ_INT(cl_read(c, &R, false), 0);
        CHECK_EQ_INT(R.status, 413);
        CHECK(cl_closed_within(c, 1500));
        cl_free(c);
}

static void test_framing_errors(void)
{
        const char *cl_te = "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                            "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        const char *te_cl = "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                            "Content-Length: 5\r\n\r\n0\r\n\r\n";
        const char *dup_cl = "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                             "Content-Length: 5\r\n\r\nhello";
        const char *bad_te = "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n";
        const char *no_host = "GET /hello HTTP/1.1\r\nUser-Agent: x\r\n\r\n";
        const char *two_hosts = "GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n";
        const char *garbage = "GET /hello HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n";
        const char *version = "GET /hello HTTP/2.0\r\nHost: t\r\n\r\n";

        expect_reject(cl_te, strlen(cl_te), 400);
        expect_reject(te_cl, strlen(te_cl), 400);
        expect_reject(dup_cl, strlen(dup_cl), 400);
        expect_reject(bad_te, strlen(bad_te), 400);
        expect_reject(no_host, strlen(no_host), 400);
        expect_reject(two_hosts, strlen(two_hosts), 400);
        expect_reject(garbage, strlen(garbage), 400);
        expect_reject(version, strlen(version), 505);
}

static void test_http10(void)
{
        struct client *c = cl_open();

        /* No Host is fine in 1.0; no keep-alive asked, so it closes. */
        cl_send(c, "GET /info HTTP/1.0\r\n\r\n");
        CHECK_EQ_INT(cl_read(c, &R, false), 0);
        CHECK_EQ_INT(R.status, 200);
        CHECK(strstr(R.body, "minor=0") != NULL);
        CHECK(R.close);
        CHECK(cl_closed_within(c, 1000));
        cl_free(c);

        c = cl_open();
        cl_send(c, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        CHECK_EQ_INT(cl_read(c, &R, false), 0);
        CHECK(R.keepalive);
        CHECK(!R.close);
        cl_send(c, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        CHECK_EQ_INT(cl_read(c, &R, false), 0);
        CHECK_EQ_STR(R.body, "hello");
        cl_free(c);
}

static void test_post_bodies(void)
{
        struct client *c = cl_open();

        cl_send(c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world");
        CHECK_EQ_INT(cl_read(c, &R, false), 0);
        CHECK_EQ_INT(R.status, 200);
        CHECK_EQ_STR(R.body, "hello world");
        cl_send(c, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
        CHECK_EQ_INT(cl_read(c, &R, false), 0);
        CHECK_EQ_INT(R.status, 200);
        CHECK_EQ_STR(R.body, "hello world");
        cl_free(c);

        /* A body at the limit, sent in pieces, arrives intact. */
        {
                size_t n = 65536;
                char *big = malloc(n);
                char hdr[128];
                for (size_t i = 0; i < n; i++)
                        big[i] = (char)('a' + i % 26);
                c = cl_open();
                snprintf(hdr, sizeof(hdr),
                         "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n", n);
                cl_send(c, hdr);
                cl_sendn(c, big, n / 2);
                usleep(5000);
                cl_sendn(c, big + n / 2, n - n / 2);
                CHECK_EQ_INT(cl_read(c, &R, false), 0);
                CHECK_EQ_INT(R.status, 200);
                CHECK_EQ_INT((long)R.blen, (long)n);
                CHECK(memcmp(R.body, big, n) == 0);
                cl_free(c);
                free(big);
        }
}

static void test_expect_continue(void)
{
        struct client *c = cl_open();

        cl_send(c, "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                   "Content-Length: 4\r\n\r\n");
        CHECK_EQ_INT(cl_read(c, &R, false), 0);
        CHECK_EQ_INT(R.status, 100);
        cl_send(c, "ping");
        CHECK_EQ_INT(cl_read(c, &R, false), 0);
        CHECK_EQ_INT(R.status, 200);
        CHECK_EQ_STR(R.body, "ping");
        cl_free(c);
}

/* A client that sends requests but never reads the answers: the server stops
 * reading from it and closes it when the writes make no progress. */
static void test_write_stall(void)
{
        struct kurz_http_server *s5;
        struct sockaddr_in sa = {.sin_family = AF_INET};
        int small = 4096, fd, ev = atomic_load(&events[0]);
        static char reqs[100 * 40];
        size_t n = 0;
        uint64_t t0;

        test_max_output = 65536;
        s5 = start_server(1, 10);
        test_max_output = 0;
        sa.sin_port = htons((uint16_t)kurz_http_server_port(s5));
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fd = socket(AF_INET, SOCK_STREAM, 0);
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
        CHECK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
        for (int i = 0; i < 100; i++)
                n += (size_t)snprintf(reqs + n, sizeof(reqs) - n,
                                      "GET /big HTTP/1.1\r\nHost: t\r\n\r\n");
        send(fd, reqs, n, MSG_NOSIGNAL);
        t0 = now_ms();
        usleep(200000);
        CHECK_EQ_INT(kurz_http_server_connections(s5), 1);
        /* The kernel buffers a few MB; beyond that parsing stopped. */
        CHECK(atomic_load(&big_hits) < 50);
        while (kurz_http_server_connections(s5) != 0 && now_ms() - t0 < 3000)
                usleep(10000);
        CHECK_EQ_INT(kurz_http_server_connections(s5), 0);
        CHECK(now_ms() - t0 >= 600);
        CHECK(atomic_load(&events[0]) > ev);
        close(fd);
        kurz_http_server_stop(s5, 100);
        kurz_http_server_free(s5);
}

/* Never crash on any bytes: random garbage and mutated valid requests. */
static void test_garbage(void)
{
        static const char *tmpl[] = {
            "GET /info?a=b HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n",
            "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
            ("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
             "3\r\nabc\r\n0\r\nTrailer: x\r\n\r\n"),
        };
        unsigned seed = 12345;
        char buf[2048];
        struct timeval tv = {.tv_usec = 20000};

        for (int i = 0; i < 150; i++) {
                struct client *c = cl_open();
                const char *t = tmpl[i % 3];
                size_t n = strlen(t);

                memcpy(buf, t, n);
                if (i % 5 == 4) {
                        n = 1 + (size_t)rand_r(&seed) % sizeof(buf);
                        for (size_t k = 0; k < n; k++)
                                buf[k] = (char)rand_r(&seed);
                } else {
                        for (int k = 0; k < 1 + i % 4; k++)
                                buf[(size_t)rand_r(&seed) % n] = (char)rand_r(&seed);
                }
                cl_sendn(c, buf, n);
                cl_sendn(c, buf, n); /* and again, pipelined */
                setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
                while (cl_fill(c) == 0 && c->len < sizeof(c->buf) / 2)
                        ;
                cl_free(c);
        }
        CHECK_EQ_INT(roundtrip("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n", &R), 0);
        CHECK_EQ_STR(R.body, "hello");
}

static void test_header_timeout(void)
{
        struct client *c = cl_open();
        uint64_t t0 = now_ms(), dt;
        int ev = atomic_load(&events[408]);

        cl_send(c, "GET /hello HTTP/1.1\r\nHo");
        CHECK_EQ_INT(cl_read(c, &R, false), 0);
        dt = now_ms() - t0;
        CHECK_EQ_INT(R.status, 408);
        CHECK(dt >= 250 && dt < 1500);
        CHECK(cl_closed_within(c, 1500));
        CHECK(atomic_load(&events[408]) > ev);
        cl_free(c);
}

static void test_idle_timeout(void)
{
        struct client *c = cl_open();
        uint64_t t0;
        char b[16];

        cl_send(c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
        CHECK_EQ_INT(cl_read(c, &R, false), 0);
        t0 = now_ms();
        CHECK(!cl_closed_within(c, 300)); /* still open well before the timeout */
        CHECK(recv(c->fd, b, sizeof(b), MSG_DONTWAIT) < 0);
        CHECK(cl_closed_within(c, 2000));
        CHECK(now_ms() - t0 >= 600);
        cl_free(c);
}

static void test_max_connections(void)
{
        struct kurz_http_server *s2 = start_server(1, 2);
        unsigned port = kurz_http_server_port(s2);
        struct client *a = cl_open_port(port), *b = cl_open_port(port), *extra;
        int ev = atomic_load(&events[503]);

        cl_send(a, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
        CHECK_EQ_INT(cl_read(a, &R, false), 0);
        cl_send(b, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
        CHECK_EQ_INT(cl_read(b, &R, false), 0);
        CHECK_EQ_INT(kurz_http_server_connections(s2), 2);

        extra = cl_open_port(port);
        CHECK(extra != NULL);
        if (extra) {
                /* Refused: a 503 then EOF, or just EOF. */
                if (cl_read(extra, &R, false) == 0)
                        CHECK_EQ_INT(R.status, 503);
                CHECK(cl_closed_within(extra, 1000));
        }
        CHECK(atomic_load(&events[503]) > ev);

        cl_send(a, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
        CHECK_EQ_INT(cl_read(a, &R, false), 0);
        CHECK_EQ_STR(R.body, "hello");
        cl_send(b, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
        CHECK_EQ_INT(cl_read(b, &R, false), 0);
        CHECK_EQ_STR(R.body, "hello");
        cl_free(extra);
        cl_free(a);
        cl_free(b);
        kurz_http_server_stop(s2, 500);
        CHECK_EQ_INT(kurz_http_server_connections(s2), 0);
        kurz_http_server_free(s2);
}

static void test_offload_and_defer(void)
{
        struct client *c = cl_open();

        cl_send(c, "GET /offload HTTP/1.1\r\nHost: t\r\n\r\n");
        CHECK_EQ_INT(cl_read(c, &R, false), 0);
        CHECK_EQ_STR(R.body, "offloaded 42 pool");
        cl_send(c, "GET /defer HTTP/1.1\r\nHost: t\r\n\r\n");
        CHECK_EQ_INT(cl_read(c, &R, false), 0);
        CHECK_EQ_STR(R.body, "deferred");
        cl_send(c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
        CHECK_EQ_INT(cl_read(c, &R, false), 0);
        CHECK_EQ_STR(R.body, "hello");
        cl_free(c);
}

static void test_pipeline_with_deferred_first(void)
{
        struct client *c = cl_open();

        cl_send(c, "GET /defer HTTP/1.1\r\nHost: t\r\n\r\n"
                   "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"
                   "GET /offload HTTP/1.1\r\nHost: t\r\n\r\n"
                   "GET /info?last HTTP/1.1\r\nHost: t\r\n\r\n");
        CHECK_EQ_INT(cl_read(c, &R, false), 0);
        CHECK_EQ_STR(R.body, "deferred");
        CHECK_EQ_INT(cl_read(c, &R, false), 0);
        CHECK_EQ_STR(R.body, "hello");
        CHECK_EQ_INT(cl_read(c, &R, false), 0);
        CHECK_EQ_STR(R.body, "offloaded 42 pool");
        CHECK_EQ_INT(cl_read(c, &R, false), 0);
        CHECK(strncmp(R.body, "q=last ", 7) == 0);
        cl_free(c);
}

static void test_disconnect_while_deferred(void)
{
        struct client *c = cl_open();

        cl_send(
            c, "GET /defer-slow HTTP/1.1\r\nHost: t\r\n\r\nGET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
        usleep(20000);
        cl_free(c);
        c = cl_open();
        cl_send(c, "POST /offload HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc");
        cl_free(c);
        usleep(400000); /* the resumes land on closed connections */
        CHECK_EQ_INT(roundtrip("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n", &R), 0);
        CHECK_EQ_STR(R.body, "hello");
}

static atomic_int posted;

static void post_fn(void *arg)
{
        (void)arg;
        atomic_store(&posted, pthread_equal(pthread_self(), main_thread) ? 1 : 2);
}

static void test_post(void)
{
        CHECK_EQ_INT(kurz_http_server_post(srv, 1, post_fn, NULL), 0);
        CHECK_EQ_INT(kurz_http_server_post(srv, 7, post_fn, NULL), -EINVAL);
        for (int i = 0; i < 200 && !atomic_load(&posted); i++)
                usleep(5000);
        CHECK_EQ_INT(atomic_load(&posted), 2);
}

struct stopper {
        struct kurz_http_server *s;
        unsigned delay_ms;
};

static void *stop_thread(void *arg)
{
        struct stopper *st = arg;

        usleep(st->delay_ms * 1000);
        kurz_http_server_stop(st->s, 2000);
        return NULL;
}

static void test_graceful_stop(void)
{
        struct kurz_http_server *s3 = start_server(2, 100);
        unsigned port = kurz_http_server_port(s3);
        struct client *busy = cl_open_port(port), *idle = cl_open_port(port);
        struct stopper st = {s3, 50};
        pthread_t t;
        uint64_t t0;

        cl_send(idle, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
        CHECK_EQ_INT(cl_read(idle, &R, false), 0);
        cl_send(busy, "GET /defer-slow HTTP/1.1\r\nHost: t\r\n\r\n");
        t0 = now_ms();
        pthread_create(&t, NULL, stop_thread, &st);
        /* The idle connection is closed at once, the busy one gets its answer. */
        CHECK(cl_closed_within(idle, 1000));
        CHECK(now_ms() - t0 < 300);
        CHECK_EQ_INT(cl_read(busy, &R, false), 0);
        CHECK_EQ_INT(R.status, 200);
        CHECK_EQ_STR(R.body, "deferred");
        CHECK(R.close);
        CHECK(cl_closed_within(busy, 1500));
        pthread_join(t, NULL);
        CHECK_EQ_INT(kurz_http_server_post(s3, 0, post_fn, NULL), -ESHUTDOWN);
        CHECK(cl_open_port(port) == NULL); /* no longer listening */
        CHECK_EQ_INT(kurz_http_server_connections(s3), 0);
        kurz_http_server_free(s3);
        cl_free(busy);
        cl_free(idle);
}

/* Stop with a grace period shorter than a deferred exchange: the connection
 * is force-closed, the late resume is discarded safely, stop waits for it. */
static void test_stop_force_close(void)
{
        struct kurz_http_server *s6 = start_server(1, 10);
        struct client *c = cl_open_port(kurz_http_server_port(s6));
        uint64_t t0;

        cl_send(c, "GET /defer-slow HTTP/1.1\r\nHost: t\r\n\r\n");
        usleep(20000);
        t0 = now_ms();
        kurz_http_server_stop(s6, 50);
        CHECK(now_ms() - t0 >= 200); /* waited for the resume */
        CHECK(now_ms() - t0 < 2000);
        CHECK(cl_closed_within(c, 500)); /* closed without an answer */
        kurz_http_server_free(s6);
        cl_free(c);
}

static void test_qsbr(void)
{
        struct kurz_http_server *s4;
        struct client *c;

        qsbr = kurz_qsbr_new(1);
        s4 = start_server_q(1, 10, qsbr);
        c = cl_open_port(kurz_http_server_port(s4));
        cl_send(c, "GET /qsbr HTTP/1.1\r\nHost: t\r\n\r\n");
        CHECK_EQ_INT(cl_read(c, &R, false), 0);
        CHECK_EQ_STR(R.body, "qsbr");
        CHECK_EQ_INT(atomic_load(&qsbr_pending_inside), 1);
        /* Once the loop waits in poll it is offline: the object goes. */
        for (int i = 0; i < 200 && atomic_load(&qsbr_freed) == 0; i++) {
                usleep(2000);
                kurz_qsbr_reclaim(qsbr);
        }
        CHECK_EQ_INT(atomic_load(&qsbr_freed), 1);
        cl_free(c);
        kurz_http_server_stop(s4, 100);
        kurz_http_server_free(s4);
        kurz_qsbr_free(qsbr);
        qsbr = NULL;
}

static void test_bad_address(void)
{
        struct kurz_http_config cfg;
        struct kurz_http_server *s = NULL;

        kurz_http_config_defaults(&cfg);
        cfg.on_request = on_request;
        cfg.host = "not an address";
        CHECK(kurz_http_server_new(&cfg, &s) < 0);
        CHECK(s == NULL);
        cfg.host = "::1";
        cfg.port = 0;
        cfg.threads = 2;
        CHECK_EQ_INT(kurz_http_server_new(&cfg, &s), 0);
        CHECK(s && kurz_http_server_port(s) != 0);
        kurz_http_server_free(s); /* never started */
}

int main(void)
{
        main_thread = pthread_self();
        srv = start_server(2, 1000);
        RUN(test_get_inline);
        RUN(test_keepalive);
        RUN(test_pipeline);
        RUN(test_split_bytes);
        RUN(test_head);
        RUN(test_redirect_has_length);
        RUN(test_method_other);
        RUN(test_headers_copied);
        RUN(test_414);
        RUN(test_431_size);
        RUN(test_431_count);
        RUN(test_413_content_length);
        RUN(test_413_chunked);
        RUN(test_framing_errors);
        RUN(test_http10);
        RUN(test_post_bodies);
        RUN(test_expect_continue);
        RUN(test_write_stall);
        RUN(test_garbage);
        RUN(test_header_timeout);
        RUN(test_idle_timeout);
        RUN(test_max_connections);
        RUN(test_offload_and_defer);
        RUN(test_pipeline_with_deferred_first);
        RUN(test_disconnect_while_deferred);
        RUN(test_post);
        RUN(test_graceful_stop);
        RUN(test_stop_force_close);
        RUN(test_qsbr);
        RUN(test_bad_address);
        kurz_http_server_stop(srv, 1000);
        kurz_http_server_free(srv);
        TEST_END("http");
}
