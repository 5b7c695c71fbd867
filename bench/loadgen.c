/* bench/loadgen.c - one thread's epoll loop: connects, schedules, pipelines,
 * parses responses and counts every outcome. Requests are matched to responses
 * in FIFO order per connection; anything that breaks that order (a parse error,
 * a reset, a timeout) fails the connection's whole queue and reconnects. */
#include "loadgen.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "httpc.h"

#define RBUF_CAP      (16 * 1024)
#define WBUF_CAP      (16 * 1024)
#define WBUF_MIN_FREE 1024 /* a connection with less room takes no new request */
#define MAX_EVENTS    256
#define MAX_WAIT_NS   (10 * 1000 * 1000ull) /* sweeps, reconnects, stop flag */
#define SWEEP_NS      (1000 * 1000ull)
#define BACKOFF_MIN   (5 * 1000 * 1000ull)
#define BACKOFF_MAX   (200 * 1000 * 1000ull)

struct req {
        uint64_t t0;   /* due time (open loop) or send time (closed loop) */
        uint64_t sent; /* when it went into the write buffer */
        unsigned kind;
};

enum cstate { C_DOWN, C_CONNECTING, C_UP };

struct conn {
        int fd;
        enum cstate state;
        uint32_t events; /* registered with epoll */
        char *rbuf;
        size_t rlen;
        char *wbuf;
        size_t wlen, woff;
        struct req *q; /* ring of cfg->depth requests in flight */
        unsigned qhead, qcount;
        bool skipping; /* discarding the rest of an oversized body */
        uint64_t skip;
        int skip_status;
        bool skip_close;
        uint64_t connect_started, retry_at, backoff;
        uint64_t responses; /* since the last connect */
        bool in_idle, dirty;
};

struct loop {
        const struct kurz_lg_config *cfg;
        const struct kurz_lg_workload *wl;
        struct kurz_lg_stats *st;
        int ep;
        struct conn *conns;
        unsigned n;
        unsigned *idle, nidle;
        unsigned *dirty, ndirty;
        unsigned rr;
        unsigned ndown;
        uint64_t now;
        uint64_t ws, we; /* measurement window [ws, we) */
        bool stopped_early;
        uint64_t next_seq;
        double ival; /* ns between this thread's consecutive requests */
        uint64_t inflight;
        bool dispatch_over, exhausted;
        uint64_t last_sweep;
        uint64_t last_progress;  /* last response, for runs without an end time */
        uint64_t next_reconnect; /* no DOWN connection is due to retry before */
        uint64_t sweep_ns;       /* timeout scan interval, longer with many connections */
};

uint64_t kurz_lg_now(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void kurz_lg_stats_merge(struct kurz_lg_stats *dst, const struct kurz_lg_stats *src)
{
        unsigned i;

        kurz_hdr_merge(&dst->lat, &src->lat);
        kurz_hdr_merge(&dst->lag, &src->lag);
        dst->due += src->due;
        dst->sent += src->sent;
        dst->completed += src->completed;
        dst->ok += src->ok;
        for (i = 0; i < KURZ_LG_ERR_KINDS; i++)
                dst->err[i] += src->err[i];
        for (i = 0; i < KURZ_LG_MAX_STATUS; i++)
                dst->status[i] += src->status[i];
        dst->connects += src->connects;
        if (dst->window_start_ns == 0 || src->window_start_ns < dst->window_start_ns)
                dst->window_start_ns = src->window_start_ns;
        if (src->window_ns > dst->window_ns)
                dst->window_ns = src->window_ns;
        if (src->first_completion_ns &&
            (!dst->first_completion_ns || src->first_completion_ns < dst->first_completion_ns))
                dst->first_completion_ns = src->first_completion_ns;
        if (src->last_completion_ns > dst->last_completion_ns)
                dst->last_completion_ns = src->last_completion_ns;
}

static bool in_window(const struct loop *l, uint64_t t0)
{
        return t0 >= l->ws && t0 < l->we;
}

static uint64_t due_of(const struct loop *l, uint64_t seq)
{
        const struct kurz_lg_config *cfg = l->cfg;

        return cfg->start_ns +
               (uint64_t)(((double)seq * cfg->stride + cfg->offset) * l->ival / cfg->stride);
}

static void set_events(struct loop *l, struct conn *c, uint32_t want)
{
        struct epoll_event ev = {.events = want, .data.u32 = (uint32_t)(c - l->conns)};

        if (c->events == want)
                return;
        if (epoll_ctl(l->ep, c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev) == 0)
                c->events = want;
}

static void push_idle(struct loop *l, struct conn *c)
{
        if (c->in_idle)
                return;
        c->in_idle = true;
        l->idle[l->nidle++] = (unsigned)(c - l->conns);
}

static void mark_dirty(struct loop *l, struct conn *c)
{
        if (c->dirty)
                return;
        c->dirty = true;
        l->dirty[l->ndirty++] = (unsigned)(c - l->conns);
}

static void count_err(struct loop *l, uint64_t t0, enum kurz_lg_err kind)
{
        if (in_window(l, t0))
                l->st->err[kind]++;
}

/* Closes c, failing every request in flight with kind, and schedules a
 * reconnect: at once after a working connection ended, with backoff otherwise. */
static void conn_fail(struct loop *l, struct conn *c, enum kurz_lg_err kind)
{
        struct req *r;

        while (c->qcount) {
                r = &c->q[c->qhead];
                count_err(l, r->t0, kind);
                if (l->wl->done)
                        l->wl->done(l->wl->ctx, r->kind, -1, NULL, 0);
                c->qhead = (c->qhead + 1) % l->cfg->depth;
                c->qcount--;
                l->inflight--;
        }
        if (c->fd >= 0)
                close(c->fd); /* also removes it from the epoll set */
        c->fd = -1;
        c->events = 0;
        c->rlen = c->wlen = c->woff = 0;
        c->skipping = false;
        c->qhead = 0;
        if (c->state == C_UP && c->responses > 0) {
                c->backoff = 0;
                c->retry_at = l->now;
        } else {
                c->backoff = c->backoff ? c->backoff * 2 : BACKOFF_MIN;
                if (c->backoff > BACKOFF_MAX)
                        c->backoff = BACKOFF_MAX;
                c->retry_at = l->now + c->backoff;
        }
        c->state = C_DOWN;
        l->ndown++;
        if (c->retry_at < l->next_reconnect)
                l->next_reconnect = c->retry_at;
}

static void connect_failed(struct loop *l, struct conn *c)
{
        if (l->now >= l->ws && l->now < l->we)
                l->st->err[KURZ_LG_ERR_CONNECT]++;
        conn_fail(l, c, KURZ_LG_ERR_CONNECT);
}

static void connected(struct loop *l, struct conn *c)
{
        c->state = C_UP;
        c->responses = 0;
        l->st->connects++;
        set_events(l, c, EPOLLIN);
        push_idle(l, c);
}

static void conn_open(struct loop *l, struct conn *c)
{
        int one = 1;

        l->ndown--;
        c->state = C_CONNECTING;
        c->connect_started = l->now;
        c->fd = socket(l->cfg->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0)
                goto out_failed;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(c->fd, (const struct sockaddr *)&l->cfg->addr, l->cfg->addr_len) == 0) {
                connected(l, c);
                return;
        }
        if (errno != EINPROGRESS)
                goto out_failed;
        set_events(l, c, EPOLLOUT);
        if (c->events != EPOLLOUT)
                goto out_failed;
        return;

out_failed:
        connect_failed(l, c);
}

static void conn_flush(struct loop *l, struct conn *c)
{
        ssize_t n;

        while (c->woff < c->wlen) {
                n = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN || errno == EWOULDBLOCK)
                                break;
                        conn_fail(l, c, KURZ_LG_ERR_WRITE);
                        return;
                }
                c->woff += (size_t)n;
        }
        if (c->woff == c->wlen)
                c->woff = c->wlen = 0;
        set_events(l, c, c->woff < c->wlen ? EPOLLIN | EPOLLOUT : EPOLLIN);
}

/* The response at the head of c's queue arrived with status. */
static void complete(struct loop *l, struct conn *c, int status, const char *body, size_t len)
{
        struct req r = c->q[c->qhead];
        struct kurz_lg_stats *st = l->st;

        c->qhead = (c->qhead + 1) % l->cfg->depth;
        c->qcount--;
        c->responses++;
        l->last_progress = l->now;
        l->inflight--;
        if (in_window(l, r.t0)) {
                st->completed++;
                st->status[status < KURZ_LG_MAX_STATUS ? status : 0]++;
                if (status == l->wl->expect[r.kind]) {
                        st->ok++;
                        kurz_hdr_record(&st->lat, l->now > r.t0 ? l->now - r.t0 : 0);
                } else {
                        st->err[KURZ_LG_ERR_STATUS]++;
                }
                if (!st->first_completion_ns)
                        st->first_completion_ns = l->now;
                st->last_completion_ns = l->now;
        }
        if (l->wl->done)
                l->wl->done(l->wl->ctx, r.kind, status, body, len);
        if (c->qcount == 0)
                push_idle(l, c);
}

/* Consumes every complete response in c->rbuf. Returns false when c failed. */
static bool parse_responses(struct loop *l, struct conn *c)
{
        struct kurz_httpc_resp resp;
        size_t off = 0, avail, take;
        int rc;

        for (;;) {
                if (c->skipping) {
                        take = c->rlen - off < c->skip ? c->rlen - off : (size_t)c->skip;
                        off += take;
                        c->skip -= take;
                        if (c->skip > 0)
                                break;
                        c->skipping = false;
                        complete(l, c, c->skip_status, NULL, 0);
                        if (c->skip_close)
                                goto out_closed;
                        continue;
                }
                if (off == c->rlen)
                        break;
                if (c->qcount == 0)
                        goto out_parse; /* bytes nobody asked for */
                rc = kurz_httpc_parse(c->rbuf + off, c->rlen - off,
                                      l->wl->head[c->q[c->qhead].kind], &resp);
                if (rc < 0)
                        goto out_parse;
                if (rc == 0) {
                        if (off == 0 && c->rlen == RBUF_CAP)
                                goto out_parse; /* head larger than the buffer */
                        break;
                }
                if (resp.status < 200) {
                        off += resp.head_len; /* 1xx: the real response follows */
                        continue;
                }
                avail = c->rlen - off - resp.head_len;
                if (resp.body_len <= avail) {
                        complete(l, c, resp.status, c->rbuf + off + resp.head_len,
                                 (size_t)resp.body_len);
                        off += resp.head_len + (size_t)resp.body_len;
                        if (resp.close)
                                goto out_closed;
                        continue;
                }
                if (l->wl->want_body[c->q[c->qhead].kind] &&
                    resp.head_len + resp.body_len <= RBUF_CAP)
                        break; /* wait for the whole body */
                c->skipping = true;
                c->skip = resp.body_len;
                c->skip_status = resp.status;
                c->skip_close = resp.close;
                off += resp.head_len;
        }
        if (off) {
                memmove(c->rbuf, c->rbuf + off, c->rlen - off);
                c->rlen -= off;
        }
        return true;

out_closed:
        /* The server said it closes: what was pipelined behind is lost. */
        conn_fail(l, c, KURZ_LG_ERR_READ);
        return false;
out_parse:
        conn_fail(l, c, KURZ_LG_ERR_PARSE);
        return false;
}

static void conn_read(struct loop *l, struct conn *c)
{
        ssize_t n;

        n = recv(c->fd, c->rbuf + c->rlen, RBUF_CAP - c->rlen, 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
                return;
        l->now = kurz_lg_now();
        if (n <= 0) {
                /* EOF on an idle keep-alive connection is the server's right. */
                conn_fail(l, c, KURZ_LG_ERR_READ);
                return;
        }
        c->rlen += (size_t)n;
        parse_responses(l, c);
}

static void on_event(struct loop *l, struct conn *c, uint32_t events)
{
        int err = 0;
        socklen_t len = sizeof(err);

        if (c->state == C_CONNECTING) {
                if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0 ||
                    (events & (EPOLLERR | EPOLLHUP))) {
                        connect_failed(l, c);
                        return;
                }
                connected(l, c);
                return;
        }
        if (c->state != C_UP)
                return;
        if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                conn_read(l, c);
                if (c->state != C_UP)
                        return;
        }
        if ((events & EPOLLOUT) && c->woff < c->wlen)
                conn_flush(l, c);
}

static size_t wfree(const struct conn *c)
{
        return WBUF_CAP - c->wlen;
}

/* Appends one request to c. Returns 1 when one was added, 0 when it did not fit,
 * -1 when the workload has nothing to send. */
static int add_request(struct loop *l, struct conn *c, uint64_t t0)
{
        struct req *r;
        unsigned kind = 0;
        long n;

        if (c->woff == c->wlen) {
                c->woff = c->wlen = 0;
        } else if (c->woff > 0) {
                memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
                c->wlen -= c->woff;
                c->woff = 0;
        }
        n = l->wl->build(l->wl->ctx, l->next_seq, c->wbuf + c->wlen, wfree(c), &kind);
        if (n < 0)
                return -1;
        if (n == 0 || (size_t)n > wfree(c))
                return 0;
        c->wlen += (size_t)n;
        r = &c->q[(c->qhead + c->qcount) % l->cfg->depth];
        r->t0 = t0;
        r->sent = l->now;
        r->kind = kind < KURZ_LG_MAX_KINDS ? kind : 0;
        c->qcount++;
        l->inflight++;
        l->next_seq++;
        if (in_window(l, t0)) {
                l->st->due++;
                l->st->sent++;
                if (l->cfg->rate > 0)
                        kurz_hdr_record(&l->st->lag, l->now - t0);
        }
        mark_dirty(l, c);
        return 1;
}

static struct conn *pick(struct loop *l)
{
        struct conn *c;
        unsigned k;

        while (l->nidle) {
                c = &l->conns[l->idle[--l->nidle]];
                c->in_idle = false;
                if (c->state == C_UP && c->qcount == 0 && wfree(c) >= WBUF_MIN_FREE)
                        return c;
        }
        for (k = 0; k < l->n; k++) {
                c = &l->conns[l->rr];
                l->rr = (l->rr + 1) % l->n;
                if (c->state == C_UP && c->qcount < l->cfg->depth && wfree(c) >= WBUF_MIN_FREE)
                        return c;
        }
        return NULL;
}

static bool out_of_requests(const struct loop *l)
{
        return l->cfg->max_requests && l->next_seq >= l->cfg->max_requests;
}

/* The run ends before the planned window does (--requests reached, or stopped):
 * the window closes now, so rates are computed over the time actually run. */
static void end_window_now(struct loop *l)
{
        uint64_t end = l->now + 1, next_due;

        if (l->cfg->rate > 0) {
                /* Open loop: the window ends where the first unsent request was due. */
                next_due = due_of(l, l->next_seq);
                if (next_due < end)
                        end = next_due;
        }
        if (end < l->ws)
                end = l->ws;
        if (end < l->we)
                l->we = end;
        l->dispatch_over = true;
}

static void dispatch_open(struct loop *l)
{
        struct conn *c;
        uint64_t due;
        int rc;

        while (!l->dispatch_over) {
                if (out_of_requests(l)) {
                        end_window_now(l);
                        break;
                }
                due = due_of(l, l->next_seq);
                if (due >= l->we) {
                        l->dispatch_over = true;
                        break;
                }
                if (due > l->now)
                        break;
                if (l->now - due > l->cfg->timeout_ns) {
                        /* Waited too long for a free connection: dropped. */
                        if (in_window(l, due)) {
                                l->st->due++;
                                l->st->err[KURZ_LG_ERR_UNSENT]++;
                        }
                        l->next_seq++;
                        continue;
                }
                c = pick(l);
                if (!c)
                        break;
                rc = add_request(l, c, due);
                if (rc < 0)
                        l->exhausted = true;
                if (rc <= 0)
                        break;
        }
}

static void dispatch_closed(struct loop *l)
{
        struct conn *c;
        unsigned i;
        int rc;

        l->exhausted = false;
        if (l->dispatch_over || l->now < l->cfg->start_ns)
                return;
        if (l->now >= l->we) {
                l->dispatch_over = true;
                return;
        }
        for (i = 0; i < l->n; i++) {
                c = &l->conns[i];
                while (c->state == C_UP && c->qcount < l->cfg->depth && wfree(c) >= WBUF_MIN_FREE) {
                        if (out_of_requests(l)) {
                                end_window_now(l);
                                return;
                        }
                        rc = add_request(l, c, l->now);
                        if (rc < 0) {
                                l->exhausted = true;
                                return;
                        }
                        if (rc == 0)
                                break;
                }
        }
}

static void sweep(struct loop *l)
{
        struct conn *c;
        unsigned i;

        for (i = 0; i < l->n; i++) {
                c = &l->conns[i];
                if (c->state == C_CONNECTING && l->now - c->connect_started > l->cfg->timeout_ns)
                        connect_failed(l, c);
                else if (c->state == C_UP && c->qcount &&
                         l->now - c->q[c->qhead].sent > l->cfg->timeout_ns)
                        conn_fail(l, c, KURZ_LG_ERR_TIMEOUT);
        }
}

static void reconnect(struct loop *l)
{
        uint64_t next = UINT64_MAX;
        unsigned i;

        if (l->now < l->next_reconnect)
                return;
        l->next_reconnect = UINT64_MAX; /* lowered by conn_fail() during the pass */
        for (i = 0; i < l->n && l->ndown; i++) {
                if (l->conns[i].state != C_DOWN)
                        continue;
                if (l->conns[i].retry_at <= l->now)
                        conn_open(l, &l->conns[i]);
                else if (l->conns[i].retry_at < next)
                        next = l->conns[i].retry_at;
        }
        if (next < l->next_reconnect)
                l->next_reconnect = next;
}

static uint64_t wait_ns(struct loop *l)
{
        uint64_t wait = MAX_WAIT_NS, t, now = kurz_lg_now();

        if (l->cfg->rate > 0 && !l->dispatch_over && !out_of_requests(l)) {
                t = due_of(l, l->next_seq);
                if (t <= now)
                        wait = SWEEP_NS; /* backlog: a completion or a reconnect wakes us */
                else if (t - now < wait)
                        wait = t - now;
        } else if (l->cfg->rate <= 0 && now < l->cfg->start_ns) {
                wait = l->cfg->start_ns - now;
        }
        return wait < MAX_WAIT_NS ? wait : MAX_WAIT_NS;
}

static int loop_wait(struct loop *l, struct epoll_event *evs, uint64_t ns)
{
        struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ull),
                              .tv_nsec = (long)(ns % 1000000000ull)};
        static atomic_bool no_pwait2;
        int n;

        if (!atomic_load_explicit(&no_pwait2, memory_order_relaxed)) {
                n = epoll_pwait2(l->ep, evs, MAX_EVENTS, &ts, NULL);
                if (n >= 0 || errno != ENOSYS)
                        return n;
                atomic_store_explicit(&no_pwait2, true, memory_order_relaxed);
        }
        return epoll_wait(l->ep, evs, MAX_EVENTS, (int)((ns + 999999) / 1000000));
}

static void finish(struct loop *l)
{
        struct kurz_lg_stats *st = l->st;
        struct conn *c;
        unsigned i;
        uint64_t due;

        for (i = 0; i < l->n; i++) {
                c = &l->conns[i];
                if (c->state != C_DOWN)
                        conn_fail(l, c, KURZ_LG_ERR_TIMEOUT);
        }
        /* Open loop: requests due in the window that never found a connection. */
        while (l->cfg->rate > 0 && !out_of_requests(l)) {
                due = due_of(l, l->next_seq);
                if (due >= l->we)
                        break;
                if (due >= l->ws) {
                        st->due++;
                        st->err[KURZ_LG_ERR_UNSENT]++;
                }
                l->next_seq++;
        }
        st->window_start_ns = l->ws;
        if (l->cfg->duration_ns == UINT64_MAX && !l->stopped_early)
                st->window_ns = st->last_completion_ns > l->ws ? st->last_completion_ns - l->ws : 0;
        else
                st->window_ns = l->we > l->ws ? l->we - l->ws : 0;
}

static int loop_init(struct loop *l, const struct kurz_lg_config *cfg,
                     const struct kurz_lg_workload *wl, struct kurz_lg_stats *st)
{
        unsigned i;

        memset(l, 0, sizeof(*l));
        l->ep = -1;
        l->cfg = cfg;
        l->wl = wl;
        l->st = st;
        l->n = cfg->connections;
        l->ival = cfg->rate > 0 ? 1e9 / cfg->rate : 0;
        l->ws = cfg->start_ns + cfg->warmup_ns;
        l->we = cfg->duration_ns >= UINT64_MAX - l->ws ? UINT64_MAX : l->ws + cfg->duration_ns;
        l->ep = epoll_create1(EPOLL_CLOEXEC);
        if (l->ep < 0)
                return -errno;
        l->conns = calloc(l->n, sizeof(*l->conns));
        l->idle = calloc(l->n, sizeof(*l->idle));
        l->dirty = calloc(l->n, sizeof(*l->dirty));
        if (!l->conns || !l->idle || !l->dirty)
                return -ENOMEM;
        for (i = 0; i < l->n; i++) {
                l->conns[i].fd = -1;
                l->conns[i].state = C_DOWN;
        }
        for (i = 0; i < l->n; i++) {
                struct conn *c = &l->conns[i];

                c->rbuf = malloc(RBUF_CAP);
                c->wbuf = malloc(WBUF_CAP);
                c->q = calloc(cfg->depth, sizeof(*c->q));
                if (!c->rbuf || !c->wbuf || !c->q)
                        return -ENOMEM;
        }
        l->ndown = l->n;
        /* Scanning for timeouts costs ~1 ns a connection: at most ~0.1 % CPU. */
        l->sweep_ns = SWEEP_NS + (uint64_t)l->n * 1000;
        return 0;
}

static void loop_free(struct loop *l)
{
        unsigned i;

        for (i = 0; l->conns && i < l->n; i++) {
                if (l->conns[i].fd >= 0)
                        close(l->conns[i].fd);
                free(l->conns[i].rbuf);
                free(l->conns[i].wbuf);
                free(l->conns[i].q);
        }
        free(l->conns);
        free(l->idle);
        free(l->dirty);
        if (l->ep >= 0)
                close(l->ep);
}

int kurz_lg_run(const struct kurz_lg_config *cfg, const struct kurz_lg_workload *wl,
                struct kurz_lg_stats *st)
{
        struct epoll_event evs[MAX_EVENTS];
        struct loop l;
        uint64_t drain_end = 0;
        struct conn *c;
        unsigned i;
        int n, rc;

        memset(st, 0, sizeof(*st));
        if (cfg->connections == 0 || cfg->depth == 0)
                return -EINVAL;
        rc = loop_init(&l, cfg, wl, st);
        if (rc < 0)
                goto out_free_loop;
        prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); /* wake on time, not 50 us late */

        for (;;) {
                l.now = kurz_lg_now();
                if (cfg->stop && atomic_load(cfg->stop) && !l.stopped_early) {
                        l.stopped_early = true;
                        end_window_now(&l);
                }
                /* A run without an end (load) gives up when nothing has been
                 * answered for three timeouts, e.g. with the server down. */
                if (cfg->duration_ns == UINT64_MAX && !l.dispatch_over &&
                    l.now > (l.last_progress > cfg->start_ns ? l.last_progress : cfg->start_ns) +
                                3 * cfg->timeout_ns) {
                        l.stopped_early = true;
                        end_window_now(&l);
                }
                if (l.ndown)
                        reconnect(&l);
                if (l.now - l.last_sweep >= l.sweep_ns) {
                        l.last_sweep = l.now;
                        sweep(&l);
                }
                if (cfg->rate > 0)
                        dispatch_open(&l);
                else
                        dispatch_closed(&l);
                for (i = 0; i < l.ndirty; i++) {
                        c = &l.conns[l.dirty[i]];
                        c->dirty = false;
                        if (c->state == C_UP)
                                conn_flush(&l, c);
                }
                l.ndirty = 0;

                if ((l.dispatch_over || l.exhausted) && l.inflight == 0)
                        break;
                if (l.dispatch_over) {
                        if (!drain_end)
                                drain_end = l.now + cfg->timeout_ns + SWEEP_NS * 20;
                        else if (l.now >= drain_end)
                                break;
                }
                n = loop_wait(&l, evs, wait_ns(&l));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        rc = -errno;
                        goto out_free_loop;
                }
                l.now = kurz_lg_now();
                for (i = 0; i < (unsigned)n; i++)
                        on_event(&l, &l.conns[evs[i].data.u32], evs[i].events);
        }
        finish(&l);
        rc = 0;

out_free_loop:
        loop_free(&l);
        return rc;
}
