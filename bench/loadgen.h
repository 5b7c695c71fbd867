/* bench/loadgen.h - the event loop of kurz-bench: one epoll loop per thread
 * drives N keep-alive HTTP/1.1 connections, either open-loop on a fixed request
 * schedule (latency measured from each request's due time, so a stalled server
 * cannot hide its stall: no coordinated omission) or closed-loop with K requests
 * in flight per connection. */
#ifndef KURZ_BENCH_LOADGEN_H
#define KURZ_BENCH_LOADGEN_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "hdr.h"

enum kurz_lg_err {
        KURZ_LG_ERR_CONNECT, /* connect() refused, reset or timed out */
        KURZ_LG_ERR_TIMEOUT, /* sent, no response within --timeout */
        KURZ_LG_ERR_UNSENT,  /* due, but no connection could take it within --timeout */
        KURZ_LG_ERR_READ,    /* reset or EOF with the request in flight */
        KURZ_LG_ERR_WRITE,   /* send() failed */
        KURZ_LG_ERR_PARSE,   /* malformed or unsupported response */
        KURZ_LG_ERR_STATUS,  /* a response with an unexpected status */
        KURZ_LG_ERR_KINDS
};

#define KURZ_LG_MAX_STATUS 1000
#define KURZ_LG_MAX_KINDS  4

/* Per-thread results; kurz_lg_stats_merge() adds them. Only requests whose
 * start time (due time in open loop, send time in closed loop) lies in the
 * measurement window are counted; connect errors count from the window start. */
struct kurz_lg_stats {
        struct kurz_hdr lat; /* latency of responses with the expected status */
        struct kurz_hdr lag; /* open loop: how late requests left (send - due) */
        uint64_t due;        /* requests scheduled in the window */
        uint64_t sent;
        uint64_t completed; /* responses received (any status) */
        uint64_t ok;        /* responses with the expected status */
        uint64_t err[KURZ_LG_ERR_KINDS];
        uint64_t status[KURZ_LG_MAX_STATUS]; /* every response, by status */
        uint64_t connects;                   /* successful connects (incl. reconnects) */
        uint64_t window_start_ns;
        uint64_t window_ns;           /* length of the window actually run */
        uint64_t first_completion_ns; /* monotonic time of the first counted response */
        uint64_t last_completion_ns;  /* and of the last */
};

void kurz_lg_stats_merge(struct kurz_lg_stats *dst, const struct kurz_lg_stats *src);

/* What the loop sends. build() writes one request into buf (at most cap bytes)
 * and returns its length, 0 when it does not fit in cap, or -1 when the workload
 * has nothing to send right now (the run ends once that holds with nothing in
 * flight). *kind (< KURZ_LG_MAX_KINDS) selects expect[kind]. done(), if set, is
 * told the outcome of every request: status > 0 with the body when
 * want_body[kind] (bodies longer than the read buffer are not delivered: body
 * NULL), or status -1 on a transport error. Callbacks run on the loop's thread. */
struct kurz_lg_workload {
        long (*build)(void *ctx, uint64_t seq, char *buf, size_t cap, unsigned *kind);
        void (*done)(void *ctx, unsigned kind, int status, const char *body, size_t len);
        void *ctx;
        int expect[KURZ_LG_MAX_KINDS];
        bool want_body[KURZ_LG_MAX_KINDS];
        bool head[KURZ_LG_MAX_KINDS]; /* request is HEAD: response has no body */
};

struct kurz_lg_config {
        struct sockaddr_storage addr;
        socklen_t addr_len;
        unsigned connections; /* >= 1 */
        /* Open loop: requests per second of this thread; request j is due at
         * start_ns + (j * stride + offset) * 1e9 / (rate * stride). 0 = closed loop. */
        double rate;
        unsigned stride, offset;
        unsigned depth;        /* closed: in flight per connection; open: pipeline cap */
        uint64_t start_ns;     /* CLOCK_MONOTONIC time the schedule starts */
        uint64_t warmup_ns;    /* not measured */
        uint64_t duration_ns;  /* measured; UINT64_MAX = until the workload ends */
        uint64_t timeout_ns;   /* per request and per connect */
        uint64_t max_requests; /* 0 = no limit */
        atomic_bool *stop;     /* set asynchronously to end the run early */
};

/* Runs one loop to completion on the calling thread. Returns 0 (errors of the
 * server are counted in *stats, not returned) or a negative errno when the
 * loop itself could not run (epoll or memory). stats is overwritten. */
int kurz_lg_run(const struct kurz_lg_config *cfg, const struct kurz_lg_workload *wl,
                struct kurz_lg_stats *stats);

/* CLOCK_MONOTONIC in ns. */
uint64_t kurz_lg_now(void);
#endif
