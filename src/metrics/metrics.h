/* metrics/metrics.h - Prometheus counters and latency histograms. Each loop
 * thread writes only its own slot (plain relaxed stores, no lock, no atomic
 * read-modify-write on the redirect path); other threads add to a shared slot
 * with atomic adds. Rendering sums the slots. */
#ifndef KURZ_METRICS_METRICS_H
#define KURZ_METRICS_METRICS_H
#include <stdint.h>

#include "util/buf.h"

enum kurz_route {
        KURZ_ROUTE_REDIRECT,
        KURZ_ROUTE_CREATE,
        KURZ_ROUTE_LINK,   /* GET /api/v1/urls/{code} */
        KURZ_ROUTE_DELETE, /* DELETE /api/v1/urls/{code} */
        KURZ_ROUTE_LIST,
        KURZ_ROUTE_HEALTH,
        KURZ_ROUTE_METRICS,
        KURZ_ROUTE_STATS, /* /api/v1/stats/... */
        KURZ_ROUTE_OTHER,
        KURZ_ROUTE_COUNT
};

enum kurz_counter {
        KURZ_C_L1_HIT,
        KURZ_C_L1_MISS,
        KURZ_C_L1_NEGATIVE,
        KURZ_C_STORE_READ,
        KURZ_C_STORE_ERROR,
        KURZ_C_RATE_LIMITED,
        KURZ_C_CREATED,
        KURZ_C_CLICKS,
        KURZ_C_CONN_REFUSED,
        KURZ_C_HTTP_ERROR_CLOSE,
        KURZ_C_CLICK_FLUSHES,
        KURZ_C_CLEANUP_DELETED,
        KURZ_C_SHED, /* answered 503 at once because the server is saturated */
        KURZ_C_COUNT
};

/* Slot for callers that are not loop threads (writer, pool, main). */
#define KURZ_METRICS_SHARED (~0u)

struct kurz_metrics; /* opaque */

struct kurz_metrics *kurz_metrics_new(unsigned threads);
void kurz_metrics_free(struct kurz_metrics *m);

/* Records a finished request. thread: the loop thread index (its own slot) or
 * KURZ_METRICS_SHARED. */
void kurz_metrics_request(struct kurz_metrics *m, unsigned thread, enum kurz_route route,
                          int status, uint64_t latency_ns);
void kurz_metrics_add(struct kurz_metrics *m, unsigned thread, enum kurz_counter c, uint64_t n);
/* Sum over all slots (for tests and health). Thread-safe. */
uint64_t kurz_metrics_get(struct kurz_metrics *m, enum kurz_counter c);

/* Appends the exposition text of everything counted. Thread-safe. */
int kurz_metrics_render(struct kurz_metrics *m, struct kurz_buf *out);
/* Appends one gauge line with HELP and TYPE. */
int kurz_metrics_gauge(struct kurz_buf *out, const char *name, const char *help, double v);
#endif
