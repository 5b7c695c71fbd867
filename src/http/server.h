/* http/server.h - the HTTP/1.1 front end: one libuv loop per worker thread,
 * one SO_REUSEPORT listening socket per loop, keep-alive and pipelining,
 * strict limits and timeouts. It knows nothing about links: every complete
 * request is handed to one application callback as an exchange, which the
 * application answers at once (on the loop thread) or later (after work on
 * another thread), but always on the exchange's own loop thread.
 *
 * Pipelining: all requests in one read are parsed in order; their responses
 * are queued and flushed with one write after the read is processed. While an
 * exchange is deferred, the connection stops parsing, so responses always leave
 * in request order. */
#ifndef KURZ_HTTP_SERVER_H
#define KURZ_HTTP_SERVER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "util/str.h"

struct kurz_http_server;   /* opaque */
struct kurz_http_exchange; /* opaque; one request and its pending response */
struct kurz_qsbr;

enum kurz_http_method {
        KURZ_HTTP_OTHER = 0,
        KURZ_HTTP_GET,
        KURZ_HTTP_HEAD,
        KURZ_HTTP_POST,
        KURZ_HTTP_PUT,
        KURZ_HTTP_DELETE,
        KURZ_HTTP_OPTIONS,
        KURZ_HTTP_PATCH,
};

/* The parts of a request the application may read. Every slice is borrowed
 * from the exchange and valid until the exchange is answered. Absent headers
 * have len 0 and p NULL. */
struct kurz_http_request {
        enum kurz_http_method method; /* HEAD is reported as HEAD */
        struct kurz_str method_name;  /* as sent, e.g. "GET" */
        struct kurz_str target;       /* raw request target, "/abc?x=1" */
        struct kurz_str path;         /* target before '?', not decoded */
        struct kurz_str query;        /* after '?', without it; may be empty */
        struct kurz_str host;
        struct kurz_str authorization;
        struct kurz_str content_type;
        struct kurz_str x_forwarded_for; /* all X-Forwarded-For values joined by ", " */
        struct kurz_str user_agent;
        struct kurz_str body;         /* whole body, de-chunked; <= body limit */
        struct sockaddr_storage peer; /* the TCP peer */
        unsigned http_minor;          /* 0 or 1 */
        unsigned thread;              /* index of the loop thread, 0..threads-1 */
        uint64_t start_ns;            /* CLOCK_MONOTONIC when its bytes were read */
};

/* One response header. Both slices are borrowed for the duration of the
 * kurz_http_respond() call only. Values must not contain CR or LF. */
struct kurz_http_header {
        struct kurz_str name;
        struct kurz_str value;
};

/* Called on the loop thread for every complete request. The application must
 * eventually call kurz_http_respond() exactly once for x, on the same loop
 * thread: inline, or later from a kurz_http_offload done callback or a
 * kurz_http_post callback. */
typedef void (*kurz_http_request_fn)(void *app, struct kurz_http_exchange *x);
/* Called on the loop thread when a connection has been refused or closed for
 * a limit or timeout (for metrics); status is the HTTP status sent, or 0 when
 * the connection was closed without a response. May be NULL. */
typedef void (*kurz_http_event_fn)(void *app, unsigned thread, int status);

#define KURZ_HTTP_BATCH_WAIT_MAX_US 1000u

struct kurz_http_config {
        const char *host;           /* listen address, e.g. "0.0.0.0" or "::" */
        unsigned port;              /* 0 picks a free port (see kurz_http_server_port) */
        unsigned threads;           /* loop threads, >= 1 */
        size_t max_connections;     /* whole server; beyond it new ones are refused */
        size_t max_request_line;    /* bytes, default 8192 -> 414 */
        size_t max_header_bytes;    /* bytes of all headers, default 8192 -> 431 */
        size_t max_headers;         /* count, default 100 -> 431 */
        size_t max_body;            /* bytes, default 65536 -> 413 */
        unsigned header_timeout_ms; /* default 10000: a request's headers must arrive */
        unsigned idle_timeout_ms;   /* default 60000: idle keep-alive connections */
        unsigned max_pipeline; /* responses queued per read before parsing pauses, default 128 */
        size_t max_output; /* bytes queued to a slow reader before reading stops, default 256 KiB */
        unsigned max_offload;   /* kurz_http_offload()s in flight per loop thread before it
                                 * refuses more with -EBUSY (load shedding), default 256 */
        unsigned batch_wait_us; /* default 0 = off: a loop thread that has just served a
                                 * few reads sleeps this long before it polls again, so
                                 * the requests arriving meanwhile take one wake-up
                                 * instead of one each (they wait at most this long);
                                 * at most KURZ_HTTP_BATCH_WAIT_MAX_US */
        kurz_http_request_fn on_request;
        kurz_http_event_fn on_event;
        void *app;
        struct kurz_qsbr *qsbr; /* optional: loop threads report quiescence */
};

/* Fills cfg with the defaults above (host "0.0.0.0", port 8080, threads 1). */
void kurz_http_config_defaults(struct kurz_http_config *cfg);

/* Binds every listening socket (so a bad address fails here, in the caller's
 * thread) but starts no thread. Returns 0 or a negative errno; *out is owned by
 * the caller and freed with kurz_http_server_free(). */
int kurz_http_server_new(const struct kurz_http_config *cfg, struct kurz_http_server **out);
/* The bound port (useful with port 0). */
unsigned kurz_http_server_port(const struct kurz_http_server *s);
/* Starts the loop threads. Returns 0 or a negative errno. */
int kurz_http_server_start(struct kurz_http_server *s);
/* Graceful stop: closes the listeners, lets in-flight exchanges finish and
 * their responses flush, closes idle connections, and joins the threads. After
 * grace_ms, remaining connections are closed. Thread-safe; blocks the caller. */
void kurz_http_server_stop(struct kurz_http_server *s, unsigned grace_ms);
/* Frees a stopped (or never started) server. NULL is a no-op. */
void kurz_http_server_free(struct kurz_http_server *s);

/* Runs fn(arg) on loop thread `thread` of a started server. Thread-safe; fn
 * runs once, in order of posting per thread. Returns 0, or -ESHUTDOWN when the
 * server is stopping (fn is then not run and arg stays the caller's). */
int kurz_http_server_post(struct kurz_http_server *s, unsigned thread, void (*fn)(void *arg),
                          void *arg);
/* Hands an already connected stream socket to loop `thread` as if it had
 * been accepted there, with `peer` as its client address (for tests and
 * fuzzing, which drive the server over one end of a socketpair). Thread-safe.
 * Returns 0 (fd now belongs to the server, which closes it, also when the
 * connection is refused), or -EINVAL / -ENOMEM / -ESHUTDOWN (fd stays the
 * caller's). */
int kurz_http_server_adopt(struct kurz_http_server *s, unsigned thread, int fd,
                           const struct sockaddr_storage *peer);
/* Number of loop threads. */
unsigned kurz_http_server_threads(const struct kurz_http_server *s);
/* Open connections now (all threads). Thread-safe. */
size_t kurz_http_server_connections(const struct kurz_http_server *s);
/* Exchanges offloaded to the blocking pool and not yet back, queued or
 * running (all threads; also those of connections closed meanwhile).
 * Thread-safe. */
size_t kurz_http_server_offloads(const struct kurz_http_server *s);

/* --- exchange API: call on the exchange's loop thread only --- */

/* The request; borrowed until the exchange is answered. */
const struct kurz_http_request *kurz_http_request(const struct kurz_http_exchange *x);

/* Queues the response. The server adds Content-Length, Date and (when the
 * connection will close) "Connection: close", and omits the body for HEAD.
 * `headers` must not contain those three. content_type may be NULL (no body
 * type). When close is true the connection closes after this response. After
 * this call x is invalid. */
void kurz_http_respond(struct kurz_http_exchange *x, int status,
                       const struct kurz_http_header *headers, size_t nheaders,
                       const char *content_type, const char *body, size_t body_len, bool close);

/* Runs work(arg) on the blocking-work pool, then done(x, arg) on x's loop
 * thread; done must answer x. If the client went away meanwhile, done still
 * runs and kurz_http_respond() discards the response. Returns 0 or a negative
 * errno (then neither callback runs): -EBUSY when max_offload exchanges of
 * this loop are already waiting for or running on the pool, so that the
 * caller can shed the excess with a fast 503 instead of queueing it without
 * bound. */
int kurz_http_offload(struct kurz_http_exchange *x, void (*work)(void *arg),
                      void (*done)(struct kurz_http_exchange *x, void *arg), void *arg);

/* For completion from a thread the server does not own (e.g. the store's
 * writer): marks x as deferred and returns a handle that another thread may
 * pass to kurz_http_resume() exactly once. */
struct kurz_http_deferred;
struct kurz_http_deferred *kurz_http_defer(struct kurz_http_exchange *x);
/* Thread-safe. Schedules done(x, arg) on x's loop thread; done must answer x.
 * Always succeeds (the server's stop waits for deferred exchanges). */
void kurz_http_resume(struct kurz_http_deferred *d,
                      void (*done)(struct kurz_http_exchange *x, void *arg), void *arg);

/* Monotonic clock in nanoseconds (vDSO, no syscall on Linux). */
uint64_t kurz_http_now_ns(void);
#endif
