/* http/http_int.h - internals shared by the two halves of the HTTP layer:
 * server.c (server lifecycle, loop threads, listeners, accept, mailbox, stop,
 * QSBR hooks) and conn.c (one connection: parsing, limits, exchanges, output,
 * timeouts). Not for use outside src/http/. Everything here is touched by its
 * loop thread only, except where a field says otherwise. */
#ifndef KURZ_HTTP_HTTP_INT_H
#define KURZ_HTTP_HTTP_INT_H
#include <http_parser.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

#include "http/server.h"
#include "util/buf.h"

#define KURZ_HTTP_RBUF      16384 /* read buffer per connection */
#define KURZ_HTTP_ARENA     3072  /* inline request storage (target + header values) */
#define KURZ_HTTP_MAX_XFF   16    /* X-Forwarded-For header lines per request */
#define KURZ_HTTP_LINGER_MS 1000u /* drain time after our FIN before closing */
#define KURZ_HTTP_ORPHAN_MS 5000u /* wait for deferreds past the grace period */
#define KURZ_HTTP_PARK_MS   1000u /* a connection whose request was shed is not read this long */

struct kurz_http__loop;
struct kurz_http__conn;

/* A mailbox entry: kurz_http_server_post() allocates one, a deferred
 * exchange embeds its own. */
enum kurz_http__msg_kind { KURZ_HTTP__MSG_POST, KURZ_HTTP__MSG_RESUME };

struct kurz_http__msg {
        struct kurz_http__msg *next;
        enum kurz_http__msg_kind kind;
        void (*fn)(void *arg);                                 /* POST */
        void (*done)(struct kurz_http_exchange *x, void *arg); /* RESUME */
        void *arg;
};

/* state: 0 pending, 1 resumed (its message is in or on its way to the
 * mailbox), 2 orphaned by a stopped server (resume frees the connection). */
struct kurz_http_deferred {
        struct kurz_http__msg msg;
        _Atomic int state;
};

enum kurz_http__xkind { KURZ_HTTP__X_INLINE, KURZ_HTTP__X_OFFLOAD, KURZ_HTTP__X_DEFER };

/* The single exchange of a connection (one in flight at a time). */
struct kurz_http_exchange {
        struct kurz_http__conn *c;
        struct kurz_http_request req;
        enum kurz_http__xkind kind;
        uv_work_t work;
        void (*work_fn)(void *arg);
        void (*done)(struct kurz_http_exchange *x, void *arg);
        void *arg;
        struct kurz_http_deferred dfr;
};

struct kurz_http__loop {
        struct kurz_http_server *srv;
        unsigned idx;
        uv_loop_t loop;
        bool loop_inited;

        int lfd;                 /* listening socket, -1 once closed */
        uv_poll_t lpoll;         /* readiness of lfd; we accept4() ourselves */
        uv_timer_t accept_timer; /* re-arms lpoll after EMFILE and friends */
        uv_timer_t sweep;        /* timeouts, Date refresh, stop deadlines */
        uv_async_t async;        /* mailbox doorbell */
        uv_prepare_t prepare;    /* QSBR: offline before polling */

        pthread_mutex_t mu; /* guards mq_head, mq_tail, mbox_closed */
        struct kurz_http__msg *mq_head, *mq_tail;
        bool mbox_closed;

        struct kurz_http__conn *conns; /* open handles */
        struct kurz_http__conn *limbo; /* closed handles with an exchange out */
        struct kurz_http__conn *ready; /* answered outside parsing: continue */
        size_t nconns;
        size_t outstanding; /* offloaded + deferred exchanges not yet back */
        /* Offloaded exchanges not yet back (bounded by max_offload). Written
         * by the loop thread only; atomic for kurz_http_server_offloads. */
        _Atomic size_t offloads;

        char date[48]; /* "Date: ...\r\n" */
        size_t date_len;
        time_t date_sec;

        unsigned reads; /* reads since the last uv_prepare (poll coalescing) */
        bool online;    /* QSBR reader online */
        bool stopping, forced, finished;
        uint64_t stop_deadline;
        pthread_t thread;
        bool thread_started;
};

struct kurz_http_server {
        struct kurz_http_config cfg; /* normalised copy; cfg.host points at host */
        char *host;
        unsigned port;
        unsigned nloops;
        struct kurz_http__loop *loops;
        _Atomic size_t nconns;
        atomic_bool stopping;
        unsigned grace_ms; /* written before stopping is set */
        bool started, joined;
        pthread_mutex_t stop_mu;
};

/* server.c */
void kurz_http__enter(struct kurz_http__loop *lp); /* QSBR online, idempotent */
void kurz_http__maybe_finish(struct kurz_http__loop *lp);
void kurz_http__event(struct kurz_http__loop *lp, int status);
/* Appends m to lp's mailbox and rings it. Thread-safe. */
void kurz_http__mbox_push(struct kurz_http__loop *lp, struct kurz_http__msg *m);

/* conn.c */
/* Takes fd (nonblocking, accepted). Returns 0 or a negative errno; on error
 * fd is still the caller's. */
int kurz_http__conn_accept(struct kurz_http__loop *lp, int fd, const struct sockaddr_storage *peer);
void kurz_http__conn_sweep(struct kurz_http__loop *lp, uint64_t now);
void kurz_http__conn_stop_all(struct kurz_http__loop *lp);
void kurz_http__conn_force_close(struct kurz_http__loop *lp);
void kurz_http__conn_orphan(struct kurz_http__loop *lp);
void kurz_http__conn_resumed(struct kurz_http__loop *lp, struct kurz_http__msg *m);
void kurz_http__run_ready(struct kurz_http__loop *lp);
/* Frees connections left in limbo when the loop is destroyed. */
void kurz_http__conn_free_limbo(struct kurz_http__loop *lp);
#endif
