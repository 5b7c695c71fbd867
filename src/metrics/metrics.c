/* metrics/metrics.c - per-thread counter slots summed at scrape time. */
#include "metrics/metrics.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

static const int statuses[] = {200, 201, 204, 302, 400, 401, 404, 405, 408, 409,
                               413, 414, 415, 429, 431, 500, 501, 503, 505, 0};
#define NSTATUS (sizeof(statuses) / sizeof(statuses[0])) /* last: other */

static const double bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5};
#define NBUCKET (sizeof(bounds) / sizeof(bounds[0]) + 1) /* last: +Inf */

static const char *route_names[KURZ_ROUTE_COUNT] = {
    [KURZ_ROUTE_REDIRECT] = "redirect", [KURZ_ROUTE_CREATE] = "create",
    [KURZ_ROUTE_LINK] = "link",         [KURZ_ROUTE_DELETE] = "delete",
    [KURZ_ROUTE_LIST] = "list",         [KURZ_ROUTE_HEALTH] = "health",
    [KURZ_ROUTE_METRICS] = "metrics",   [KURZ_ROUTE_STATS] = "stats",
    [KURZ_ROUTE_OTHER] = "other"};

static const struct {
        const char *name;
        const char *help;
} counters[KURZ_C_COUNT] = {
    {"kurz_l1_hits_total", "Redirect lookups answered by the in-process cache."},
    {"kurz_l1_misses_total", "Redirect lookups the in-process cache could not answer."},
    {"kurz_l1_negative_hits_total", "Lookups answered 404 from a cached unknown code."},
    {"kurz_store_reads_total", "Lookups that went to the store."},
    {"kurz_store_errors_total", "Store operations that failed."},
    {"kurz_rate_limited_total", "Requests refused with 429."},
    {"kurz_links_created_total", "Links created (new codes)."},
    {"kurz_clicks_total", "Redirects counted as clicks."},
    {"kurz_connections_refused_total", "Connections refused at the connection cap."},
    {"kurz_http_protocol_errors_total",
     "Connections closed for malformed or oversized requests or timeouts."},
    {"kurz_click_flushes_total", "Click batches written to the store."},
    {"kurz_cleanup_deleted_total", "Expired or unused links deleted by cleanup."},
    {"kurz_overload_shed_total",
     "Requests answered 503 at once because too many store reads were in flight."},
};

/* One writer per slot: loads and stores are relaxed atomics so scrapes from
 * another thread are well-defined, yet compile to plain moves. */
struct slot {
        _Atomic uint64_t req[KURZ_ROUTE_COUNT][NSTATUS];
        _Atomic uint64_t hist[KURZ_ROUTE_COUNT][NBUCKET];
        _Atomic uint64_t sum_ns[KURZ_ROUTE_COUNT];
        _Atomic uint64_t c[KURZ_C_COUNT];
} __attribute__((aligned(64)));

struct kurz_metrics {
        unsigned threads;
        struct slot *slots; /* threads + 1; the last is shared */
};

struct kurz_metrics *kurz_metrics_new(unsigned threads)
{
        struct kurz_metrics *m = calloc(1, sizeof(*m));

        if (!m)
                return NULL;
        m->threads = threads;
        m->slots = aligned_alloc(64, sizeof(struct slot) * (threads + 1));
        if (!m->slots) {
                free(m);
                return NULL;
        }
        for (unsigned i = 0; i <= threads; i++) {
                struct slot *s = &m->slots[i];
                for (size_t r = 0; r < KURZ_ROUTE_COUNT; r++) {
                        for (size_t k = 0; k < NSTATUS; k++)
                                atomic_init(&s->req[r][k], 0);
                        for (size_t k = 0; k < NBUCKET; k++)
                                atomic_init(&s->hist[r][k], 0);
                        atomic_init(&s->sum_ns[r], 0);
                }
                for (size_t k = 0; k < KURZ_C_COUNT; k++)
                        atomic_init(&s->c[k], 0);
        }
        return m;
}

void kurz_metrics_free(struct kurz_metrics *m)
{
        if (!m)
                return;
        free(m->slots);
        free(m);
}

static inline void bump(struct kurz_metrics *m, unsigned thread, _Atomic uint64_t *v, uint64_t n)
{
        if (thread >= m->threads) {
                atomic_fetch_add_explicit(v, n, memory_order_relaxed);
                return;
        }
        atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + n,
                              memory_order_relaxed);
}

static struct slot *slot_of(struct kurz_metrics *m, unsigned thread)
{
        return &m->slots[thread < m->threads ? thread : m->threads];
}

void kurz_metrics_request(struct kurz_metrics *m, unsigned thread, enum kurz_route route,
                          int status, uint64_t latency_ns)
{
        struct slot *s = slot_of(m, thread);
        size_t k = 0, b = 0;
        double secs = (double)latency_ns / 1e9;

        while (k < NSTATUS - 1 && statuses[k] != status)
                k++;
        while (b < NBUCKET - 1 && secs > bounds[b])
                b++;
        bump(m, thread, &s->req[route][k], 1);
        bump(m, thread, &s->hist[route][b], 1);
        bump(m, thread, &s->sum_ns[route], latency_ns);
}

void kurz_metrics_add(struct kurz_metrics *m, unsigned thread, enum kurz_counter c, uint64_t n)
{
        bump(m, thread, &slot_of(m, thread)->c[c], n);
}

uint64_t kurz_metrics_get(struct kurz_metrics *m, enum kurz_counter c)
{
        uint64_t v = 0;

        for (unsigned i = 0; i <= m->threads; i++)
                v += atomic_load_explicit(&m->slots[i].c[c], memory_order_relaxed);
        return v;
}

static uint64_t sum(struct kurz_metrics *m, size_t off)
{
        uint64_t v = 0;

        for (unsigned i = 0; i <= m->threads; i++)
                v += atomic_load_explicit((_Atomic uint64_t *)((char *)&m->slots[i] + off),
                                          memory_order_relaxed);
        return v;
}

int kurz_metrics_gauge(struct kurz_buf *out, const char *name, const char *help, double v)
{
        return kurz_buf_printf(out, "# HELP %s %s\n# TYPE %s gauge\n%s %.17g\n", name, help, name,
                               name, v);
}

int kurz_metrics_render(struct kurz_metrics *m, struct kurz_buf *out)
{
        int rc = 0;

        rc |= kurz_buf_puts(out, "# HELP kurz_http_requests_total HTTP requests answered, by "
                                 "route and status.\n# TYPE kurz_http_requests_total counter\n");
        for (size_t r = 0; r < KURZ_ROUTE_COUNT; r++) {
                for (size_t k = 0; k < NSTATUS; k++) {
                        uint64_t v = sum(m, offsetof(struct slot, req[r][k]));
                        if (!v)
                                continue;
                        if (statuses[k])
                                rc |= kurz_buf_printf(
                                    out,
                                    "kurz_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                                    route_names[r], statuses[k], (unsigned long long)v);
                        else
                                rc |= kurz_buf_printf(out,
                                                      "kurz_http_requests_total{route=\"%s\","
                                                      "status=\"other\"} %llu\n",
                                                      route_names[r], (unsigned long long)v);
                }
        }
        rc |= kurz_buf_puts(out, "# HELP kurz_http_request_duration_seconds Time from reading a "
                                 "request to queueing its response.\n"
                                 "# TYPE kurz_http_request_duration_seconds histogram\n");
        for (size_t r = 0; r < KURZ_ROUTE_COUNT; r++) {
                uint64_t cum = 0;
                for (size_t b = 0; b < NBUCKET; b++) {
                        cum += sum(m, offsetof(struct slot, hist[r][b]));
                        if (b < NBUCKET - 1)
                                rc |= kurz_buf_printf(out,
                                                      "kurz_http_request_duration_seconds_bucket{"
                                                      "route=\"%s\",le=\"%g\"} %llu\n",
                                                      route_names[r], bounds[b],
                                                      (unsigned long long)cum);
                        else
                                rc |= kurz_buf_printf(out,
                                                      "kurz_http_request_duration_seconds_bucket{"
                                                      "route=\"%s\",le=\"+Inf\"} %llu\n",
                                                      route_names[r], (unsigned long long)cum);
                }
                rc |= kurz_buf_printf(
                    out, "kurz_http_request_duration_seconds_sum{route=\"%s\"} %.9f\n",
                    route_names[r], (double)sum(m, offsetof(struct slot, sum_ns[r])) / 1e9);
                rc |= kurz_buf_printf(
                    out, "kurz_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                    route_names[r], (unsigned long long)cum);
        }
        for (size_t c = 0; c < KURZ_C_COUNT; c++)
                rc |= kurz_buf_printf(
                    out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", counters[c].name,
                    counters[c].help, counters[c].name, counters[c].name,
                    (unsigned long long)kurz_metrics_get(m, (enum kurz_counter)c));
        return rc ? -ENOMEM : 0;
}
