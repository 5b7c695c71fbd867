/* http/server.c - the server around the connections: one libuv loop per
 * thread, each with its own SO_REUSEPORT listening socket (accepted by hand so
 * that EMFILE can pause accepting and refused connections cost nothing), a
 * mutex-protected mailbox rung by a uv_async_t, a periodic sweep timer for
 * timeouts, QSBR hooks, and graceful stop. The connections live in conn.c. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http/http_int.h"
#include "util/log.h"
#include "util/qsbr.h"

#define LISTEN_BACKLOG  4096
#define ACCEPT_PER_WAKE 128
#define ACCEPT_PAUSE_MS 100

void kurz_http_config_defaults(struct kurz_http_config *cfg)
{
        memset(cfg, 0, sizeof(*cfg));
        cfg->host = "0.0.0.0";
        cfg->port = 8080;
        cfg->threads = 1;
        cfg->max_connections = 10000;
        cfg->max_request_line = 8192;
        cfg->max_header_bytes = 8192;
        cfg->max_headers = 100;
        cfg->max_body = 65536;
        cfg->header_timeout_ms = 10000;
        cfg->idle_timeout_ms = 60000;
        cfg->max_pipeline = 128;
        cfg->max_output = (size_t)256 << 10; /* the kernel buffers megabytes more */
        cfg->max_offload = 256;
}

uint64_t kurz_http_now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* --- small helpers shared with conn.c ---------------------------------------- */

void kurz_http__enter(struct kurz_http__loop *lp)
{
        /* libuv runs I/O callbacks inside its poll phase, before uv_check, so
         * the reader goes online lazily at the start of every callback that
         * can reach application code, and offline in uv_prepare (before the
         * loop blocks). Readers thus only run between online and offline. */
        if (!lp->online && lp->srv->cfg.qsbr) {
                kurz_qsbr_online(lp->srv->cfg.qsbr, lp->idx);
                lp->online = true;
        }
}

static void go_offline(struct kurz_http__loop *lp)
{
        if (lp->online) {
                kurz_qsbr_offline(lp->srv->cfg.qsbr, lp->idx);
                lp->online = false;
        }
}

void kurz_http__event(struct kurz_http__loop *lp, int status)
{
        const struct kurz_http_config *cfg = &lp->srv->cfg;

        if (cfg->on_event)
                cfg->on_event(cfg->app, lp->idx, status);
}

void kurz_http__mbox_push(struct kurz_http__loop *lp, struct kurz_http__msg *m)
{
        m->next = NULL;
        pthread_mutex_lock(&lp->mu);
        if (lp->mbox_closed) {
                /* Cannot happen: the loop waits for every deferred exchange. */
                pthread_mutex_unlock(&lp->mu);
                kurz_error("http: thread %u: message after the loop ended", lp->idx);
                return;
        }
        if (lp->mq_tail)
                lp->mq_tail->next = m;
        else
                lp->mq_head = m;
        lp->mq_tail = m;
        /* Rung under the lock: the loop cannot close the handle meanwhile. */
        uv_async_send(&lp->async);
        pthread_mutex_unlock(&lp->mu);
}

static void date_refresh(struct kurz_http__loop *lp)
{
        static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
        static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
        time_t now = time(NULL);
        struct tm tm;
        int n;

        if (now == lp->date_sec && lp->date_len)
                return;
        if (!gmtime_r(&now, &tm))
                return;
        n = snprintf(lp->date, sizeof(lp->date), "Date: %s, %02d %s %04d %02d:%02d:%02d GMT\r\n",
                     days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900,
                     tm.tm_hour, tm.tm_min, tm.tm_sec);
        if (n > 0 && (size_t)n < sizeof(lp->date)) {
                lp->date_len = (size_t)n;
                lp->date_sec = now;
        }
}

/* --- listeners ----------------------------------------------------------------- */

static int resolve(const char *host, unsigned port, struct sockaddr_storage *ss, socklen_t *len)
{
        struct addrinfo hints, *res;
        char service[16];
        int rc;

        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
        snprintf(service, sizeof(service), "%u", port);
        rc = getaddrinfo(host, service, &hints, &res);
        if (rc != 0)
                return rc == EAI_MEMORY ? -ENOMEM : -EINVAL;
        if (res->ai_addrlen > sizeof(*ss)) {
                freeaddrinfo(res);
                return -EINVAL;
        }
        memcpy(ss, res->ai_addr, res->ai_addrlen);
        *len = res->ai_addrlen;
        freeaddrinfo(res);
        return 0;
}

static void set_port(struct sockaddr_storage *ss, unsigned port)
{
        if (ss->ss_family == AF_INET)
                ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
        else
                ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
}

static int open_listener(const struct sockaddr_storage *ss, socklen_t len, int *out)
{
        int one = 1;
        int fd, rc;

        fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
            bind(fd, (const struct sockaddr *)ss, len) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
                rc = -errno;
                close(fd);
                return rc;
        }
        *out = fd;
        return 0;
}

/* SO_REUSEPORT would let a second server (another kurz, anything run by the
 * same user) silently share the port and half the traffic. Binding a probe
 * without it first fails when anyone listens there already. */
static int probe_port_free(const struct sockaddr_storage *ss, socklen_t len)
{
        int one = 1;
        int fd, rc = 0;

        fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
            bind(fd, (const struct sockaddr *)ss, len) < 0)
                rc = -errno;
        close(fd);
        return rc;
}

static int bound_port(int fd, unsigned *port)
{
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);

        if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
                return -errno;
        if (ss.ss_family == AF_INET)
                *port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else
                *port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        return 0;
}

/* A connection beyond max_connections: a minimal 503, then close. No
 * allocation; the send may fail, the close happens regardless. */
static void refuse(struct kurz_http__loop *lp, int fd)
{
        static const char body[] = "{\"success\":false,\"message\":\"too many connections\","
                                   "\"errorCode\":\"SERVICE_UNAVAILABLE\"}";
        char buf[512];
        int n;

        /* Counted first: whoever sees the close also sees the count. */
        kurz_http__event(lp, 503);
        n = snprintf(buf, sizeof(buf),
                     "HTTP/1.1 503 Service Unavailable\r\n%.*sContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     (int)lp->date_len, lp->date, sizeof(body) - 1, body);
        if (n > 0 && (size_t)n < sizeof(buf))
                (void)!send(fd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
        close(fd);
}

static void on_listen_readable(uv_poll_t *h, int status, int events);

static void on_accept_resume(uv_timer_t *t)
{
        struct kurz_http__loop *lp = t->data;

        if (!lp->stopping && lp->lfd >= 0)
                uv_poll_start(&lp->lpoll, UV_READABLE, on_listen_readable);
}

static void on_listen_readable(uv_poll_t *h, int status, int events)
{
        struct kurz_http__loop *lp = h->data;
        struct kurz_http_server *s = lp->srv;

        (void)events;
        kurz_http__enter(lp);
        if (status < 0) {
                kurz_debug("http: thread %u: listener poll: %s", lp->idx, uv_strerror(status));
                return;
        }
        for (int i = 0; i < ACCEPT_PER_WAKE && lp->lfd >= 0; i++) {
                struct sockaddr_storage ss;
                socklen_t len = sizeof(ss);
                int fd;

                fd = accept4(lp->lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0) {
                        if (errno == EINTR || errno == ECONNABORTED)
                                continue;
                        if (errno == EAGAIN || errno == EWOULDBLOCK)
                                break;
                        /* EMFILE, ENFILE, ENOBUFS and the like: retrying at
                         * once would spin, so stop listening for a moment. */
                        kurz_debug("http: thread %u: accept: %s; pausing", lp->idx,
                                   strerror(errno));
                        uv_poll_stop(&lp->lpoll);
                        uv_timer_start(&lp->accept_timer, on_accept_resume, ACCEPT_PAUSE_MS, 0);
                        break;
                }
                if (atomic_fetch_add(&s->nconns, 1) >= s->cfg.max_connections) {
                        atomic_fetch_sub(&s->nconns, 1);
                        refuse(lp, fd);
                        continue;
                }
                if (kurz_http__conn_accept(lp, fd, &ss) < 0) {
                        atomic_fetch_sub(&s->nconns, 1);
                        close(fd);
                        kurz_http__event(lp, 0);
                }
        }
}

static void on_listener_closed(uv_handle_t *h)
{
        struct kurz_http__loop *lp = h->data;

        if (lp->lfd >= 0) {
                close(lp->lfd);
                lp->lfd = -1;
        }
}

/* --- loop -------------------------------------------------------------------- */

static void close_if_open(uv_handle_t *h, uv_close_cb cb)
{
        if (!uv_is_closing(h))
                uv_close(h, cb);
}

static void begin_stop(struct kurz_http__loop *lp)
{
        lp->stopping = true;
        lp->stop_deadline = uv_now(&lp->loop) + lp->srv->grace_ms;
        uv_timer_stop(&lp->accept_timer);
        close_if_open((uv_handle_t *)&lp->lpoll, on_listener_closed);
        kurz_http__conn_stop_all(lp);
}

void kurz_http__maybe_finish(struct kurz_http__loop *lp)
{
        struct kurz_http__msg *m, *next;

        if (!lp->stopping || lp->finished || lp->nconns || lp->outstanding)
                return;
        lp->finished = true;
        close_if_open((uv_handle_t *)&lp->lpoll, on_listener_closed);
        close_if_open((uv_handle_t *)&lp->accept_timer, NULL);
        close_if_open((uv_handle_t *)&lp->sweep, NULL);
        close_if_open((uv_handle_t *)&lp->prepare, NULL);
        pthread_mutex_lock(&lp->mu);
        lp->mbox_closed = true;
        m = lp->mq_head;
        lp->mq_head = lp->mq_tail = NULL;
        pthread_mutex_unlock(&lp->mu);
        /* Posts accepted before the stop began still run, once. */
        for (; m; m = next) {
                next = m->next;
                if (m->kind == KURZ_HTTP__MSG_POST) {
                        m->fn(m->arg);
                        free(m);
                }
        }
        close_if_open((uv_handle_t *)&lp->async, NULL);
}

static void on_async(uv_async_t *h)
{
        struct kurz_http__loop *lp = h->data;
        struct kurz_http__msg *m, *next;

        kurz_http__enter(lp);
        pthread_mutex_lock(&lp->mu);
        m = lp->mq_head;
        lp->mq_head = lp->mq_tail = NULL;
        pthread_mutex_unlock(&lp->mu);
        for (; m; m = next) {
                next = m->next; /* a resumed exchange may free m with its connection */
                if (m->kind == KURZ_HTTP__MSG_POST) {
                        m->fn(m->arg);
                        free(m);
                } else {
                        kurz_http__conn_resumed(lp, m);
                }
                kurz_http__run_ready(lp);
        }
        if (atomic_load(&lp->srv->stopping) && !lp->stopping)
                begin_stop(lp);
        kurz_http__run_ready(lp);
        kurz_http__maybe_finish(lp);
}

static void on_sweep(uv_timer_t *t)
{
        struct kurz_http__loop *lp = t->data;
        uint64_t now = uv_now(&lp->loop);

        kurz_http__enter(lp);
        date_refresh(lp);
        kurz_http__conn_sweep(lp, now);
        if (lp->stopping && now >= lp->stop_deadline) {
                if (!lp->forced) {
                        lp->forced = true;
                        kurz_http__conn_force_close(lp);
                }
                if (now >= lp->stop_deadline + KURZ_HTTP_ORPHAN_MS)
                        kurz_http__conn_orphan(lp);
        }
        kurz_http__run_ready(lp);
        kurz_http__maybe_finish(lp);
}

/* Reads of one poll at or beyond which the loop is busy enough that the
 * next poll returns at once: no batching wait then. */
#define BATCH_WAIT_READS 16

static void on_prepare(uv_prepare_t *h)
{
        struct kurz_http__loop *lp = h->data;
        unsigned us = lp->srv->cfg.batch_wait_us;
        unsigned reads = lp->reads;

        go_offline(lp);
        lp->reads = 0;
        /* Interrupt moderation in user space (make bench, section 1): at
         * tens of thousands of requests/s over many connections, blocking in
         * epoll_wait after every request costs a sleep and a cross-core
         * wake-up per request, more than the request itself. After a poll
         * that served a few reads, sleep briefly so that the next poll finds
         * several. A request arriving while the loop is idle is not delayed;
         * one arriving during the wait waits at most us. */
        if (us && reads > 0 && reads < BATCH_WAIT_READS && !lp->stopping) {
                struct timespec ts = {0, (long)us * 1000};

                nanosleep(&ts, NULL);
        }
}

static void *loop_main(void *arg)
{
        struct kurz_http__loop *lp = arg;
        const struct kurz_http_config *cfg = &lp->srv->cfg;
        unsigned iv = cfg->header_timeout_ms < cfg->idle_timeout_ms ? cfg->header_timeout_ms
                                                                    : cfg->idle_timeout_ms;
        char name[16];

        snprintf(name, sizeof(name), "kurz-http%u", lp->idx); /* top -H, perf, make bench */
        pthread_setname_np(pthread_self(), name);

        iv /= 4;
        if (iv < 10)
                iv = 10;
        if (iv > 250)
                iv = 250;
        date_refresh(lp);
        uv_poll_start(&lp->lpoll, UV_READABLE, on_listen_readable);
        uv_timer_start(&lp->sweep, on_sweep, iv, iv);
        uv_prepare_start(&lp->prepare, on_prepare);
        uv_run(&lp->loop, UV_RUN_DEFAULT);
        go_offline(lp);
        return NULL;
}

static void walk_close(uv_handle_t *h, void *arg)
{
        (void)arg;
        if (!uv_is_closing(h))
                uv_close(h, NULL);
}

/* Closes whatever is left, ends the loop and frees what only it owned. */
static void loop_destroy(struct kurz_http__loop *lp)
{
        struct kurz_http__msg *m, *next;
        int rc;

        if (lp->loop_inited) {
                uv_walk(&lp->loop, walk_close, NULL);
                uv_run(&lp->loop, UV_RUN_DEFAULT);
                rc = uv_loop_close(&lp->loop);
                if (rc < 0)
                        kurz_error("http: thread %u: loop close: %s", lp->idx, uv_strerror(rc));
                pthread_mutex_destroy(&lp->mu);
        }
        if (lp->lfd >= 0) {
                close(lp->lfd);
                lp->lfd = -1;
        }
        kurz_http__conn_free_limbo(lp);
        /* Posts to a server that never ran are dropped unrun. */
        for (m = lp->mq_head; m; m = next) {
                next = m->next;
                if (m->kind == KURZ_HTTP__MSG_POST)
                        free(m);
        }
        lp->mq_head = lp->mq_tail = NULL;
}

static int loop_init(struct kurz_http__loop *lp)
{
        int rc;

        rc = uv_loop_init(&lp->loop);
        if (rc < 0)
                return rc;
        rc = pthread_mutex_init(&lp->mu, NULL);
        if (rc != 0) {
                uv_loop_close(&lp->loop);
                return -rc;
        }
        lp->loop_inited = true; /* from here loop_destroy() cleans up */
        rc = uv_poll_init_socket(&lp->loop, &lp->lpoll, lp->lfd);
        if (rc < 0)
                return rc;
        lp->lpoll.data = lp;
        uv_timer_init(&lp->loop, &lp->accept_timer);
        lp->accept_timer.data = lp;
        uv_timer_init(&lp->loop, &lp->sweep);
        lp->sweep.data = lp;
        uv_prepare_init(&lp->loop, &lp->prepare);
        lp->prepare.data = lp;
        rc = uv_async_init(&lp->loop, &lp->async, on_async);
        if (rc < 0)
                return rc;
        lp->async.data = lp;
        return 0;
}

/* --- public API ------------------------------------------------------------ */

static void normalise(struct kurz_http_config *c)
{
        struct kurz_http_config d;

        kurz_http_config_defaults(&d);
        if (!c->max_connections)
                c->max_connections = d.max_connections;
        if (!c->max_request_line)
                c->max_request_line = d.max_request_line;
        if (!c->max_header_bytes)
                c->max_header_bytes = d.max_header_bytes;
        if (!c->max_headers)
                c->max_headers = d.max_headers;
        if (!c->max_body)
                c->max_body = d.max_body;
        if (!c->header_timeout_ms)
                c->header_timeout_ms = d.header_timeout_ms;
        if (c->batch_wait_us > KURZ_HTTP_BATCH_WAIT_MAX_US)
                c->batch_wait_us = KURZ_HTTP_BATCH_WAIT_MAX_US;
        if (!c->idle_timeout_ms)
                c->idle_timeout_ms = d.idle_timeout_ms;
        if (!c->max_pipeline)
                c->max_pipeline = d.max_pipeline;
        if (!c->max_output)
                c->max_output = d.max_output;
        if (!c->max_offload)
                c->max_offload = d.max_offload;
}

int kurz_http_server_new(const struct kurz_http_config *cfg, struct kurz_http_server **out)
{
        struct kurz_http_server *s;
        struct sockaddr_storage ss;
        socklen_t sslen;
        int rc;

        *out = NULL;
        if (!cfg || !cfg->on_request || cfg->threads == 0 || cfg->threads > 1024 ||
            cfg->port > 65535)
                return -EINVAL;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->cfg = *cfg;
        normalise(&s->cfg);
        s->host = strdup(cfg->host ? cfg->host : "0.0.0.0");
        if (!s->host) {
                rc = -ENOMEM;
                goto out_free_server;
        }
        s->cfg.host = s->host;
        rc = pthread_mutex_init(&s->stop_mu, NULL);
        if (rc != 0) {
                rc = -rc;
                goto out_free_host;
        }
        s->nloops = cfg->threads;
        s->loops = calloc(s->nloops, sizeof(*s->loops));
        if (!s->loops) {
                rc = -ENOMEM;
                goto out_destroy_mutex;
        }
        for (unsigned i = 0; i < s->nloops; i++) {
                s->loops[i].srv = s;
                s->loops[i].idx = i;
                s->loops[i].lfd = -1;
        }
        rc = resolve(s->host, cfg->port, &ss, &sslen);
        if (rc < 0)
                goto out_close_loops;
        s->port = cfg->port;
        if (s->port != 0) {
                rc = probe_port_free(&ss, sslen);
                if (rc < 0)
                        goto out_close_loops;
        }
        for (unsigned i = 0; i < s->nloops; i++) {
                /* With port 0 the first bind picks the port, the others join it. */
                set_port(&ss, s->port);
                rc = open_listener(&ss, sslen, &s->loops[i].lfd);
                if (rc < 0)
                        goto out_close_loops;
                if (i == 0 && s->port == 0) {
                        rc = bound_port(s->loops[0].lfd, &s->port);
                        if (rc < 0)
                                goto out_close_loops;
                }
                rc = loop_init(&s->loops[i]);
                if (rc < 0)
                        goto out_close_loops;
        }
        *out = s;
        return 0;

out_close_loops:
        for (unsigned i = 0; i < s->nloops; i++)
                loop_destroy(&s->loops[i]);
        free(s->loops);
out_destroy_mutex:
        pthread_mutex_destroy(&s->stop_mu);
out_free_host:
        free(s->host);
out_free_server:
        free(s);
        return rc;
}

unsigned kurz_http_server_port(const struct kurz_http_server *s)
{
        return s->port;
}

unsigned kurz_http_server_threads(const struct kurz_http_server *s)
{
        return s->nloops;
}

size_t kurz_http_server_connections(const struct kurz_http_server *s)
{
        return atomic_load(&((struct kurz_http_server *)s)->nconns);
}

size_t kurz_http_server_offloads(const struct kurz_http_server *s)
{
        size_t n = 0;

        for (unsigned i = 0; i < s->nloops; i++)
                n += atomic_load_explicit(&s->loops[i].offloads, memory_order_relaxed);
        return n;
}

static void signal_stop(struct kurz_http_server *s)
{
        for (unsigned i = 0; i < s->nloops; i++) {
                struct kurz_http__loop *lp = &s->loops[i];

                if (!lp->thread_started)
                        continue;
                /* Taking the mailbox lock orders this after any post that saw
                 * stopping == false, so that post's message is already queued. */
                pthread_mutex_lock(&lp->mu);
                uv_async_send(&lp->async);
                pthread_mutex_unlock(&lp->mu);
        }
}

int kurz_http_server_start(struct kurz_http_server *s)
{
        int rc;

        pthread_mutex_lock(&s->stop_mu);
        if (s->started || atomic_load(&s->stopping)) {
                pthread_mutex_unlock(&s->stop_mu);
                return -EINVAL;
        }
        s->started = true;
        for (unsigned i = 0; i < s->nloops; i++) {
                rc = pthread_create(&s->loops[i].thread, NULL, loop_main, &s->loops[i]);
                if (rc != 0) {
                        s->grace_ms = 0;
                        atomic_store(&s->stopping, true);
                        signal_stop(s);
                        for (unsigned j = 0; j < i; j++)
                                pthread_join(s->loops[j].thread, NULL);
                        s->joined = true;
                        pthread_mutex_unlock(&s->stop_mu);
                        return -rc;
                }
                s->loops[i].thread_started = true;
        }
        pthread_mutex_unlock(&s->stop_mu);
        return 0;
}

void kurz_http_server_stop(struct kurz_http_server *s, unsigned grace_ms)
{
        pthread_mutex_lock(&s->stop_mu);
        if (!s->started || s->joined) {
                atomic_store(&s->stopping, true);
                pthread_mutex_unlock(&s->stop_mu);
                return;
        }
        s->grace_ms = grace_ms;
        atomic_store(&s->stopping, true);
        signal_stop(s);
        for (unsigned i = 0; i < s->nloops; i++)
                if (s->loops[i].thread_started)
                        pthread_join(s->loops[i].thread, NULL);
        s->joined = true;
        pthread_mutex_unlock(&s->stop_mu);
}

void kurz_http_server_free(struct kurz_http_server *s)
{
        if (!s)
                return;
        if (s->started && !s->joined)
                kurz_http_server_stop(s, 0);
        for (unsigned i = 0; i < s->nloops; i++)
                loop_destroy(&s->loops[i]);
        free(s->loops);
        pthread_mutex_destroy(&s->stop_mu);
        free(s->host);
        free(s);
}

struct adopt_arg {
        struct kurz_http__loop *lp;
        int fd;
        struct sockaddr_storage peer;
};

/* The accept path for a socket handed over by kurz_http_server_adopt(). */
static void adopt_on_loop(void *arg)
{
        struct adopt_arg *a = arg;
        struct kurz_http__loop *lp = a->lp;
        struct kurz_http_server *s = lp->srv;

        if (lp->stopping || atomic_load(&s->stopping)) {
                close(a->fd);
        } else if (atomic_fetch_add(&s->nconns, 1) >= s->cfg.max_connections) {
                atomic_fetch_sub(&s->nconns, 1);
                refuse(lp, a->fd);
        } else if (kurz_http__conn_accept(lp, a->fd, &a->peer) < 0) {
                atomic_fetch_sub(&s->nconns, 1);
                close(a->fd);
                kurz_http__event(lp, 0);
        }
        free(a);
}

int kurz_http_server_adopt(struct kurz_http_server *s, unsigned thread, int fd,
                           const struct sockaddr_storage *peer)
{
        struct adopt_arg *a;
        int rc;

        if (thread >= s->nloops || fd < 0 || !peer)
                return -EINVAL;
        a = malloc(sizeof(*a));
        if (!a)
                return -ENOMEM;
        a->lp = &s->loops[thread];
        a->fd = fd;
        a->peer = *peer;
        rc = kurz_http_server_post(s, thread, adopt_on_loop, a);
        if (rc < 0)
                free(a);
        return rc;
}

int kurz_http_server_post(struct kurz_http_server *s, unsigned thread, void (*fn)(void *arg),
                          void *arg)
{
        struct kurz_http__loop *lp;
        struct kurz_http__msg *m;

        if (thread >= s->nloops || !fn)
                return -EINVAL;
        lp = &s->loops[thread];
        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->kind = KURZ_HTTP__MSG_POST;
        m->fn = fn;
        m->arg = arg;
        pthread_mutex_lock(&lp->mu);
        if (atomic_load(&s->stopping) || lp->mbox_closed) {
                pthread_mutex_unlock(&lp->mu);
                free(m);
                return -ESHUTDOWN;
        }
        if (lp->mq_tail)
                lp->mq_tail->next = m;
        else
                lp->mq_head = m;
        lp->mq_tail = m;
        uv_async_send(&lp->async);
        pthread_mutex_unlock(&lp->mu);
        return 0;
}
