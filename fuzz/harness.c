/* fuzz/harness.c - runs the real kurz service in-process around the in-memory
 * store and feeds it one connection per fuzz input through
 * kurz_http_server_adopt() and a socketpair: no TCP handshake, no ports, and
 * the exact parser -> router -> handler -> writer path of production. Every
 * response stream is parsed back and checked. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <http_parser.h>
#include <jansson.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api/service.h"
#include "config/config.h"
#include "http/server.h"
#include "memstore.h"
#include "util/log.h"

#define HANG_MS       10000 /* no response or close within this: a hang */
#define SPLIT_WAIT_MS 50    /* wait for the server to read the first part */
#define TICK_EVERY    512   /* exchanges between periodic jobs */
#define RESP_MAX      (4u << 20)

/* sha256("fuzz-admin-key") */
#define ADMIN_KEY_HASH "6712f9c9ac960f9c86c92a7be5a3ac97dfc1d9d3c25d16cd7955a68088401848"

static struct kurz_config cfg;
static struct kurz_service *svc;
static struct kurz_store *store;
static struct kurz_http_server *http;
static unsigned long exchanges;

static void fatal(const char *what, const char *detail)
{
        fprintf(stderr, "fuzz harness: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
        abort();
}

static void service_stop(void)
{
        kurz_service_test_stop(svc);
        svc = NULL;
}

void kurz_fuzz_service(void)
{
        int rc;

        if (svc)
                return;
        signal(SIGPIPE, SIG_IGN);
        setenv("UV_THREADPOOL_SIZE", "2", 1);
        kurz_log_set_level(getenv("KURZ_FUZZ_LOG") ? KURZ_LOG_DEBUG : KURZ_LOG_ERROR);
        kurz_config_defaults(&cfg);
        snprintf(cfg.listen_host, sizeof(cfg.listen_host), "127.0.0.1");
        cfg.listen_port = 0;
        cfg.threads = 1;
        cfg.store_threads = 2;
        /* Small limits, so inputs of a few KiB reach every 413/414/431. */
        cfg.max_request_line = 1024;
        cfg.max_header_bytes = 2048;
        cfg.max_headers = 24;
        cfg.max_body = 4096;
        cfg.l1_size = 512;
        cfg.create_rate_limit = 1000000;
        cfg.read_rate_limit = 1000000;
        cfg.redirect_max_age_ms = 60000;
        cfg.purge_unused_days = 1;
        cfg.shutdown_grace_ms = 2000;
        snprintf(cfg.trusted_proxies, sizeof(cfg.trusted_proxies), "127.0.0.1,::1/128");
        /* OpenSSL first, on this thread: its one-time initialisation (run
         * by the first SHA-256, normally on a loop thread) leaves error
         * state in the thread that runs it, which is freed only at exit.
         * It also registers its atexit cleanup before ours, so the service
         * stops before OpenSSL is torn down (handlers run in reverse). */
        if (!OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, NULL))
                fatal("OPENSSL_init_crypto failed", NULL);
        store = kurz_memstore_new();
        if (!store)
                fatal("out of memory", NULL);
        if (store->ops->key_add(store, ADMIN_KEY_HASH, "fuzz") < 0)
                fatal("key_add failed", NULL);
        rc = kurz_service_test_start(&cfg, store, &svc);
        if (rc < 0)
                fatal("cannot start the service", strerror(-rc));
        http = kurz_service_test_http(svc);
        atexit(service_stop);
}

size_t kurz_fuzz_opts_decode(const uint8_t *data, size_t len, struct kurz_fuzz_opts *o)
{
        memset(o, 0, sizeof(*o));
        if (len < 2)
                return 0;
        o->peer = (enum kurz_fuzz_peer)(data[0] & 3);
        o->store_failing = (data[0] & 0x0c) == 0x0c; /* rarely: 1 in 4 */
        o->tick = data[0] & 0x10;
        o->split = data[1] ? (size_t)data[1] * (len - 2) / 256 : 0;
        return 2;
}

static uint64_t now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void make_peer(enum kurz_fuzz_peer kind, struct sockaddr_storage *ss)
{
        struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
        static const uint8_t public6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 7};

        memset(ss, 0, sizeof(*ss));
        switch (kind) {
        case KURZ_FUZZ_PEER_PROXY4:
        case KURZ_FUZZ_PEER_PUBLIC4:
                a4->sin_family = AF_INET;
                a4->sin_port = htons(40000);
                a4->sin_addr.s_addr =
                    htonl(kind == KURZ_FUZZ_PEER_PROXY4 ? 0x7f000001u : 0xcb007109u);
                break;
        case KURZ_FUZZ_PEER_PROXY6:
        case KURZ_FUZZ_PEER_PUBLIC6:
                a6->sin6_family = AF_INET6;
                a6->sin6_port = htons(40000);
                if (kind == KURZ_FUZZ_PEER_PROXY6)
                        a6->sin6_addr = in6addr_loopback;
                else
                        memcpy(&a6->sin6_addr, public6, 16);
                break;
        }
}

/* --- the client side ------------------------------------------------------ */

struct client {
        int fd;
        char *in; /* everything the server sent */
        size_t in_len, in_cap;
        bool eof;
        uint64_t deadline;
};

/* Reads what is available; returns false on EOF or error. */
static bool client_read(struct client *c)
{
        for (;;) {
                ssize_t n;

                if (c->in_cap - c->in_len < 4096) {
                        size_t ncap = c->in_cap ? c->in_cap * 2 : 16384;
                        char *np;

                        if (ncap > RESP_MAX)
                                fatal("the server sent more than 4 MiB for one input", NULL);
                        np = realloc(c->in, ncap);
                        if (!np)
                                fatal("out of memory", NULL);
                        c->in = np;
                        c->in_cap = ncap;
                }
                n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
                if (n > 0) {
                        c->in_len += (size_t)n;
                        continue;
                }
                if (n < 0 && (errno == EAGAIN || errno == EINTR))
                        return true;
                c->eof = true; /* EOF, or ECONNRESET: the server closed */
                return false;
        }
}

/* Waits for the fd to become readable (and writable when want_write), with
 * the hang deadline. */
static short client_wait(struct client *c, bool want_write)
{
        struct pollfd pfd = {c->fd, (short)(POLLIN | (want_write ? POLLOUT : 0)), 0};
        uint64_t now = now_ms();
        int n;

        if (now >= c->deadline)
                fatal("hang: the server neither answered nor closed the connection", NULL);
        n = poll(&pfd, 1, (int)(c->deadline - now));
        if (n < 0 && errno != EINTR)
                fatal("poll", strerror(errno));
        return n > 0 ? pfd.revents : 0;
}

static void client_write(struct client *c, const uint8_t *p, size_t len)
{
        while (len) {
                ssize_t n = write(c->fd, p, len);

                if (n > 0) {
                        p += n;
                        len -= (size_t)n;
                        continue;
                }
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno != EAGAIN)
                        return; /* the server closed early: the rest is moot */
                /* Full: read responses meanwhile, so neither side blocks. */
                short ev = client_wait(c, true);
                if (ev & POLLIN && !client_read(c))
                        return;
        }
}

/* Waits until the server has taken every buffered byte from its end (a
 * duplicate of it, `peek`), or briefly gives up: then it is not reading. */
static void wait_consumed(int peek)
{
        uint64_t until = now_ms() + SPLIT_WAIT_MS;
        int pending = 0;

        while (ioctl(peek, FIONREAD, &pending) == 0 && pending > 0 && now_ms() < until) {
                struct timespec ts = {0, 20000};
                nanosleep(&ts, NULL);
        }
}

/* --- response checks ------------------------------------------------------ */

struct check {
        http_parser p;
        bool in_value, json;
        char field[32];
        size_t field_len;
        char *body;
        size_t body_len, body_cap;
        size_t responses;
};

static int ck_field(http_parser *p, const char *at, size_t len)
{
        struct check *k = p->data;

        if (k->in_value) {
                k->field_len = 0; /* a new field begins */
                k->in_value = false;
        }
        if (len > sizeof(k->field) - k->field_len)
                len = sizeof(k->field) - k->field_len;
        memcpy(k->field + k->field_len, at, len);
        k->field_len += len;
        return 0;
}

static int ck_value(http_parser *p, const char *at, size_t len)
{
        struct check *k = p->data;

        if (k->field_len == 12 && strncasecmp(k->field, "content-type", 12) == 0 && len >= 16 &&
            strncasecmp(at, "application/json", 16) == 0)
                k->json = true;
        k->in_value = true; /* the next field callback starts a new name */
        return 0;
}

static int ck_begin(http_parser *p)
{
        struct check *k = p->data;

        k->json = false;
        k->in_value = false;
        k->field_len = 0;
        k->body_len = 0;
        return 0;
}

static int ck_body(http_parser *p, const char *at, size_t len)
{
        struct check *k = p->data;

        if (k->body_cap - k->body_len < len) {
                size_t ncap = k->body_len + len + 1024;
                char *np = realloc(k->body, ncap);

                if (!np)
                        fatal("out of memory", NULL);
                k->body = np;
                k->body_cap = ncap;
        }
        memcpy(k->body + k->body_len, at, len);
        k->body_len += len;
        return 0;
}

static int ck_complete(http_parser *p)
{
        struct check *k = p->data;
        json_error_t err;
        json_t *v;

        k->responses++;
        if (p->status_code == 500)
                fatal("the service answered 500", NULL);
        if (k->json && p->status_code >= 200) {
                v = json_loadb(k->body ? k->body : "", k->body_len, JSON_ALLOW_NUL, &err);
                if (!v || !json_is_object(v)) {
                        fprintf(stderr, "body: %.*s\n", (int)k->body_len, k->body);
                        fatal("a JSON response body is not a JSON object", err.text);
                }
                json_decref(v);
        }
        return 0;
}

static const http_parser_settings ck_settings = {
    .on_message_begin = ck_begin,
    .on_header_field = ck_field,
    .on_header_value = ck_value,
    .on_body = ck_body,
    .on_message_complete = ck_complete,
};

/* Parses the whole response stream. HEAD responses announce a body they do
 * not carry, which a response parser cannot know: streams that may hold one
 * are only checked for their first status line. */
static size_t check_responses(const char *in, size_t len, bool may_have_head)
{
        struct check k = {0};
        size_t n;

        if (len == 0)
                return 0;
        if (len < 12 || memcmp(in, "HTTP/1.1 ", 9) != 0)
                fatal("the response stream does not start with a status line", NULL);
        if (may_have_head)
                return 1;
        http_parser_init(&k.p, HTTP_RESPONSE);
        k.p.data = &k;
        n = http_parser_execute(&k.p, &ck_settings, in, len);
        if (HTTP_PARSER_ERRNO(&k.p) == HPE_OK && n == len)
                http_parser_execute(&k.p, &ck_settings, NULL, 0); /* EOF */
        if (HTTP_PARSER_ERRNO(&k.p) != HPE_OK) {
                fprintf(stderr, "response stream (%zu bytes), error at %zu:\n%.*s\n", len, n,
                        (int)(len > 4096 ? 4096 : len), in);
                fatal("the response stream is not well-framed HTTP/1.1",
                      http_errno_description(HTTP_PARSER_ERRNO(&k.p)));
        }
        free(k.body);
        return k.responses;
}

/* --- one exchange --------------------------------------------------------- */

size_t kurz_fuzz_exchange(const uint8_t *req, size_t len, const struct kurz_fuzz_opts *o)
{
        struct client c = {.fd = -1};
        struct sockaddr_storage peer;
        int sv[2], peek = -1, rc;
        size_t split = o->split < len ? o->split : 0, nresp;
        bool may_have_head = memmem(req, len, "HEAD", 4) != NULL;

        kurz_fuzz_service();
        if (o->tick || ++exchanges % TICK_EVERY == 0)
                kurz_service_test_tick(svc);
        if (o->store_failing)
                kurz_memstore_set_failing(store, true);
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                fatal("socketpair", strerror(errno));
        if (split && (peek = fcntl(sv[1], F_DUPFD_CLOEXEC, 0)) < 0)
                fatal("dup", strerror(errno));
        make_peer(o->peer, &peer);
        rc = kurz_http_server_adopt(http, 0, sv[1], &peer);
        if (rc < 0)
                fatal("kurz_http_server_adopt", strerror(-rc));
        c.fd = sv[0];
        fcntl(c.fd, F_SETFL, O_NONBLOCK);
        c.deadline = now_ms() + HANG_MS;

        if (split) {
                client_write(&c, req, split);
                wait_consumed(peek);
                req += split;
                len -= split;
        }
        if (peek >= 0)
                close(peek); /* before waiting for a close that it would hold up */
        client_write(&c, req, len);
        shutdown(c.fd, SHUT_WR);
        while (!c.eof)
                if (client_wait(&c, false))
                        client_read(&c);
        close(c.fd);

        /* The server may still be closing its end: wait, so that the next
         * input starts on an idle server and coverage lands on this one. */
        while (kurz_http_server_connections(http) != 0) {
                struct timespec ts = {0, 20000};
                if (now_ms() >= c.deadline)
                        fatal("hang: the server did not close its end of the connection", NULL);
                nanosleep(&ts, NULL);
        }
        if (o->store_failing)
                kurz_memstore_set_failing(store, false);
        nresp = check_responses(c.in, c.in_len, may_have_head);
        free(c.in);
        return nresp;
}
